"""The real-photo mask detector that grades synthetic masks (AIZOO, plain arrays, run in plain numpy)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from maskbench.cli import main
from maskbench.io.atomic import read_image
from maskbench.io.manifest import read_manifest, verify
from maskbench.judge.detector import anchors, detect, judged_face

#: The detector's own reference outputs (its README): p(mask) of the largest face of unmasked photos.
REFERENCE = {"image00002": 0.000, "image00006": 0.010, "image00010": 0.361, "image00014": 0.009,
             "image00020": 0.001, "image00022": 0.042}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture()
def dev(real_dir: Path) -> Path:
    if not (real_dir / "aflw2000_dev").is_dir():
        pytest.skip("AFLW2000 dev half not found")
    return real_dir / "aflw2000_dev"


def test_the_detector_reproduces_its_reference_outputs(dev: Path) -> None:
    assert len(anchors()) == 5972
    faces = detect([read_image(dev / f"{k}.jpg") for k in REFERENCE])
    for (key, p), found in zip(REFERENCE.items(), faces):
        face = judged_face(found)
        assert face is not None and face.p_mask == pytest.approx(p, abs=0.01), key
        assert not face.passes


def test_synthesize_grades_its_masks_and_lists_the_report_in_the_manifest(dev: Path, tmp_path: Path) -> None:
    src = tmp_path / "D" / "AFLW2000"
    src.mkdir(parents=True)
    for k in REFERENCE:
        for suffix in (".jpg", ".mat"):
            shutil.copyfile(dev / f"{k}{suffix}", src / f"{k}{suffix}")
    root = str(tmp_path / "D")
    code, text = run("synthesize", "--src", "AFLW2000", "--mask-types", "surgical", "--data-root", root)
    assert code == 0, text
    out = tmp_path / "D" / "AFLW2000_masked"
    realism = json.loads((out / "realism.json").read_text())
    assert realism["judged"] == realism["of"] == len(REFERENCE)
    # the masked copies of the same photos now read as masked (the reference gives 0.965-1.000)
    assert realism["overall"]["pass_rate"] == 1.0 and realism["overall"]["mean_p_mask"] > 0.9
    assert set(realism["by_mask_type"]) == {"surgical"} and sum(v["n"] for v in realism["by_abs_yaw_deg"].values()) == 6
    colours = realism["by_mask_type_and_color"]  # per type and colour (a palette the detector misreads shows)
    assert sum(v["n"] for v in colours.values()) == 6 and {k.split(" ")[0] for k in colours} == {"surgical"}
    labels = {r["mask_color"] for r in csv.DictReader((out / "labels.csv").open())}
    assert {k.split(" ", 1)[1] for k in colours} == labels
    sheet = cv2.imread(str(out / "realism_lowest.png"))
    assert sheet is not None and sheet.shape[1] == 4 * 160
    assert "realism (AIZOO real-photo mask detector, 6 of 6 faces): 100.0% read as masked" in text
    files = read_manifest(out)["files"]
    assert "realism.json" in files and "realism_lowest.png" in files and verify(out) == []
    code, text = run("synthesize", "--src", "AFLW2000", "--out", "nojudge", "--no-judge", "--data-root", root)
    assert code == 0 and not (tmp_path / "D" / "nojudge" / "realism.json").exists() and "realism" not in text
    # the unmasked originals as a control: the detector finds all six faces unmasked and reads none as masked
    code, text = run("judge", str(out), "--sources", str(src), "--out", str(tmp_path / "controlled"))
    assert code == 0, text
    control = json.loads((tmp_path / "controlled" / "realism.json").read_text())["sources"]
    assert (control["judged"], control["face_found"], control["read_as_masked"]) == (len(REFERENCE), len(REFERENCE), 0)
    assert control["where_source_found"]["overall"]["n"] == len(REFERENCE)
    assert control["where_source_found"]["overall"]["pass_rate"] == 1.0
    assert "unmasked originals: 6 of 6 faces found, 0 read as masked" in text
    other = tmp_path / "other" / "AFLW2000"  # a dataset without these faces
    other.mkdir(parents=True)
    for suffix in (".jpg", ".mat"):
        shutil.copyfile(dev / f"image00026{suffix}", other / f"image00026{suffix}")
    code, text = run("judge", str(out), "--sources", str(other), "--out", str(tmp_path / "r3"))
    assert code == 2 and "none of the 6 source ids" in text
    code, text = run("judge", str(src), "--sources", str(src), "--out", str(tmp_path / "r4"))  # no labels.csv
    assert code == 2 and "no labels.csv with source ids" in text


def test_judge_grades_any_folder_of_images(sample_root: Path, tmp_path: Path) -> None:
    """A plain folder of images (no labels): every image judged, its largest face's p(mask) as the detector
    gives it; a foreign --out and a bad --sample are refused. (Rendered faces: what the detector reads on
    them is no quality claim; the photo reference is the test above.)"""
    from maskbench.judge.detector import detect

    folder = tmp_path / "plain"
    folder.mkdir()
    images = sorted((sample_root / "AFLW2000").glob("*.jpg"))[:6]
    for path in images:
        shutil.copyfile(path, folder / path.name)
    code, text = run("judge", str(folder), "--out", str(tmp_path / "report"))
    assert code == 0, text
    realism = json.loads((tmp_path / "report" / "realism.json").read_text())
    faces = [judged_face(found) for found in detect([read_image(p) for p in images])]
    found = [f for f in faces if f is not None]
    assert realism["judged"] == realism["of"] == len(images) and realism["overall"]["n"] == len(found) >= 3
    assert realism["overall"]["mean_p_mask"] == pytest.approx(np.mean([f.p_mask for f in found]), abs=1e-6)
    assert realism["overall"]["pass_rate"] == pytest.approx(np.mean([f.passes for f in found]), abs=1e-9)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    code, text = run("judge", str(folder), "--out", str(mine))
    assert code == 2 and "was not written by maskbench" in text
    code, text = run("judge", str(folder), "--sample", "zero", "--out", str(tmp_path / "r2"))
    assert code == 2 and "--sample: 'zero'" in text


def test_judge_names_the_colours_that_read_least_as_masks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import maskbench.judge as judge_module

    def stats(rate: float, n: int) -> dict:
        return {"n": n, "pass_rate": rate, "pass_rate_ci95": [0.0, 1.0], "mean_p_mask": rate}

    colours = {"cloth gingham/burgundy/cream": stats(0.55, 22), "cloth navy": stats(1.0, 40), "kn95 grey": stats(0.85, 18),
               "n95 yellow": stats(0.9, 48), "surgical pink": stats(0.2, 5)}  # too few faces to be named
    summary = {"judged": 133, "of": 133, "overall": stats(0.9, 133), "by_mask_type": {}, "by_abs_yaw_deg": {},
               "by_mask_type_and_color": colours}
    monkeypatch.setattr(judge_module, "write_realism", lambda *a, **k: summary)
    folder = tmp_path / "plain"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    code, text = run("judge", str(folder), "--out", str(tmp_path / "report"))
    assert code == 0, text
    assert ("lowest colours (of 10 faces or more): cloth gingham/burgundy/cream 55.0% of 22, kn95 grey 85.0% of 18, "
            "n95 yellow 90.0% of 48") in text
    assert "surgical pink" not in text and "cloth navy" not in text


def test_the_default_sample_scales_with_the_dataset_and_says_its_precision() -> None:
    from maskbench.judge import default_sample, wilson_interval

    assert [default_sample(n) for n in (6, 1005, 2000, 6667, 122_450)] == [32, 32, 60, 200, 200]
    lo, hi = wilson_interval(94, 100)
    assert lo < 0.94 < hi and hi - lo < 0.12 and 0.0 <= lo and hi <= 1.0
    lo32, hi32 = wilson_interval(30, 32)
    assert hi32 - lo32 > hi - lo  # fewer faces, a wider interval
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_judge_auto_sample_on_a_small_folder_grades_every_face(sample_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    for path in sorted((sample_root / "AFLW2000").glob("*.jpg"))[3:6]:
        shutil.copyfile(path, folder / path.name)
    code, text = run("judge", str(folder), "--sample", "auto", "--out", str(tmp_path / "report"))
    assert code == 0, text
    realism = json.loads((tmp_path / "report" / "realism.json").read_text())
    assert realism["judged"] == realism["of"] == 3 and realism["sample_rule"].startswith("auto")
    lo, hi = realism["overall"]["pass_rate_ci95"]
    assert lo <= realism["overall"]["pass_rate"] <= hi and hi - lo > 0.4  # 3 faces: the interval is wide


def test_the_matrix_product_convolution_and_pooling_match_a_direct_sum() -> None:
    from maskbench.judge.detector import _conv, _max_pool, _weights

    rng = np.random.default_rng(3)
    x = rng.random((2, 5, 7, 3), dtype=np.float32)
    w = _weights()["conv2d_0"]
    kernel, b = w[:-1].reshape(3, 3, 3, -1), w[-1]  # (row, column, in, out), then the bias row
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    direct = np.zeros((2, 5, 7, kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            direct += padded[:, dy : dy + 5, dx : dx + 7] @ kernel[dy, dx]
    direct = np.maximum(direct + b, 0)
    assert np.allclose(_conv(x, "conv2d_0"), direct, atol=1e-5)
    assert np.allclose(_conv(x, "conv2d_0", pad=0), direct[:, 1:-1, 1:-1], atol=1e-5)
    pooled = _max_pool(x)  # odd sizes round up: 5x7 -> 3x4, the last row and column pooled alone
    assert pooled.shape == (2, 3, 4, 3)
    assert np.array_equal(pooled[:, 2, 3], x[:, 4, 6]) and np.array_equal(pooled[:, 0, 0], x[:, :2, :2].max(axis=(1, 2)))


def test_judging_does_not_import_torch(sample_root: Path) -> None:
    code = ("import sys, cv2; from maskbench.judge import detect; "
            f"detect([cv2.imread({str(sample_root / 'AFLW2000' / 'image00000.jpg')!r})]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_an_original_shared_by_several_judged_images_is_judged_once(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import maskbench.judge.grading as judge_module
    from maskbench.judge import Face, Item, Source, grade

    # made-up images: the pixel value says which file it is; the fake detector answers from it
    shades = {"a1": 10, "a2": 20, "b": 30, "src_a": 200, "src_b": 210}
    for name, shade in shades.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.full((8, 8, 3), shade, np.uint8))
    seen: list[int] = []

    def fake_detect(images):  # type: ignore[no-untyped-def]
        seen.extend(int(im[0, 0, 0]) for im in images)
        # the masked copies read as masked, src_a as masked too (a false alarm), src_b as bare
        return [[Face((0.0, 0.0, 8.0, 8.0), 0.9, 0.1) if int(im[0, 0, 0]) != 210 else
                 Face((0.0, 0.0, 8.0, 8.0), 0.1, 0.9)] for im in images]

    monkeypatch.setattr(judge_module, "detect", fake_detect)
    items = [Item(n, str(tmp_path / f"{n}.png"), source_id=s) for n, s in (("a1", "A"), ("a2", "A"), ("b", "B"))]
    sources = {"A": Source(str(tmp_path / "src_a.png")), "B": Source(str(tmp_path / "src_b.png"))}
    summary, judged = grade(items, sample=None, sources=sources)
    assert sorted(seen) == [10, 20, 30, 200, 210]  # src_a read and detected once for its two copies
    control = summary["sources"]
    assert (control["judged"], control["face_found"], control["read_as_masked"]) == (3, 3, 2)  # counted per copy
    assert control["where_source_found"]["overall"]["n"] == 3 and len(judged) == 3


def test_the_real_mask_yardstick_ships_with_its_procedure() -> None:
    """real_masks.json: the judge's pass rate on REAL masked photos per image-estimated |yaw| bin, each rate
    inside its own 95 % interval, the bins adding up, made by a script that exists."""
    from maskbench.judge.report import REAL_MASKS

    real = json.loads(REAL_MASKS.read_text())
    assert (Path(__file__).resolve().parents[1] / real["command"].split()[-1]).is_file()
    masked = real["masked"]
    bins = masked["by_estimated_abs_yaw_deg"]
    assert set(bins) == {"0-30", "30-60", "60-180"}
    assert sum(b["n"] for b in bins.values()) == masked["overall"]["n"] >= 300
    for b in bins.values():
        lo, hi = b["pass_rate_ci95"]
        assert lo <= b["pass_rate"] <= hi
    assert real["unmasked"]["overall"]["pass_rate"] < 0.1  # bare faces are not read as masked


def test_realism_sets_its_rates_beside_real_masks_on_one_yaw_scale(dev: Path, tmp_path: Path) -> None:
    """realism.json bins the judged faces by |yaw| read from the image (3DDFA_V2), as the real masks were,
    and sets each bin's rate beside theirs; the estimate follows the labels on dev photos."""
    from maskbench.datasets import open_reader
    from maskbench.judge import Item, summary_line, write_realism

    samples = sorted(open_reader(dev), key=lambda s: abs(s.pose.yaw_deg))
    chosen = samples[:: max(1, len(samples) // 12)][:12]
    items = [Item(s.id, str(s.image_path), (s.bbox.x_min, s.bbox.y_min, s.bbox.x_max, s.bbox.y_max), "surgical",
                  abs(s.pose.yaw_deg)) for s in chosen]
    summary = write_realism(tmp_path, items, sample=None)
    on_disk = json.loads((tmp_path / "realism.json").read_text())
    versus = on_disk["versus_real_masks"]
    assert set(versus) == {"0-30", "30-60", "60-180"}
    assert sum(v["synthetic_n"] for v in versus.values()) == len(items)
    for b, v in versus.items():
        if v["synthetic"] is not None:
            assert v["at_or_above_real_lower_bound"] == (v["synthetic"] >= v["real_ci95"][0])
            assert v["synthetic"] == summary["by_estimated_abs_yaw_deg"][b]["pass_rate"]
    assert "synthetic vs real masks" in summary_line(summary)
    from maskbench.judge.grading import estimated_yaw

    gaps = [abs(estimated_yaw(it, read_image(it.path), None).estimated_abs_yaw_deg - it.abs_yaw_deg) for it in items]
    assert np.median(gaps) < 8.0
