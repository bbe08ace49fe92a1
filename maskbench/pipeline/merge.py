"""Joining the outputs of ``--shard 1/N`` .. ``N/N`` into one variant, identical to an unsharded run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskbench.io.labels import LABELS, read_labels
from maskbench.io.writer import VariantWriter
from maskbench.splits import verify_split


def merge_variants(shard_dirs: list[Path], out_dir: Path, overwrite: bool = False,
                 data_root: Path | None = None) -> dict[str, Any]:
    """Join the outputs of ``--shard 1/N .. N/N`` into one split, identical to an unsharded run.

    The shards must come from the same command (format, parameters, seed, source) and cover every
    index 1..N exactly once. Files are copied; a path present in several shards (a BIWI ``rgb.cal``)
    must have the same checksum in each.
    """
    import shutil

    from maskbench.io.manifest import read_manifest

    manifests = []
    for d in shard_dirs:
        problems = verify_split(d)
        if problems:
            raise ValueError(f"{d} does not verify: {problems[0]}")
        manifests.append(read_manifest(d))
    first = manifests[0]
    for d, m in zip(shard_dirs, manifests):
        for key in ("format", "parameters", "seed", "source", "biwi_labels"):
            if m.get(key) != first.get(key):
                if key == "source":
                    raise ValueError(f"{d} and {shard_dirs[0]} were made from different source contents (the source's "
                                     "file listing or manifest changed between the shard runs); run every shard "
                                     "again on the source as it is now")
                raise ValueError(f"{d}: {key} differs from {shard_dirs[0]}; these are not shards of one run")
        if "shard" not in m:
            raise ValueError(f"{d}: not a shard (no 'shard' entry in its manifest)")
    indices = sorted(m["shard"]["index"] for m in manifests)
    count = first["shard"]["count"]
    if indices != list(range(1, count + 1)) or any(m["shard"]["count"] != count for m in manifests):
        raise ValueError(f"shards cover indices {indices}, expected 1..{count} exactly once")
    sources: dict[str, tuple[Path, str]] = {}
    for d, m in zip(shard_dirs, manifests):
        for rel, digest in m["files"].items():
            if rel == LABELS:
                continue
            if rel in sources and sources[rel][1] != digest:
                raise ValueError(f"{rel} differs between {sources[rel][0]} and {d}")
            sources[rel] = (d, digest)
    rows = [row for d in shard_dirs for row in read_labels(d, allow_empty=True)]
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["id"]] = seen.get(row["id"], 0) + 1
    repeated = sorted(i for i, n in seen.items() if n > 1)
    if repeated:
        raise ValueError(f"the shards hold {len(repeated)} ids more than once (e.g. {repeated[0]}); were they made "
                         "from different versions of the source?")
    with VariantWriter(out_dir, overwrite=overwrite, sources=shard_dirs, data_root=data_root) as writer:
        writer.claim(sorted(sources))
        for rel, (d, _) in sorted(sources.items()):
            target = writer.write_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(d / rel, target)
        writer.rows.extend(rows)
        filtered: dict[str, list[str]] = {}
        for m in manifests:
            for reason, ids in m.get("filtered", {}).items():
                filtered.setdefault(reason, []).extend(ids)
        return writer.finish(
            name=out_dir.name, fmt=first["format"], seed=first["seed"], parameters=first["parameters"],
            skipped=sorted(s for m in manifests for s in m.get("skipped", [])), filtered=filtered,
            source=first.get("source"), split=first.get("split"), biwi_labels=first.get("biwi_labels"),
        )
