"""Per-axis errors equal the literature's at every angle (issue: yaw beyond 90, pitch near 90, unwrapped labels)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from maskbench import geometry
from maskbench.datasets import open_reader, threeddfa
from maskbench.evaluation.evaluator import evaluate_suite
from maskbench.evaluation.protocol import EvalItem, label_euler_deg
from maskbench.sampledata import make_sample_dataset


class Lookup:
    """A model that answers from a table of per-id outputs (matrices or Euler triples)."""

    name = "lookup"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def predict(self, items: Sequence[EvalItem]) -> list[np.ndarray | None]:
        return [self.table[item.sample_id].copy() for item in items]


def test_both_euler_triples_build_the_same_matrix() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = geometry.euler_deg_to_matrix(*rng.uniform(-180, 180, 3))
        first, twin = geometry.euler_triples_deg(m)
        assert geometry.geodesic_deg(geometry.euler_deg_to_matrix(*twin), m) < 1e-7
        assert geometry.geodesic_deg(geometry.euler_deg_to_matrix(*first), m) < 1e-7
        assert abs(first[0]) <= 90 and (abs(twin[0]) >= 90 or abs(abs(twin[0]) - 90) < 1e-9)


# stored (yaw, pitch, roll) labels: yaw 80-99 on both sides, pitch near 90
LABELS = [(80.0, 5.0, -3.0), (86.6, -4.0, 2.0), (95.0, 3.0, 1.0), (99.0, -10.0, 4.0), (-86.6, 2.0, -1.0),
          (-95.0, -6.0, 3.0), (-99.0, 8.0, -2.0), (30.0, 88.0, 5.0), (-20.0, -89.5, 0.0)]


def labelled_tree(root: Path, labels: list[tuple[float, float, float]]) -> Path:
    """A raw AFLW2000-format tree whose Pose_Para hold ``labels`` (yaw, pitch, roll degrees; the
    images are irrelevant here)."""
    make_sample_dataset("AFLW2000", root / "src", n=len(labels), seed=0, progress=False, scale=0.25)
    shutil.copytree(root / "src", root / "AFLW2000", ignore=shutil.ignore_patterns("labels.csv", "manifest.json"))
    for k, (yaw, pitch, roll) in enumerate(labels):
        path = root / "AFLW2000" / f"image{k:05d}.mat"
        mat = threeddfa.load_mat(path)
        mat["Pose_Para"][0, :3] = np.radians([pitch, yaw, roll])
        threeddfa.save_mat(path, mat)
    return root / "AFLW2000"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return labelled_tree(tmp_path_factory.mktemp("euler"), LABELS)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_an_8_degree_error_is_8_degrees_at_every_angle(tree: Path, axis: int) -> None:
    """With ``--euler closest``, a rotation 8 degrees off on one axis reads as 8 on that axis and 0 on
    the others, also at a true yaw of 86.6 (fixed: PITCH 180, ROLL 180, MAE 120) and beyond 90."""
    samples = list(open_reader(tree))
    assert np.array([label_euler_deg(s) for s in samples]) == pytest.approx(np.array(LABELS), abs=1e-4)
    table = {}
    for s, label in zip(samples, LABELS):
        off = list(label)
        off[axis] += 8.0
        table[s.id] = geometry.euler_deg_to_matrix(*off)
    result = evaluate_suite(Lookup(table), "AFLW2000", tree, progress=False, euler="closest")
    errors = [result.overall.yaw_mae_deg, result.overall.pitch_mae_deg, result.overall.roll_mae_deg]
    expected = [0.0, 0.0, 0.0]
    expected[axis] = 8.0
    assert errors == pytest.approx(expected, abs=1e-3)
    for row in result.rows:  # every face, not just on average
        got = np.array([row["pred_yaw_deg"], row["pred_pitch_deg"], row["pred_roll_deg"]])
        true = np.array([row["true_yaw_deg"], row["true_pitch_deg"], row["true_roll_deg"]])
        err = np.abs((got - true + 180) % 360 - 180)
        assert err == pytest.approx(expected, abs=1e-3), row["id"]
    assert result.overall.geodesic_deg == pytest.approx(8.0, abs=1e-3)


def test_euler_outputs_are_compared_as_given(tree: Path) -> None:
    """A model that outputs angles (FSA-Net, a predictions CSV) is scored on those numbers: yaw 97 for a
    label of 95 is 2 degrees of yaw error, nothing else."""
    samples = list(open_reader(tree))
    table = {s.id: np.array(label_euler_deg(s)) + np.array([2.0, 0.0, 0.0]) for s in samples}
    o = evaluate_suite(Lookup(table), "AFLW2000", tree, progress=False).overall
    assert (o.yaw_mae_deg, o.pitch_mae_deg, o.roll_mae_deg) == pytest.approx((2.0, 0.0, 0.0), abs=1e-9)


def test_unwrapped_labels_of_the_real_set(real_dir: Path) -> None:
    """image03123 stores pitch -713.7, yaw -351.2, roll -972.3 degrees: a perfect prediction scores 0,
    and the stored numbers are what the label says."""
    tree = real_dir / "aflw2000"
    samples = {s.id: s for s in open_reader(tree)}
    label = label_euler_deg(samples["image03123"])
    assert label == pytest.approx((-351.2, -713.7, -972.3), abs=0.1)
    table = {sid: s.pose.matrix.copy() for sid, s in samples.items()}
    for sid, s in samples.items():
        got = geometry.closest_euler_deg(table[sid], label_euler_deg(s))
        err = np.abs((np.array(got) - np.array(label_euler_deg(s)) + 180) % 360 - 180)
        assert err.max() < 1e-3, sid
    r = evaluate_suite(Lookup(table), "AFLW2000", tree, progress=False, euler="closest")
    assert r.filtered == 2 and r.overall.mae_deg < 1e-3


# labels at yaw 85-95 (both sides of the decomposition's limit), pitch and roll not zero
NEAR_90 = [(85.0, 10.0, -5.0), (86.0, -12.0, 6.0), (87.5, 4.0, 3.0), (90.0, 8.0, -7.0), (92.5, -6.0, 2.0),
           (95.0, 5.0, 9.0)]
MIXED_ERROR_DEG = (3.0, -2.0, 4.0)  # on every axis at once


@pytest.fixture(scope="module")
def near_90(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return labelled_tree(tmp_path_factory.mktemp("near90"), NEAR_90)


def _rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_fixed_decomposes_once_and_closest_follows_the_label_near_yaw_90(near_90: Path) -> None:
    """The default (fixed) is the literature's: each predicted rotation decomposed once, yaw in [-90, 90].
    With a mixed (3, -2, 4) error, a face whose predicted yaw stays below 90 reads exactly that error in
    both modes; past 90 the fixed decomposition reads pitch and roll near 180 off, closest reads the
    error. The geodesic error is the same in both and is the rotation between the two matrices."""
    samples = list(open_reader(near_90))
    table = {s.id: geometry.euler_deg_to_matrix(*(np.array(label_euler_deg(s)) + MIXED_ERROR_DEG)) for s in samples}
    fixed = evaluate_suite(Lookup(table), "AFLW2000", near_90, progress=False)
    closest = evaluate_suite(Lookup(table), "AFLW2000", near_90, progress=False, euler="closest")
    for rf, rc, s in zip(fixed.rows, closest.rows, samples):
        true = np.array([rf["true_yaw_deg"], rf["true_pitch_deg"], rf["true_roll_deg"]])
        got_f = np.array([rf["pred_yaw_deg"], rf["pred_pitch_deg"], rf["pred_roll_deg"]])
        got_c = np.array([rc["pred_yaw_deg"], rc["pred_pitch_deg"], rc["pred_roll_deg"]])
        err_f = np.abs((got_f - true + 180) % 360 - 180)
        err_c = np.abs((got_c - true + 180) % 360 - 180)
        assert abs(got_f[0]) <= 90 + 1e-9  # decomposed once, in the convention's range
        assert geometry.geodesic_deg(geometry.euler_deg_to_matrix(*got_f), table[s.id]) < 1e-6
        assert err_c == pytest.approx(np.abs(MIXED_ERROR_DEG), abs=1e-6), rf["id"]
        if true[0] + MIXED_ERROR_DEG[0] < 90:
            assert err_f == pytest.approx(np.abs(MIXED_ERROR_DEG), abs=1e-6), rf["id"]
        else:
            assert err_f[1] > 170 and err_f[2] > 170, rf["id"]
    assert fixed.overall.mae_deg > 50 > closest.overall.mae_deg
    expected_geo = np.mean([_rotation_angle_deg(table[s.id], s.pose.matrix) for s in samples])
    assert fixed.overall.geodesic_deg == pytest.approx(expected_geo, abs=1e-6)
    assert closest.overall.geodesic_deg == pytest.approx(expected_geo, abs=1e-6)


def test_the_report_names_the_euler_mode_and_gives_the_geodesic_error(near_90: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from maskbench.cli import main

    preds = tmp_path / "p.csv"
    preds.write_text("id,yaw_deg,pitch_deg,roll_deg\n" + "".join(
        f"{s.id},{y},{p},{r}\n" for s, (y, p, r) in zip(open_reader(near_90), NEAR_90)))
    r = CliRunner().invoke(main, ["evaluate", "--predictions", str(preds), "--suite", str(near_90),
                                  "--out", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "e" / "results.json").read_text())
    assert data["euler"] == "fixed"
    report = (tmp_path / "e" / "report.md").read_text()
    assert "Euler fixed" in report and "| MAE | GEODESIC |" in report
