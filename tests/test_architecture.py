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


#: The declared layers, bottom first (README "Architecture"). A module belongs to the layer of its
#: longest listed prefix; it may import its own layer and the layers below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("maskbench.errors", "maskbench.geometry", "maskbench.types", "maskbench.version", "maskbench.devdata",
                     "maskbench.seeding", "maskbench.progress", "maskbench.provenance", "maskbench.models.weights")),
    ("files", ("maskbench.io",)),
    ("dataset formats", ("maskbench.datasets",)),
    ("rules", ("maskbench.splits", "maskbench.identity", "maskbench.faces", "maskbench.folder")),
    ("the network", ("maskbench.models",)),
    ("one face", ("maskbench.render", "maskbench.synthesis", "maskbench.augment", "maskbench.judge")),
    ("folders and the API", ("maskbench.sampledata", "maskbench.pipeline", "maskbench.runs", "maskbench.records",
                             "maskbench.transforms", "maskbench.torch_dataset", "maskbench.torch")),
    ("evaluation", ("maskbench.evaluation",)),
    ("training", ("maskbench.training",)),
    ("commands", ("maskbench.reproduce", "maskbench.cli", "maskbench.__main__", "maskbench")),
]


def layer_of(module: str) -> int:
    best, level = -1, -1
    for k, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), k
    if level < 0:
        raise AssertionError(f"{module} is in no declared layer: add it to LAYERS and to the README")
    return level


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
                  for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a))


def test_the_layer_check_finds_an_upward_import() -> None:
    assert upward_edges({"maskbench.models.inference": {"maskbench.training.trainer"}, "maskbench.training.trainer": set()})
    assert not upward_edges({"maskbench.training.trainer": {"maskbench.models.inference"},
                             "maskbench.models.inference": set()})


def test_every_import_points_down_the_declared_layers() -> None:
    graph = import_graph()
    assert upward_edges(graph) == []


def test_the_bottom_layers_import_nothing_above_them() -> None:
    graph = import_graph()
    assert graph["maskbench.errors"] == set() and graph["maskbench.geometry"] == set()
    assert graph["maskbench.types"] <= {"maskbench.geometry"}
    for io_module in ("maskbench.io.atomic", "maskbench.io.safety", "maskbench.io.manifest", "maskbench.io.labels",
                      "maskbench.io.lock", "maskbench.io.writer"):
        assert not any(d.startswith(("maskbench.datasets", "maskbench.evaluation", "maskbench.models"))
                       for d in graph[io_module]), io_module


#: The longest a module may grow before it is split along its seams (#42: one file, one job).
MAX_MODULE_LINES = 450


def test_no_module_outgrows_one_job() -> None:
    sizes = {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text().splitlines())
             for path in PACKAGE.rglob("*.py")}
    assert len(sizes) > 80
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
