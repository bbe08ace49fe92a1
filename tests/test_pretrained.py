"""`maskbench train --init`: the RetinaFace-MobileNet0.25 release mapped into the reference model."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.datasets import open_reader
from maskbench.geometry import box_iou
from maskbench.io.atomic import read_image
from maskbench.models.canvas import letterbox
from maskbench.models.inference import detect_letterboxed
from maskbench.models.pretrained import init_model
from maskbench.models.retinaface import RetinaFacePose


def test_the_converted_release_finds_the_dev_half_faces(dev_half: Path, retinaface_release: Path) -> None:
    """Before any pose training, the release's detector inside the reference model (its own
    BGR-minus-mean input, applied exactly) finds >= 99 % of the faces (every second photo of the
    AFLW2000 dev half, 503) at IoU >= 0.4 with the labelled box."""
    model, network = init_model(retinaface_release, {})
    model.eval()
    assert network["input_norm"] == "bgr-mean" and model.input_norm == "bgr-mean"
    samples = list(open_reader(dev_half))[::2]
    found = 0
    for i in range(0, len(samples), 32):
        chunk = samples[i : i + 32]
        for s, faces in zip(chunk, detect_letterboxed(model, [letterbox(read_image(s.image_path), 320) for s in chunk], 320)):
            b = s.bbox
            found += max((float(box_iou(f.box_px, np.array([b.x_min, b.y_min, b.x_max, b.y_max]))[0]) for f in faces),
                         default=0.0) >= 0.4
    assert found >= 0.99 * len(samples), f"{found} of {len(samples)}"


def test_release_input_normalisation_is_exact() -> None:
    """RGB in [0, 1] inside the model equals the release's own input, BGR 0..255 minus the mean."""
    torch.manual_seed(0)
    plain, release = RetinaFacePose().eval(), RetinaFacePose(input_norm="bgr-mean").eval()
    release.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 64, 64)
    bgr_minus_mean = x.flip(1) * 255 - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        a, b = release(x), plain(bgr_minus_mean)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_bad_init_files_get_one_line_errors(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save({"body.stage1.0.0.weight": torch.zeros(3), "ClassHead.0.conv1x1.weight": torch.zeros(1),
                "mystery.layer": torch.zeros(2)}, wrong)
    with pytest.raises(ValueError, match=r"could not be placed: .*mystery\.layer"):
        init_model(wrong, {})
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="unknown weights layout.*conv.weight"):
        init_model(other, {})
    truncated = tmp_path / "truncated.pth"
    torch.save({"state_dict": RetinaFacePose().state_dict()}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        init_model(truncated, {})

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(ValueError, match="needs code"):
        init_model(evil, {})
    r = CliRunner().invoke(main, ["train", "--config", "model1", "--init", str(other), "--out", str(tmp_path / "r"),
                                  "--data-root", str(tmp_path)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
