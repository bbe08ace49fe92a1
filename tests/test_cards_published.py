"""The leaderboard's published models: each card's convention proven on labelled real photos (signs and sizes of
yaw, pitch and roll), and what a user sees when a card's runtime or weights are missing or broken."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskbench import devdata, geometry
from maskbench.cli import main
from maskbench.evaluation import card_runtimes
from maskbench.evaluation.cards import CardError, CardModel, load_card
from maskbench.evaluation.protocol import label_euler_deg, load_item
from maskbench.evaluation.suites import scored_samples

MODELS = devdata.models_dir()
#: card -> (the largest |angle| per axis it is asked about, per-axis tolerance in degrees on those faces)
CARDS = {
    "whenet": ((80, 60, 60), 15.0),
    "3ddfa-v2-mb05": ((80, 60, 60), 15.0),
    "mediapipe-face-landmarker": ((60, 45, 45), 15.0),
    # validated on BIWI only and known to compress large angles (its README): wider tolerance, smaller range
    "openvino-head-pose-adas-0001": ((60, 40, 40), 25.0),
}


def _extreme_faces(dev_half: Path, limits: tuple[int, int, int], per_sign: int = 3) -> list:  # type: ignore[type-arg]
    """For each axis and sign, the ``per_sign`` faces whose label is largest on that axis within its limit while
    the other two axes stay within 25 degrees (a turn mostly about one axis): 18 faces chosen by their labels only."""
    samples, _ = scored_samples(dev_half)
    labels = np.array([label_euler_deg(s) for s in samples])
    chosen: list[int] = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        inside = (np.abs(labels[:, axis]) <= limits[axis]) & (np.abs(labels[:, others]) <= 25).all(axis=1)
        for sign in (1, -1):
            order = np.argsort(-sign * labels[:, axis])
            chosen += [int(k) for k in order if inside[k] and k not in chosen][:per_sign]
    return [samples[k] for k in chosen]


def _sign_and_size_failures(model: CardModel, samples: list, axis_faces: int, tol: float) -> list[str]:  # type: ignore[type-arg]
    """What is wrong with a card's angles on faces chosen per axis and sign (``axis_faces`` each): every face's
    angle on its axis must have the label's sign (a mirrored axis gives the opposite one), and the median error of
    each group must be within ``tol`` (a swapped axis or a wrong scale puts the angle elsewhere)."""
    items = [load_item(s) for s in samples]
    preds = model.predict([dataclasses.replace(it, prepared=model.prepare(it)) for it in items])
    failures, found, groups = [], 0, {}
    for k, (s, pred) in enumerate(zip(samples, preds)):
        if pred is None:
            continue
        found += 1
        axis = k // (2 * axis_faces)
        truth = label_euler_deg(s)[axis]
        got = (pred if pred.shape == (3,) else np.array(geometry.matrix_to_euler_deg(pred)))[axis]
        groups.setdefault(k // axis_faces, []).append(abs(got - truth))
        if np.sign(got) != np.sign(truth):
            failures.append(f"{s.id}: {('yaw', 'pitch', 'roll')[axis]} {got:+.1f} for label {truth:+.1f}")
    failures += [f"faces {g * axis_faces}-{g * axis_faces + axis_faces - 1}: median error {np.median(e):.1f}"
                 for g, e in groups.items() if np.median(e) > tol]
    if found < 0.75 * len(samples):
        failures.append(f"only {found} of {len(samples)} faces found")
    return failures


def _card_model(name: str, **change: object) -> CardModel:
    card = load_card(name)
    folder = MODELS / card.models_folder
    if not folder.is_dir():
        pytest.skip(f"published weights not found at {folder}")
    for runtime_library in [card_runtimes.RUNTIME_LIBRARIES.get(card.runtime)]:
        if runtime_library:
            pytest.importorskip(runtime_library, reason=f"the [cards] extra ({runtime_library}) is not installed")
    return CardModel(dataclasses.replace(card, **change), folder)


#: Each card's convention, mirrored: the sign test must fail on it (so the test can tell a mirror).
MIRRORED = {
    "whenet": {"signs": (-1.0, 1.0, 1.0)},
    "3ddfa-v2-mb05": {"frame": "camera"},
    "mediapipe-face-landmarker": {"frame": "camera"},
    "openvino-head-pose-adas-0001": {"signs": (1.0, 1.0, -1.0)},
}


@pytest.mark.real
@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_signs_and_sizes_on_labelled_photos(name: str, dev_half: Path) -> None:
    """The card as published passes; the card with its convention mirrored fails (>= 3 failures)."""
    limits, tol = CARDS[name]
    samples = _extreme_faces(dev_half, limits)
    failures = _sign_and_size_failures(_card_model(name), samples, 3, tol)
    assert not failures, f"{name}: " + "; ".join(failures)
    mirrored = _sign_and_size_failures(_card_model(name, **MIRRORED[name]), samples, 3, tol)
    assert len(mirrored) >= 3, f"{name} with {MIRRORED[name]} passed the sign test: it cannot tell a mirror"


def _broken_release(tmp_path: Path, name: str) -> Path:
    """A folder holding the card's file names with bytes that are no model."""
    card = load_card(name)
    folder = tmp_path / card.models_folder
    folder.mkdir()
    for w in card.weights:
        (folder / w).write_bytes(b"not a model " * 64)
    if card.runtime == "openvino":
        (folder / card.weights[0]).with_suffix(".bin").write_bytes(b"\0" * 64)
    return folder


@pytest.mark.parametrize("name", sorted(CARDS))
def test_corrupt_weights_one_line_exit_2(name: str, sample_root: Path, tmp_path: Path) -> None:
    card = load_card(name)
    if card.runtime in card_runtimes.RUNTIME_LIBRARIES:
        pytest.importorskip(card_runtimes.RUNTIME_LIBRARIES[card.runtime], reason="the [cards] extra is not installed")
    folder = _broken_release(tmp_path, name)
    result = CliRunner().invoke(main, ["evaluate", name, "--weights", str(folder), "--suite", "AFLW2000",
                                       "--data-root", str(sample_root), "--out", str(tmp_path / "report")])
    assert result.exit_code == 2, result.output
    message = result.output.strip().splitlines()
    assert len(message) == 1 and "Traceback" not in result.output and str(folder) in message[0], result.output
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("name", [n for n in sorted(CARDS) if card_runtimes.RUNTIME_LIBRARIES.get(load_card(n).runtime)])
def test_missing_runtime_names_the_extra(name: str, sample_root: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Cards whose runtime is an optional library (3DDFA_V2 runs in torch, which is always there)."""
    library = card_runtimes.RUNTIME_LIBRARIES[load_card(name).runtime]
    real_import = importlib.import_module

    def without(module: str, *args: object) -> object:
        if module == library:
            raise ImportError(f"No module named {module!r}")
        return real_import(module, *args)

    monkeypatch.setattr(importlib, "import_module", without)
    folder = _broken_release(tmp_path, name)
    with pytest.raises(CardError, match=r"maskbench\[cards\]"):
        CardModel(load_card(name), folder)
    result = CliRunner().invoke(main, ["evaluate", name, "--weights", str(folder), "--suite", "AFLW2000",
                                       "--data-root", str(sample_root), "--out", str(tmp_path / "report")])
    assert result.exit_code == 2 and "pip install 'maskbench[cards]'" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_card_conventions_round_trip() -> None:
    """The frame and Intel conversions: in the y-up frame a face looks along +z (towards the viewer), so a turn
    of +20 degrees about +y moves the nose to image right: maskbench yaw -20; a turn about +z (towards the
    viewer) is counter-clockwise on screen: roll -15. Intel's yaw/pitch/roll are maskbench's -yaw, -pitch, +roll."""
    from maskbench.evaluation.outputs import intel_zyx_to_matrix, to_frame

    yaw_up = geometry.rot_y(np.radians(20.0))  # y-up frame: turning about +y
    assert np.allclose(geometry.matrix_to_euler_deg(to_frame(yaw_up, "y-up")), (-20.0, 0.0, 0.0), atol=1e-9)
    roll_up = geometry.rot_z(np.radians(15.0))  # about the axis towards the viewer
    assert np.allclose(geometry.matrix_to_euler_deg(to_frame(roll_up, "y-up")), (0.0, 0.0, -15.0), atol=1e-9)
    for angles, expect in (((20, 0, 0), (-20, 0, 0)), ((0, 20, 0), (0, -20, 0)), ((0, 0, 20), (0, 0, 20))):
        assert np.allclose(geometry.matrix_to_euler_deg(intel_zyx_to_matrix(*angles)), expect, atol=1e-9)


@pytest.mark.real
def test_the_mediapipe_card_exits_without_a_teardown_traceback(dev_half: Path, tmp_path: Path) -> None:
    """A landmarker left to ``__del__`` at interpreter teardown found mediapipe's dispatcher gone and printed
    "Exception ignored ... 'NoneType' object is not callable" after the full test run; it is closed before the
    thread pools shut down now. Checked in a pytest run of the cards' sign tests and in a plain script: a close
    registered with ``atexit`` (after the pools' shutdown) prints it in the first (this test fails on it). The
    original case showed only at the end of the whole suite, which this test does not run."""
    import subprocess
    import sys

    _card_model("mediapipe-face-landmarker")  # skips without the weights or the runtime
    repo = Path(__file__).resolve().parents[1]
    script = tmp_path / "one_face.py"
    script.write_text("import numpy as np\nfrom maskbench.evaluation.card_runtimes import MediaPipeFaces\n"
                      f"MediaPipeFaces({str(next((MODELS / 'mediapipe_face_landmarker').glob('*.task')))!r})"
                      ".faces(np.zeros((64, 64, 3), np.uint8))\n")
    runs = [[sys.executable, str(script)],
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "signs_and_sizes"]]
    for command in runs:
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "Exception ignored" not in done.stdout + done.stderr, (command, done.stderr[-2000:])
