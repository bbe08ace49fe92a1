"""Masks on real photographs (the AFLW2000 dev half, the real BIWI frame, the fixture photos): coverage and
placement, occluders, the chin, profiles, the dlib and pose landmark routes, a BIWI mask that ignores the
label. Real-photo evidence as a whole: without the real fixture folder (``$MASKBENCH_FIXTURES``, else
../shared/fixtures/real) the module skips as one. The same routes' plumbing runs on the sample data in
tests/test_synthesize.py, tests/test_masks_real.py and tests/test_masks_label_free.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from maskbench.datasets import open_reader
from maskbench.io.atomic import read_image
from maskbench.io.labels import labels_by_id, read_labels
from maskbench.synthesis.fitting import fit_mask
from maskbench.synthesis.landmarks import dlib_detected_landmarks, landmarks_for
from maskbench.synthesis.mask import EYES, MOUTH_AND_LOWER_NOSE, SynthesisParams, landmarks_inside, mask_sample
from tests.realfiles import require_fixtures
from tests.test_masks_label_free import N_PHOTOS, _files, _synthesize
from tests.test_masks_real import _paste_object
from tests.test_synthesize import synthesize

require_fixtures()


def _dev(real_dir: Path) -> list:
    return list(open_reader(real_dir / "aflw2000_dev"))


def _check(real_dir: Path) -> list:
    """The CHECK photos (odd index by file name): the constants fitted on photos were fitted on the
    even-indexed ones (``docs/fit_constants.py``), so tests of those constants read only these."""
    return _dev(real_dir)[1::2]


def test_dev_half_every_face_masked_in_place_and_few_occluders(real_dir: Path) -> None:
    """All 1,005 dev-half faces get a mask; mouth and lower nose under it, eyes not; occluders rare.

    The occluder rule's OCCLUDER_CHROMA_Z (3.5) was fitted on the even-indexed photos (by-eye labels,
    best F1: 5.4 % of them flagged); its rate is asserted on the odd-indexed CHECK photos only."""
    samples = _dev(real_dir)
    covered, eyes, flagged = [], [], []
    for k, s in enumerate(samples):
        masked, _ = mask_sample(s, read_image(s.image_path), np.random.default_rng(k), SynthesisParams())
        occ = masked.aux_images["occlusion"]
        covered.append(landmarks_inside(occ, s.landmarks_px[MOUTH_AND_LOWER_NOSE]))
        eyes.append(landmarks_inside(occ, s.landmarks_px[EYES]))
        flagged.append(masked.extra["occluder_px"] > 0)
    assert len(covered) == len(samples) == 1005
    assert np.concatenate(covered).mean() >= 0.95
    assert np.concatenate(eyes).mean() <= 0.02
    check_rate = float(np.mean(flagged[1::2]))  # the CHECK photos
    # measured 5.8 %, 29 of 502 (faces with anything kept on top; 10.2 % before shadows were lifted)
    assert check_rate <= 0.08, check_rate


def test_the_lower_edge_reaches_under_the_chin(real_dir: Path) -> None:
    """Surgical, N95 and KN95 masks end at or under the chin (landmark 8) on the CHECK photos with
    |yaw| < 45: the chin anchor is followed even when this face's chin lies well below the generic
    one's (it used not to be: medians of 3.6 to 8.8 % of the face height above the chin)."""
    from maskbench.synthesis.landmark_pose import landmark_rotation

    picks = [s for s in _check(real_dir) if abs(s.pose.yaw_deg) < 45][:60]
    for name in ("surgical", "n95", "kn95"):
        below = []
        for s in picks:
            lm = s.landmarks_px
            fit = fit_mask(name, landmark_rotation(lm), lm, (450, 450, 3))
            col = int(round(lm[8, 0])) - fit.x0
            ys = np.flatnonzero(fit.covered[:, max(col - 2, 0) : max(col + 3, 0)].any(axis=1)) + fit.y0
            # no mask in the chin's column counts as a face height above it
            below.append((ys.max() - lm[8, 1]) / np.linalg.norm(lm[8] - lm[27]) if len(ys) else -1.0)
        below = np.array(below)
        assert np.median(below) >= -0.01, (name, np.median(below))
        assert np.mean(below >= -0.05) >= 0.85, (name, np.mean(below >= -0.05))


def test_an_object_in_front_of_the_mouth_stays_on_top(real_dir: Path) -> None:
    picks = [s for s in _dev(real_dir) if abs(s.pose.yaw_deg) < 20 and abs(s.pose.pitch_deg) < 15][:12]
    kept_fraction, painted_fraction = [], []
    for k, s in enumerate(picks):
        image, where = _paste_object(read_image(s.image_path), s)
        core = cv2.erode(where.view(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        footprint = None
        for keep_occluders, store in ((False, painted_fraction), (True, kept_fraction)):
            params = SynthesisParams(mask_types=("surgical",), occluders=keep_occluders)
            masked, out = mask_sample(s, image, np.random.default_rng(k), params)
            occ = masked.aux_images["occlusion"] > 0
            if footprint is None:  # where the mask would lie with nothing in front of it
                footprint = core & occ
            unchanged = np.abs(out.astype(int) - image.astype(int)).max(axis=2) <= 3
            store.append(float((unchanged & ~occ)[footprint].mean()))
    assert np.mean(kept_fraction) >= 0.9, kept_fraction
    assert np.mean(painted_fraction) <= 0.05, painted_fraction  # --no-occluders paints over it


def test_the_background_ahead_of_a_profile_is_never_an_occluder(real_dir: Path) -> None:
    """At a profile the mask spans from the nose tip to the chin over the background in front of the
    lips: drawn with occluders on, it covers there what it covers with them off (the background's
    colour used to be taken for an object in front and cut notches into the mask's front edge:
    image00473, 00599, 00032 among the CHECK photos at |yaw| >= 60)."""
    from maskbench.synthesis.landmark_pose import landmark_rotation
    from maskbench.synthesis.silhouette import ahead_of_profile

    picks = [s for s in _check(real_dir) if abs(s.pose.yaw_deg) >= 60][:40]
    ahead_px = covered_px = 0
    for k, s in enumerate(picks):
        image = read_image(s.image_path)
        ahead = ahead_of_profile(s.landmarks_px, landmark_rotation(s.landmarks_px), image.shape)
        assert ahead is not None  # a profile is turned
        maps = [mask_sample(s, image, np.random.default_rng(k), SynthesisParams(mask_types=("n95",), occluders=o))[0]
                .aux_images["occlusion"] > 0 for o in (False, True)]
        region = ahead & maps[0]
        ahead_px += int(region.sum())
        covered_px += int((region & maps[1]).sum())
    assert ahead_px > 1000  # the mask does reach past the profile on these photos
    assert covered_px == ahead_px, (covered_px, ahead_px)


def test_ahead_of_profile_is_beyond_the_outline_only(real_dir: Path) -> None:
    """Nothing for a frontal face; at a profile the background in front of the lips is ahead, the
    cheek is not; at a small turn the far cheek (between the nose and the far jaw) is not either."""
    from maskbench.synthesis.landmark_pose import landmark_rotation
    from maskbench.synthesis.silhouette import ahead_of_profile

    samples = _dev(real_dir)
    by_yaw = lambda lo, hi: next(s for s in samples if lo <= abs(s.pose.yaw_deg) < hi and abs(s.pose.pitch_deg) < 15)  # noqa: E731
    shape = (450, 450, 3)
    front = by_yaw(0, 5)
    assert ahead_of_profile(front.landmarks_px, landmark_rotation(front.landmarks_px), shape) is None
    for s, lo in ((by_yaw(70, 85), "profile"), (by_yaw(35, 45), "turned")):
        lm = s.landmarks_px
        rotation = landmark_rotation(lm)
        ahead = ahead_of_profile(lm, rotation, shape)
        forward = np.array([-np.sign(rotation[0, 2]), 0.0])
        face_px = np.linalg.norm(lm[8] - lm[27])
        in_front_of_lips = np.round((lm[51] + lm[57]) / 2 + forward * 0.15 * face_px).astype(int)
        cheek = np.round(lm[48] - forward * 0.15 * face_px).astype(int)  # behind the near mouth corner
        assert not ahead[cheek[1], cheek[0]], (s.id, lo)
        if lo == "profile":
            assert ahead[in_front_of_lips[1], in_front_of_lips[0]], s.id
        else:  # the far cheek may show beyond the lips: only what lies beyond the far jaw is ahead
            far_jaw = lm[[10, 11, 12]] if forward[0] > 0 else lm[[4, 5, 6]]
            for p in np.round(far_jaw - forward * 0.05 * face_px).astype(int):
                assert not ahead[p[1], p[0]], s.id


def test_dlib_on_the_face_box_masks_every_face_and_finds_the_landmarks(real_dir: Path) -> None:
    """The predictor on the box: landmarks for every face (the HOG detector misses about a quarter).

    DLIB_BOX_SHIFT/SIDE were fitted on the even-indexed photos; this reads every 5th CHECK photo."""
    samples = _check(real_dir)[::5]
    errors = []
    inner = list(range(17, 68))  # the jaw contour means the 3D jaw in AFLW2000, the visible one in dlib
    for s in samples:
        image = read_image(s.image_path)
        lm, source = landmarks_for(s, image, "dlib")
        assert source == "dlib" and lm.shape == (68, 2) and np.isfinite(lm).all()
        face = s.bbox.height_px
        errors.append(np.median(np.linalg.norm(lm[inner] - s.landmarks_px[inner], axis=1)) / face)
    assert np.median(errors) <= 0.05  # measured 0.030 of the face height (101 photos)


def test_dlib_on_box_agrees_with_the_detector_route_on_the_real_biwi_frame(real_dir: Path) -> None:
    (s,) = list(open_reader(real_dir / "biwi" / "hpdb"))
    image = read_image(s.image_path)
    on_box, source = landmarks_for(s, image, "dlib")
    detected = dlib_detected_landmarks(image, s.bbox)
    assert source == "dlib"
    assert np.median(np.linalg.norm(on_box - detected, axis=1)) <= 3.0



def test_every_real_fixture_face_is_masked(real_dir: Path, tmp_path: Path) -> None:
    for sub in ("aflw2000", "300w_lp", "biwi/hpdb"):
        summary = synthesize(real_dir / sub, tmp_path / sub)
        n = len(open_reader(real_dir / sub).keys)
        assert summary.written == n and summary.skipped == []


def test_dlib_landmarks_on_a_real_frontal_face(real_dir: Path) -> None:
    from maskbench.io.atomic import read_image

    s = next(x for x in open_reader(real_dir / "aflw2000") if x.id == "image00782")
    lm, source = landmarks_for(s, read_image(s.image_path), "dlib")
    assert source == "dlib"
    inner = list(range(17, 68))  # the jaw contour is defined differently (visible vs 3D)
    assert np.median(np.linalg.norm(lm[inner] - s.landmarks_px[inner], axis=1)) < 8.0


def test_pose_landmarks_on_the_real_biwi_frame_sit_where_dlib_puts_them(real_dir: Path) -> None:
    """The generic face posed with the label and BIWI's head centre lands on the real face (a median
    10.8 px off, mouth 18 px, before the head-centre anchor; box side 131 px)."""
    from maskbench.io.atomic import read_image

    (s,) = list(open_reader(real_dir / "biwi" / "hpdb"))
    posed, source = landmarks_for(s, read_image(s.image_path), "pose")
    found, _ = landmarks_for(s, read_image(s.image_path), "dlib")
    dist = np.linalg.norm(posed - found, axis=1)
    assert source == "pose" and np.median(dist) <= 5.0
    assert np.median(dist[48:68]) <= 8.0  # the mouth, where a mask hangs from


def test_biwi_default_detects_the_face_on_the_real_frame(real_dir: Path, tmp_path: Path) -> None:
    synthesize(real_dir / "biwi" / "hpdb", tmp_path / "b")
    assert read_labels(tmp_path / "b")[0]["landmark_source"] == "detected"



def test_placement_stays_on_the_face(real_dir: Path, tmp_path: Path) -> None:
    """The default placement (detector landmarks) through the command: mouth and lower nose under the mask,
    eyes not, on every 20th dev-half photo (50). A quality bar: photos decide it, not renders."""
    plain = tmp_path / "plain"
    plain.mkdir()
    for jpg in sorted((real_dir / "aflw2000_dev").glob("*.jpg"))[::20][:N_PHOTOS]:
        shutil.copyfile(jpg, plain / jpg.name)
        shutil.copyfile(jpg.with_suffix(".mat"), plain / f"{jpg.stem}.mat")
    _synthesize(plain, tmp_path / "a")
    rows = labels_by_id(tmp_path / "a")
    covered, eyes = [], []
    for s in open_reader(plain):
        occ = cv2.imread(str(tmp_path / "a" / rows[s.id]["occlusion_path"]), cv2.IMREAD_GRAYSCALE)
        for group, out in ((MOUTH_AND_LOWER_NOSE, covered), (EYES, eyes)):
            xy = np.round(s.landmarks_px[group]).astype(int)
            ok = (xy[:, 0] >= 0) & (xy[:, 0] < occ.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < occ.shape[0])
            out.append(occ[xy[ok, 1], xy[ok, 0]] > 0)
    assert np.concatenate(covered).mean() >= 0.95
    assert np.concatenate(eyes).mean() <= 0.02


def test_a_biwi_mask_does_not_move_with_the_rotation_label(real_dir: Path, tmp_path: Path) -> None:
    """BIWI has no landmarks: the detector finds the face (the head box only picks it); a rotated pose
    file leaves the masked frame unchanged."""
    biwi = real_dir / "biwi"
    moved = tmp_path / "moved"
    shutil.copytree(biwi / "hpdb", moved / "hpdb")
    pose = moved / "hpdb" / "01" / "frame_00003_pose.txt"
    rows = [line.split() for line in pose.read_text().splitlines() if line.strip()]
    r = np.array(rows[:3], float) @ cv2.Rodrigues(np.radians([3.0, -4.0, 2.0]))[0]
    pose.write_text("".join(" ".join(f"{v:.6f}" for v in row) + " \n" for row in r) + "\n" + " ".join(rows[3]) + " \n")
    _synthesize(biwi / "hpdb", tmp_path / "a")
    _synthesize(moved, tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 2 and a == b
    assert {r["landmark_source"] for r in labels_by_id(tmp_path / "a").values()} == {"detected"}

