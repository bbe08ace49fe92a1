"""Per-axis errors equal the literature's at every angle (issue: yaw beyond 90, pitch near 90, unwrapped labels)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from maskbench import geometry
from maskbench.datasets import open_dataset, threeddfa
from maskbench.datasets.sample import make_sample_dataset
from maskbench.evaluation.adapters import EvalItem
from maskbench.evaluation.evaluator import evaluate_suite, label_euler_deg


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


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AFLW2000-format tree whose Pose_Para hold the LABELS (images are irrelevant here)."""
    root = tmp_path_factory.mktemp("euler")
    make_sample_dataset("AFLW2000", root / "src", n=len(LABELS), seed=0, progress=False, scale=0.25)
    shutil.copytree(root / "src", root / "AFLW2000", ignore=shutil.ignore_patterns("labels.csv", "manifest.json"))
    for k, (yaw, pitch, roll) in enumerate(LABELS):
        path = root / "AFLW2000" / f"image{k:05d}.mat"
        mat = threeddfa.load_mat(path)
        mat["Pose_Para"][0, :3] = np.radians([pitch, yaw, roll])
        threeddfa.save_mat(path, mat)
    return root / "AFLW2000"


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_an_8_degree_error_is_8_degrees_at_every_angle(tree: Path, axis: int) -> None:
    """A rotation 8 degrees off on one axis reads as 8 on that axis and 0 on the others, also at a
    true yaw of 86.6 (before: PITCH 180, ROLL 180, MAE 120) and beyond 90."""
    samples = list(open_dataset(tree))
    assert np.array([label_euler_deg(s) for s in samples]) == pytest.approx(np.array(LABELS), abs=1e-4)
    table = {}
    for s, label in zip(samples, LABELS):
        off = list(label)
        off[axis] += 8.0
        table[s.id] = geometry.euler_deg_to_matrix(*off)
    result = evaluate_suite(Lookup(table), "AFLW2000", tree, progress=False)
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
    samples = list(open_dataset(tree))
    table = {s.id: np.array(label_euler_deg(s)) + np.array([2.0, 0.0, 0.0]) for s in samples}
    o = evaluate_suite(Lookup(table), "AFLW2000", tree, progress=False).overall
    assert (o.yaw_mae_deg, o.pitch_mae_deg, o.roll_mae_deg) == pytest.approx((2.0, 0.0, 0.0), abs=1e-9)


def test_unwrapped_labels_of_the_real_set(real_dir: Path) -> None:
    """image03123 stores pitch -713.7, yaw -351.2, roll -972.3 degrees: a perfect prediction scores 0,
    and the stored numbers are what the label says."""
    tree = real_dir / "aflw2000"
    samples = {s.id: s for s in open_dataset(tree)}
    label = label_euler_deg(samples["image03123"])
    assert label == pytest.approx((-351.2, -713.7, -972.3), abs=0.1)
    table = {sid: s.pose.matrix.copy() for sid, s in samples.items()}
    for sid, s in samples.items():
        got = geometry.closest_euler_deg(table[sid], label_euler_deg(s))
        err = np.abs((np.array(got) - np.array(label_euler_deg(s)) + 180) % 360 - 180)
        assert err.max() < 1e-3, sid
    r = evaluate_suite(Lookup(table), "AFLW2000", tree, progress=False)
    assert r.filtered == 2 and r.overall.mae_deg < 1e-3
