"""Commands that make and check dataset splits: sample, import, rotate, synthesize, merge, verify, info."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from maskbench import judge as judge_rules
from maskbench.cli import options as opt
from maskbench.cli.app import main
from maskbench.datasets.base import DatasetError, resolve_dataset
from maskbench.datasets.registry import open_reader


@main.command()
@click.option("--dataset", type=click.Choice(["BIWI", "300W_LP", "AFLW2000"], case_sensitive=False), required=True,
              help="Native layout to write.")
@click.option("--out", default=None, help="Output folder (default: the dataset name). " + opt.OUT_RULE)
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=24, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for poses, identities, backgrounds.")
@click.option("--scale", type=click.FloatRange(0.05, 4), default=1.0, show_default=True,
              help="Image size factor: 0.25 renders the same scenes at 160x120 (BIWI) / 112x112, about 5x faster.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Render in N processes (same bytes as 1).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@opt.biwi_labels_option
@opt.data_root_option
def sample(dataset: str, out: str | None, n: int, seed: int, scale: float, workers: int, overwrite: bool,
           biwi_labels: str, data_root: Path | None) -> None:
    """Render procedural heads at known poses into a dataset's native layout.

    Labels are exact (pose, 68 landmarks, box); labels.csv and manifest.json are written too.
    """
    from maskbench.sampledata import make_sample_dataset

    root = opt.root(data_root)
    with opt.writing(resumable=False):
        out_dir = opt.out(out or dataset.upper(), root)
        manifest = make_sample_dataset(dataset, out_dir, n=n, seed=seed, overwrite=overwrite, scale=scale,
                                       workers=workers, data_root=root, biwi_labels=biwi_labels)
    click.echo(f"wrote {manifest['counts']['samples']} {manifest['format']} samples to {out_dir}")


@main.command(name="import")
@click.option("--src", required=True, help="Dataset name under the data root, or a path to a raw tree.")
@click.option("--out", default=None, help="Output folder (default: <SRC>_labelled). " + opt.OUT_RULE)
@click.option("--protocol-filter/--no-protocol-filter", default=False, show_default=True,
              help="Drop samples with any stored |angle| > 99 deg (the AFLW2000 protocol); "
              "dropped ids are listed in the manifest.")
@opt.split_options
@click.option("--only-split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Keep only the samples of this split (the others are counted as filtered in the manifest).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N samples.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier maskbench output at --out (swapped in when complete).")
@click.option("--resume", is_flag=True, help="Continue a stopped run (same command and options).")
@opt.biwi_labels_option
@opt.data_root_option
def import_(src: str, out: str | None, protocol_filter: bool, split_by: str | None, split_seed: int | None,
            train_fraction: float | None, val_fraction: float | None, only_split: str | None, limit: int | None,
            overwrite: bool, resume: bool, biwi_labels: str, data_root: Path | None) -> None:
    """Copy a raw dataset tree into a maskbench split (native files + labels.csv + manifest.json)."""
    from maskbench.pipeline import write_variant

    root = opt.root(data_root)
    with opt.writing():
        src_dir = resolve_dataset(src, root)
        reader = open_reader(src_dir, **opt.protocol_options(protocol_filter))
        out_dir = opt.out(out or f"{src_dir.name}_labelled", root, src_dir)
        summary = write_variant(
            reader, out_dir, transform=None, transform_name="", seed=0, overwrite=overwrite, resume=resume,
            limit=limit, split=opt.split_rule(split_by, split_seed, train_fraction, val_fraction), only_split=only_split,
            parameters={"command": "import",
                        "protocol_filter_max_abs_angle_deg": opt.protocol_options(protocol_filter).get("max_abs_angle_deg"),
                        "limit": limit},
            data_root=root, biwi_labels=biwi_labels,
        )
    opt.report(summary, out_dir)


@main.command()
@click.option("--src", default="BIWI", show_default=True, help="Dataset name under the data root, or a path "
              "(raw tree or any maskbench split, e.g. BIWI_masked).")
@click.option("--out", default=None, help="Output folder (default: <SRC>_rotated). " + opt.OUT_RULE)
@click.option("--range", "range_deg", type=(float, float), default=None, metavar="LO HI",
              help="Degrees, -180 <= LO <= HI <= 180; each copy draws an angle uniformly from [LO, HI] (seeded per "
              "sample). Default: -45 45.")
@click.option("--angles", default=None, metavar="A,B,...",
              help="Explicit angles in degrees (a sweep), each in [-180, 180]: every image is rotated by each. "
              "Not together with --range.")
@click.option("--per-image", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rotated copies per source image (ignored with --angles). With 1, file names stay the same.")
@click.option("--center", type=click.Choice(["image", "face"]), default="image", show_default=True,
              help="Rotate about the principal point / image centre (exact labels) or the face box centre.")
@click.option("--border", type=click.Choice(["reflect", "constant", "replicate"]), default="reflect",
              show_default=True, help="How pixels uncovered by the rotation are filled.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the angle draws.")
@opt.split_options
@opt.run_options
@opt.biwi_labels_option
@opt.data_root_option
def rotate(src: str, out: str | None, range_deg: tuple[float, float] | None, angles: str | None, per_image: int,
           center: str, border: str, seed: int, split_by: str | None, split_seed: int | None,
           train_fraction: float | None, val_fraction: float | None, limit: int | None,
           overwrite: bool, resume: bool,
           workers: int, shard: str | None, biwi_labels: str, data_root: Path | None) -> None:
    """Rotate faces in-plane and recompute yaw/pitch/roll exactly (Sheka & Samun style).

    Example: `maskbench rotate --range -45 45` writes <data-root>/BIWI_rotated. Image, landmarks, box
    and pose move together; labels are written in the source's native layout plus labels.csv
    (rotation_deg, source_id columns) and manifest.json.
    """
    from maskbench.augment.rotation import RotationParams, make_transform
    from maskbench.pipeline import parse_shard, write_variant
    from maskbench.transforms import RandomInPlaneRotation

    root = opt.root(data_root)
    angle_list = None if angles is None else opt.parse_angles(angles)
    if angle_list is not None and range_deg is not None:
        opt.fail("give --angles (a sweep) or --range (random angles), not both")
    range_deg = range_deg or (-45.0, 45.0)
    lo, hi = range_deg
    if not -180.0 <= lo <= hi <= 180.0:
        opt.fail(f"--range {lo:g} {hi:g}: needs -180 <= LO <= HI <= 180 (degrees)")
    with opt.writing():
        params = RotationParams(range_deg=range_deg, angles_deg=angle_list, per_image=per_image, center=center,
                                border=border)
        src_dir = resolve_dataset(src, root)
        reader = open_reader(src_dir)
        out_dir = opt.out(out or f"{src_dir.name}_rotated", root, src_dir)
        summary = write_variant(
            reader, out_dir, transform=make_transform(reader.fmt, params),
            transform_name=RandomInPlaneRotation.purpose, seed=seed,
            overwrite=overwrite, resume=resume, limit=limit, workers=workers,
            split=opt.split_rule(split_by, split_seed, train_fraction, val_fraction),
            shard=parse_shard(shard),
            parameters={"command": "rotate", "source": src_dir.name, "limit": limit, **params.as_dict()},
            data_root=root, biwi_labels=biwi_labels,
        )
    opt.report(summary, out_dir)


@main.command()
@click.option("--src", default="BIWI", show_default=True,
              help="Dataset name under the data root, or a path (raw tree or any maskbench split).")
@click.option("--out", default=None, help="Output folder (default: <SRC>_masked). " + opt.OUT_RULE)
@click.option("--mask-types", default="all", show_default=True, metavar="A,B|all",
              help="Comma list of mask types to draw from (surgical, n95, kn95, cloth, respirator) or all; "
              "each face gets one, chosen by the seeded per-sample generator.")
@click.option("--colors", default="all", show_default=True, metavar="A,B|all",
              help="Restrict colours by name (e.g. white,black), drawn by each type's colour frequencies; with all, "
              "30 % of cloth masks get a pattern (stripes, gingham, dots) in a two-colour palette.")
@click.option("--landmarks", type=click.Choice(["detected", "gt", "dlib", "pose"]), default="detected", show_default=True,
              help="Where the 68 landmarks a mask is fitted to come from. detected: a face detector (RetinaFace) and "
              "a landmark model (3DDFA_V2) run on the pixels, so the mask carries nothing of the annotation; a face "
              "they miss is written unmasked and listed. gt (the dataset's landmarks), dlib (dlib's model on a box "
              "made from them) and pose (a generic face posed with the label) read the annotation: for training "
              "variants only (a model trained on such masks can read the label off the mask).")
@click.option("--no-occluders", is_flag=True,
              help="Paint the mask over everything in its place. By default what is in front of the lower face and "
              "is not its skin (a hand of another colour, hair, an object) stays on top, and the occlusion map "
              "leaves it out; occluder_px counts those pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the per-sample choices.")
@click.option("--no-judge", is_flag=True, help="Do not grade the masks with the real-photo mask detector.")
@click.option("--judge-sample", default="auto", show_default=True, metavar="N|all|auto",
              help=f"Faces the mask detector grades (a seeded sample; all: every face; auto: {judge_rules.SAMPLE_RULE}). "
              "It runs at about 45 images/s on 2 CPU cores, several times slower than masking, so the default "
              "grades a sample; realism.json gives the pass rate's 95 % interval.")
@opt.split_options
@opt.run_options
@opt.biwi_labels_option
@opt.data_root_option
def synthesize(src: str, out: str | None, mask_types: str, colors: str, landmarks: str, no_occluders: bool, seed: int,
               no_judge: bool, judge_sample: str,
               split_by: str | None,
               split_seed: int | None, train_fraction: float | None, val_fraction: float | None,
               limit: int | None, overwrite: bool, resume: bool, workers: int, shard: str | None,
               biwi_labels: str, data_root: Path | None) -> None:
    """Fit a synthetic face mask to every face and write a masked split.

    Example: `maskbench synthesize --src BIWI --out BIWI_masked`. By default the mask is placed from what
    a face detector (RetinaFace) and a landmark model (3DDFA_V2) see in the pixels, so it carries nothing
    of the annotation; a face they miss is written unmasked (mask_type none, landmark_source missed) and
    listed in manifest.json and the summary, per |yaw| bin. Labels are unchanged (a mask does not
    change the pose); a binary occlusion map per image goes to occlusion/ (occlusion_path column), with
    mask_type, mask_color, landmark_source and occluder_px columns. The mask is matched to each photo:
    light and shadow from the skin it covers, white balance, blur, noise and the source's JPEG quality.

    At the end a real-photo face-mask detector (AIZOO, MIT) grades the masks: realism.json (pass rate and
    mean p(mask) per mask type and |yaw| bin), realism_lowest.png (the 16 lowest-scoring faces) and one
    summary line; --no-judge skips it.
    """
    from maskbench.pipeline import parse_shard, write_variant
    from maskbench.synthesis.mask import SynthesisParams, make_transform
    from maskbench.transforms import RandomMask

    def split_list(text: str) -> tuple[str, ...]:
        return () if text.strip().lower() == "all" else tuple(t.strip() for t in text.split(",") if t.strip())

    root = opt.root(data_root)
    sample = opt.judge_sample(judge_sample)
    realism: dict = {}

    def judge(folder: Path, rows: list[dict[str, str]]) -> None:
        from maskbench.judge import items_of, write_realism

        realism.update(write_realism(folder, items_of(folder, rows), sample=sample, seed=seed, progress=True))

    with opt.writing():
        params = SynthesisParams(mask_types=split_list(mask_types), colors=split_list(colors), landmarks=landmarks,
                                 occluders=not no_occluders)
        src_dir = resolve_dataset(src, root)
        reader = open_reader(src_dir)
        out_dir = opt.out(out or f"{src_dir.name}_masked", root, src_dir)
        summary = write_variant(
            reader, out_dir, transform=make_transform(params), transform_name=RandomMask.purpose, seed=seed,
            overwrite=overwrite, resume=resume, limit=limit, workers=workers,
            split=opt.split_rule(split_by, split_seed, train_fraction, val_fraction),
            shard=parse_shard(shard), count_columns=("mask_type", "landmark_source"),
            parameters={"command": "synthesize", "source": src_dir.name, "limit": limit, **params.as_dict(),
                        **({"judge_sample": sample if sample is not None else "all"} if not no_judge else {})},
            data_root=root, biwi_labels=biwi_labels, finalize=None if no_judge else judge,
            finalize_files=judge_rules.REPORT_FILES,
        )
    opt.report(summary, out_dir)
    tests = summary.manifest.get("counts", {}).get("per_split", {}).get("test", 0)
    if params.masks_carry_annotation and tests:
        click.echo(f"note: --landmarks {landmarks} fits the masks to the annotation; {tests} test faces here carry it "
                   "(a model trained on such masks can read the label off them); the manifest and every evaluate "
                   "report on this folder say so. The default, --landmarks detected, does not.", err=True)
    if realism:
        from maskbench.judge import summary_line

        click.echo(summary_line(realism) + " (realism.json, realism_lowest.png)")


@main.command()
@click.argument("shards", nargs=-1, required=True)
@click.option("--out", required=True, help="Output folder. " + opt.OUT_RULE)
@click.option("--overwrite", is_flag=True, help="Replace an earlier maskbench output at --out (swapped in when complete).")
@opt.data_root_option
def merge(shards: tuple[str, ...], out: str, overwrite: bool, data_root: Path | None) -> None:
    """Join the outputs of `--shard 1/N` ... `--shard N/N` into one split.

    The result is byte-identical to an unsharded run (same files, labels.csv and manifest.json).
    """
    from maskbench.pipeline import merge_variants

    root = opt.root(data_root)
    with opt.writing(resumable=False):
        out_dir = opt.out(out, root)
        manifest = merge_variants([resolve_dataset(s, root) for s in shards], out_dir, overwrite=overwrite, data_root=root)
    click.echo(f"merged {len(shards)} shards: {manifest['counts']['samples']} samples in {out_dir}")


@main.command()
@click.argument("split_dirs", nargs=-1, required=True)
@opt.data_root_option
def verify(split_dirs: tuple[str, ...], data_root: Path | None) -> None:
    """Re-check counts and sha256 checksums of splits against their manifest.json.

    Exits 1 and lists every problem (changed, missing or extra files; label rows) when any is found.
    """
    from maskbench.splits import verify_split

    bad = 0
    for name in split_dirs:
        try:
            path = resolve_dataset(name, opt.root(data_root))
        except FileNotFoundError as exc:
            click.echo(f"{name}: {exc}")
            bad += 1
            continue
        problems = verify_split(path)
        click.echo(f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        for p in problems:
            click.echo(f"  {p}")
        bad += bool(problems)
    sys.exit(1 if bad else 0)


@main.command()
@click.argument("src")
@click.option("--protocol-filter/--no-protocol-filter", default=False, help="Apply the 99-degree filter.")
@opt.data_root_option
def info(src: str, protocol_filter: bool, data_root: Path | None) -> None:
    """Read a dataset tree and print its format, counts, pose ranges and unreadable files."""
    import numpy as np

    from maskbench.io.labels import labels_by_id

    try:
        reader = open_reader(resolve_dataset(src, opt.root(data_root)),
                              **opt.protocol_options(protocol_filter))
        rows = labels_by_id(reader.root)  # a maskbench split's labels.csv, checked like every command reads it
    except (FileNotFoundError, DatasetError) as exc:
        opt.fail(str(exc))
    angles = np.array([[s.pose.yaw_deg, s.pose.pitch_deg, s.pose.roll_deg] for s in reader]).reshape(-1, 3)
    n_filtered = sum(len(ids) for ids in reader.filtered.values())
    click.echo(f"{reader.root}: format {reader.fmt.name}, {len(angles)} of {len(reader)} samples kept"
               + (f", {n_filtered} outside the protocol" if protocol_filter else "")
               + f", {len(reader.errors)} unreadable")
    for k, name in enumerate(("yaw_deg", "pitch_deg", "roll_deg")):
        if len(angles):
            col = angles[:, k]
            click.echo(f"  {name:9s} min {col.min():8.2f}  mean {col.mean():8.2f}  max {col.max():8.2f}")
    if rows:
        per_split: dict[str, int] = {}
        for row in rows.values():
            per_split[row["split"]] = per_split.get(row["split"], 0) + 1
        click.echo("  labels.csv rows by split: " + ", ".join(f"{k} {v}" for k, v in sorted(per_split.items())))
    for reason, ids in reader.filtered.items():
        click.echo(f"  filtered ({reason}): {len(ids)}")
    for err in reader.errors:
        click.echo(f"  unreadable: {err}")


if __name__ == "__main__":  # pragma: no cover
    main()
