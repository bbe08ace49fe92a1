"""The house has no import circles: a walk over every ``import`` in ``maskbench/`` (deferred ones
inside functions and type-checking ones included) finds no module that reaches itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "maskbench"


def import_graph() -> dict[str, set[str]]:
    """module -> the maskbench modules it imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("maskbench"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("maskbench"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_finds_a_circle_when_there_is_one() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_maskbench_has_no_import_circles() -> None:
    graph = import_graph()
    assert len(graph) > 40 and "maskbench.datasets.registry" in graph
    assert circles(graph) == []


def test_the_bottom_layers_import_nothing_above_them() -> None:
    graph = import_graph()
    assert graph["maskbench.errors"] == set() and graph["maskbench.geometry"] == set()
    assert graph["maskbench.types"] <= {"maskbench.geometry"}
    for io_module in ("maskbench.io.atomic", "maskbench.io.safety", "maskbench.io.manifest"):
        assert not any(d.startswith(("maskbench.datasets", "maskbench.evaluation", "maskbench.models"))
                       for d in graph[io_module]), io_module
