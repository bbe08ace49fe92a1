"""Masks read nothing of the annotation (a model trained on masks fitted to the annotated landmarks read
0.3 degrees of its answer off the mask's geometry). With the default placement (``detected``: RetinaFace
and 3DDFA_V2 on the pixels), moving every annotation a mask could read — the pose label by up to 5
degrees per axis, the 68 landmarks rotated 5 degrees about their centre (so the face box moves too) —
leaves the masked photos and their occlusion maps byte-identical; the same perturbation does change
``--landmarks gt`` masks (so the test can fail). That placement stays on the face is shown on photos in
tests/test_masks_on_photos.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.datasets import open_reader, threeddfa
from maskbench.io.labels import labels_by_id

N_PHOTOS = 50


def _synthesize(src: Path, out: Path, *extra: str) -> None:
    r = CliRunner().invoke(main, ["synthesize", "--src", str(src), "--out", str(out), "--seed", "0", "--no-judge", *extra])
    assert r.exit_code == 0, r.output


def _files(folder: Path) -> dict[str, bytes]:
    """The masked images and occlusion maps (labels.csv and manifest.json carry the labels)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.suffix in (".jpg", ".png")}


def _rotated_about_centre(points: np.ndarray, degrees: float) -> np.ndarray:
    """(2 or 3, 68) landmark rows (x, y[, z]) with x, y rotated about their centre in the image plane."""
    out = points.astype(np.float64).copy()
    c = out[:2].mean(axis=1, keepdims=True)
    a = np.radians(degrees)
    out[:2] = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ (out[:2] - c) + c
    return out.astype(points.dtype)


@pytest.fixture(scope="module", params=["renders", pytest.param("photos", marks=pytest.mark.real)])
def trees(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Faces as they are and with their annotation moved: every Pose_Para angle by up to 5 degrees,
    ``pt3d_68`` and ``pt2d`` rotated 5 degrees about their centre (the face box is the landmarks' box, so
    it moves too). The sample data's rendered AFLW2000 faces (in any clone), and every 20th photo of the
    AFLW2000 dev half (50 photos; skipped without it)."""
    if request.param == "photos":
        dev = request.getfixturevalue("real_dir") / "aflw2000_dev"
        if not dev.is_dir():
            pytest.skip("AFLW2000 dev half not found")
        faces = sorted(dev.glob("*.jpg"))[::20][:N_PHOTOS]
    else:
        faces = sorted((request.getfixturevalue("sample_root") / "AFLW2000").glob("*.jpg"))
    root = tmp_path_factory.mktemp("labelfree")
    plain, moved = root / "plain", root / "moved"
    plain.mkdir()
    moved.mkdir()
    rng = np.random.default_rng(0)
    for jpg in faces:
        for d in (plain, moved):
            shutil.copyfile(jpg, d / jpg.name)
            shutil.copyfile(jpg.with_suffix(".mat"), d / f"{jpg.stem}.mat")
        mat = threeddfa.load_mat(moved / f"{jpg.stem}.mat")
        mat["Pose_Para"][0, :3] += np.radians(rng.uniform(-5.0, 5.0, 3))
        for key in ("pt3d_68", "pt2d"):
            if key in mat and np.asarray(mat[key]).shape[-1] == 68:
                mat[key] = _rotated_about_centre(np.asarray(mat[key]), 5.0)
        threeddfa.save_mat(moved / f"{jpg.stem}.mat", mat)
    return plain, moved


def test_perturbed_annotation_gives_byte_identical_masks(trees: tuple[Path, Path], tmp_path: Path) -> None:
    plain, moved = trees
    before, after = list(open_reader(plain)), list(open_reader(moved))
    assert [s.pose.yaw_deg for s in before] != [s.pose.yaw_deg for s in after]
    assert all(abs(a.bbox.x_min - b.bbox.x_min) + abs(a.bbox.y_max - b.bbox.y_max) > 0.5 for a, b in zip(before, after))
    _synthesize(plain, tmp_path / "a")
    _synthesize(moved, tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 2 * len(list(plain.glob("*.jpg"))) and a == b
    sources = [r["landmark_source"] for r in labels_by_id(tmp_path / "a").values()]
    assert set(sources) <= {"detected", "missed"} and sources.count("detected") >= 0.85 * len(sources)


def test_the_same_perturbation_moves_masks_fitted_to_the_annotated_landmarks(trees: tuple[Path, Path],
                                                                               tmp_path: Path) -> None:
    """What the test above would catch: ``--landmarks gt`` (the default before) reads the moved landmarks."""
    plain, moved = trees
    _synthesize(plain, tmp_path / "a", "--landmarks", "gt", "--limit", "6")
    _synthesize(moved, tmp_path / "b", "--landmarks", "gt", "--limit", "6")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 12 and sum(a[k] != b[k] for k in a) >= 10


def test_the_pose_route_still_reads_the_label_and_says_so(trees: tuple[Path, Path], tmp_path: Path) -> None:
    """--landmarks pose (the generic face posed with the label) is the one route that does read it;
    its rows say so in landmark_source. (This is also what the byte test above would catch.)"""
    plain, moved = trees
    _synthesize(plain, tmp_path / "a", "--landmarks", "pose", "--limit", "10")
    _synthesize(moved, tmp_path / "b", "--landmarks", "pose", "--limit", "10")
    assert _files(tmp_path / "a") != _files(tmp_path / "b")
    assert {r["landmark_source"] for r in labels_by_id(tmp_path / "a").values()} == {"pose"}


def test_annotation_fitted_test_masks_are_flagged_where_they_are_scored(sample_root: Path, tmp_path: Path) -> None:
    """--landmarks gt on a folder with test faces: one line says the masks carry the annotation, the manifest
    records it, and the evaluate report on the folder carries the note; the default's report does not."""
    import json

    from maskbench.io.manifest import read_manifest

    root = tmp_path / "root"
    shutil.copytree(sample_root / "AFLW2000", root / "AFLW2000")
    notes = {}
    for source in ("gt", "detected"):
        out = root / f"AFLW2000_masked_{source}"
        r = CliRunner().invoke(main, ["synthesize", "--src", str(root / "AFLW2000"), "--out", str(out), "--no-judge",
                                      "--landmarks", source])
        assert r.exit_code == 0, r.output
        said = [line for line in r.output.splitlines() if line.startswith("note: --landmarks")]
        assert len(said) == (1 if source == "gt" else 0) and (not said or "carry it" in said[0])
        assert read_manifest(out)["parameters"]["masks_carry_annotation"] is (source == "gt")
        report = tmp_path / f"eval_{source}"
        r = CliRunner().invoke(main, ["evaluate", "baseline:pnp", "--suite", out.name, "--data-root", str(root),
                                      "--out", str(report)])
        assert r.exit_code == 0, r.output
        notes[source] = json.loads((report / "results.json").read_text())["suites"][out.name]["notes"]
    assert any("carry the annotation" in n for n in notes["gt"])
    assert not any("carry the annotation" in n for n in notes["detected"])
