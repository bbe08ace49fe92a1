"""Sample data, readers and writers: exact labels, exact round trips, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from maskbench.datasets import DatasetError, open_reader
from maskbench.datasets.base import resolve_dataset
from maskbench.datasets.biwi import label_matrix
from maskbench.datasets.registry import detect_format
from maskbench.io.labels import read_labels
from maskbench.io.manifest import verify
from maskbench.sampledata import make_sample_dataset, plan, render_sample
from maskbench.types import HeadPose
from tests.roundtrip import assert_write_read_identical

FORMATS = ["BIWI", "300W_LP", "AFLW2000"]


@pytest.mark.parametrize("name", FORMATS)
def test_sample_tree_reads_back_with_the_rendered_labels(sample_root: Path, name: str) -> None:
    reader = open_reader(sample_root / name)
    assert reader.fmt.name == name
    got = {s.id: s for s in reader}
    assert reader.errors == []
    expected = plan(name, 8)
    assert sorted(got) == sorted(p.sample_id for p in expected)
    for planned in expected:
        truth, _ = render_sample(name, planned, seed=0)
        s = got[planned.sample_id]
        assert s.pose.geodesic_deg(truth.pose) < 1e-6
        assert s.bbox.center_px == pytest.approx(truth.bbox.center_px, abs=1e-6)
        if truth.landmarks_px is not None:
            np.testing.assert_array_equal(s.landmarks_px, truth.landmarks_px)


@pytest.mark.parametrize("name", FORMATS)
def test_sample_tree_labels_and_manifest(sample_root: Path, name: str) -> None:
    assert verify(sample_root / name) == []
    rows = read_labels(sample_root / name)
    samples = {s.id: s for s in open_reader(sample_root / name)}
    assert len(rows) == len(samples) == 8
    for row in rows:
        s = samples[row["id"]]
        label = HeadPose(label_matrix(s))  # BIWI: the literature convention (the default), else the pose
        assert float(row["yaw_deg"]) == pytest.approx(label.yaw_deg, abs=1e-6)
        assert float(row["pitch_deg"]) == pytest.approx(label.pitch_deg, abs=1e-6)
        assert float(row["roll_deg"]) == pytest.approx(label.roll_deg, abs=1e-6)
        assert (sample_root / name / row["image"]).resolve() == s.image_path.resolve()
        assert row["source_id"] == row["id"]
    splits = {r["split"] for r in rows}
    assert splits == {"AFLW2000": {"test"}, "300W_LP": {"train"}, "BIWI": {"train", "test"}}[name]


def test_sample_is_deterministic(tmp_path: Path) -> None:
    a = make_sample_dataset("AFLW2000", tmp_path / "a", n=2, seed=3, progress=False)
    b = make_sample_dataset("AFLW2000", str(tmp_path / "b"), n=2, seed=3, progress=False)  # a string path works too
    c = make_sample_dataset("AFLW2000", tmp_path / "c", n=2, seed=4, progress=False)
    assert a["files"] == b["files"]
    assert a["files"] != c["files"]
    assert [s.id for s in open_reader(str(tmp_path / "b"))] == [s.id for s in open_reader(tmp_path / "a")]


@pytest.mark.parametrize("name", FORMATS)
def test_read_write_read_is_identical(sample_root: Path, tmp_path: Path, name: str) -> None:
    assert_write_read_identical(sample_root / name, tmp_path)


@pytest.mark.parametrize("name", FORMATS)
def test_re_encoded_image_with_changed_pose_reads_back(sample_root: Path, tmp_path: Path, name: str) -> None:
    """Writing a changed pose (as transforms will) gives the new labels back, not the stored ones."""
    from maskbench.geometry import rotate_in_plane
    from maskbench.io.atomic import read_image

    reader = open_reader(sample_root / name)
    s = next(iter(reader))
    new_pose = rotate_in_plane(s.pose, 20.0)
    changed = s.replace(pose=new_pose)
    reader.fmt.write(tmp_path, changed, read_image(s.image_path))
    back = {x.id: x for x in open_reader(tmp_path, fmt=reader.fmt)}[s.id]
    assert back.pose.geodesic_deg(new_pose) < 1e-5
    assert back.pose.geodesic_deg(s.pose) > 19


def test_bad_files_are_reported_and_the_good_ones_read(sample_root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "AFLW2000"
    shutil.copytree(sample_root / "AFLW2000", tree)
    (tree / "manifest.json").unlink()
    (tree / "image00001.mat").write_bytes(b"")  # zero bytes
    (tree / "image00002.mat").write_bytes(b"garbage, not a mat file" * 10)
    (tree / "image00003.mat").unlink()  # missing label file
    import scipy.io

    mat = scipy.io.loadmat(tree / "image00004.mat")
    del mat["Pose_Para"]
    scipy.io.savemat(tree / "image00004.mat", mat)
    mat = scipy.io.loadmat(tree / "image00005.mat")
    mat["Pose_Para"][0, 1] = np.nan
    scipy.io.savemat(tree / "image00005.mat", mat)
    reader = open_reader(tree)
    good = [s.id for s in reader]
    assert good == ["image00000", "image00006", "image00007"]
    problems = {Path(e.path).name: e.problem for e in reader.errors}
    assert set(problems) == {f"image0000{k}.mat" for k in range(1, 6)}
    assert "empty" in problems["image00001.mat"]
    assert "cannot read" in problems["image00002.mat"]
    assert "not found" in problems["image00003.mat"]
    assert "Pose_Para" in problems["image00004.mat"]
    assert "NaN" in problems["image00005.mat"]
    assert all("\n" not in str(e) for e in reader.errors)


@pytest.mark.parametrize(("name", "points_key", "rows"), [("AFLW2000", "pt3d_68", 3), ("300W_LP", "pt2d", 2)])
def test_3ddfa_landmarks_missing_or_misshapen_name_the_file_and_key(sample_root: Path, tmp_path: Path, name: str,
                                                                   points_key: str, rows: int) -> None:
    import scipy.io

    tree = tmp_path / name
    shutil.copytree(sample_root / name, tree)
    (tree / "manifest.json").unlink()
    mats = sorted(tree.rglob("*.mat"))
    mats = [m for m in mats if not m.name.endswith("_pts.mat")][:2]
    mat = scipy.io.loadmat(mats[0])
    del mat[points_key]
    scipy.io.savemat(mats[0], mat)
    mat = scipy.io.loadmat(mats[1])
    mat[points_key] = np.asarray(mat[points_key])[:, :60]
    scipy.io.savemat(mats[1], mat)
    reader = open_reader(tree)
    assert len(list(reader)) == 6
    problems = {e.path: e.problem for e in reader.errors}  # paths relative to the tree
    assert problems[mats[0].relative_to(tree).as_posix()] == f"missing key {points_key!r}"
    assert problems[mats[1].relative_to(tree).as_posix()] == f"{points_key} has shape ({rows}, 60), expected ({rows}, 68)"


def test_biwi_bad_pose_and_missing_calibration(sample_root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "BIWI"
    shutil.copytree(sample_root / "BIWI", tree)
    (tree / "manifest.json").unlink()
    (tree / "hpdb/01/frame_00003_pose.txt").write_text("1 2 3\nnot numbers\n")
    (tree / "hpdb/02/rgb.cal").unlink()
    reader = open_reader(tree)
    good = [s.id for s in reader]
    assert good and all(g.startswith("01/") for g in good) and "01/frame_00003" not in good
    msgs = [str(e) for e in reader.errors]
    assert any("frame_00003_pose.txt" in m for m in msgs)
    assert sum("rgb.cal" in m and "not found" in m for m in msgs) == 4


def test_missing_dataset_message_says_how_to_get_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="maskbench sample --dataset"):
        resolve_dataset("BIWI", tmp_path)


def test_unrecognised_tree_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match=str(tmp_path)):
        detect_format(tmp_path)
