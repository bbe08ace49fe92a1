"""Bad inputs during a run: each is a one-line error naming the file; the run goes on and counts it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from maskbench.augment.rotation import RotationParams
from maskbench.augment.rotation import make_transform as rotation_transform
from maskbench.datasets import open_reader
from maskbench.io.manifest import read_manifest, verify
from maskbench.pipeline import write_variant
from maskbench.synthesis.mask import SynthesisParams
from maskbench.synthesis.mask import make_transform as synthesis_transform


def broken_tree(sample_root: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "AFLW2000"
    shutil.copytree(sample_root / "AFLW2000", tree)
    for name in ("manifest.json", "labels.csv"):
        (tree / name).unlink()
    (tree / "image00000.jpg").write_bytes(b"")  # zero bytes
    data = (tree / "image00001.jpg").read_bytes()
    (tree / "image00001.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    (tree / "image00002.jpg").write_bytes(b"%PDF-1.4 this is not an image" * 20)
    return tree


@pytest.mark.parametrize("command", ["rotate", "synthesize"])
def test_run_continues_past_bad_images(sample_root: Path, tmp_path: Path, command: str) -> None:
    tree = broken_tree(sample_root, tmp_path)
    reader = open_reader(tree)
    transform = (rotation_transform(reader.fmt, RotationParams()) if command == "rotate"
                 else synthesis_transform(SynthesisParams()))
    out = tmp_path / "out"
    summary = write_variant(reader, out, transform=transform, transform_name=command, parameters={}, seed=0,
                          progress=False)
    # a truncated JPEG still decodes partially in OpenCV (grey bottom); it is processed, not lost
    assert summary.written + len(summary.skipped) == 8
    reasons = "\n".join(summary.skipped)
    assert "image00000.jpg: image is empty (0 bytes)" in reasons
    assert "image00002.jpg: not a decodable image" in reasons
    assert all("\n" not in s for s in summary.skipped)
    assert read_manifest(out)["skipped"] == summary.skipped
    assert verify(out) == []


def test_spaces_and_non_ascii_names(sample_root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "AFLW 2000 ö"
    tree.mkdir()
    for suffix in (".jpg", ".mat"):
        shutil.copyfile(sample_root / "AFLW2000" / f"image00003{suffix}", tree / f"bild 03 ä{suffix}")
    reader = open_reader(tree)
    out = tmp_path / "rotated ü"
    summary = write_variant(reader, out, transform=rotation_transform(reader.fmt, RotationParams()),
                          transform_name="rotate", parameters={}, seed=0, progress=False)
    assert summary.written == 1 and (out / "bild 03 ä.jpg").is_file()
    assert verify(out) == []
    assert [s.id for s in open_reader(out)] == ["bild 03 ä"]


def test_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    from maskbench.datasets import DatasetError

    with pytest.raises(DatasetError, match="not a BIWI, 300W_LP or AFLW2000 tree"):
        open_reader(tmp_path)


def test_unreadable_file(sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A label file the user may not read is reported, the rest read. (Root reads files whatever their
    permissions: there the refusal the OS would give is raised where the file is opened.)"""
    tree = tmp_path / "A"
    shutil.copytree(sample_root / "AFLW2000", tree)
    (tree / "image00004.mat").chmod(0)
    if os.geteuid() == 0:
        from maskbench.io import matv5

        real_load = matv5.load_mat

        def refuse(path: Path):  # type: ignore[no-untyped-def]
            if Path(path).stat().st_mode & 0o777 == 0:
                raise PermissionError(13, "Permission denied", str(path))
            return real_load(path)

        monkeypatch.setattr(matv5, "load_mat", refuse)
    reader = open_reader(tree)
    assert len(list(reader)) == 7
    assert any("image00004.mat" in str(e) for e in reader.errors)


def test_landmarks_outside_the_image_are_reported(sample_root: Path, tmp_path: Path) -> None:
    import scipy.io

    tree = tmp_path / "A"
    shutil.copytree(sample_root / "AFLW2000", tree)
    for name in ("manifest.json", "labels.csv"):
        (tree / name).unlink()
    mat = scipy.io.loadmat(tree / "image00005.mat")
    mat["pt3d_68"][0] += 5000.0  # every landmark far to the right of the 450 px image
    scipy.io.savemat(tree / "image00005.mat", mat)
    summary = write_variant(open_reader(tree), tmp_path / "out", transform=synthesis_transform(SynthesisParams(landmarks="gt")),
                          transform_name="synthesize", parameters={}, seed=0, progress=False)
    assert summary.written == 7
    (reason,) = summary.skipped
    assert "image00005.jpg" in reason and "outside the 450x450 image" in reason
    # the default placement does not read those landmarks: the face is found by the detector, or (its labelled
    # box being off the image, no detection is on it) written unmasked and listed
    summary = write_variant(open_reader(tree), tmp_path / "out2", transform=synthesis_transform(SynthesisParams()),
                            transform_name="synthesize", parameters={}, seed=0, progress=False)
    assert summary.written == 8 and not summary.skipped and "image00005" in summary.manifest["missed_faces"]["ids"]


def test_permission_error_is_a_clear_error(sample_root: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Runs as root cannot make a file unreadable, so the OS error is simulated where the file is opened."""
    from maskbench.io import matv5

    real_loadmat = matv5.load_mat

    def loadmat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith("image00004.mat"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_loadmat(path, *args, **kwargs)

    monkeypatch.setattr(matv5, "load_mat", loadmat)
    reader = open_reader(sample_root / "AFLW2000")
    assert len(list(reader)) == 7
    (err,) = reader.errors
    assert err.path.endswith("image00004.mat") and "PermissionError" in err.problem
