"""Training, checkpoints and inference of the reference model (single process, CPU or one GPU).

A config is a small JSON file (see ``maskbench/models/configs/model1.json``): names of the training
splits under the data root, validation splits (their ``test`` rows), pose loss weight, image size,
epochs, batch size, learning rate. Copy one and edit it; pass its path to ``--config``.

Checkpoint (``best.pth``, ``last.pth``): a dict of tensors and plain values, loadable with
``torch.load(weights_only=True)``: ``format``, ``config``, ``state_dict``, ``maskbench_version``,
``training_data`` (name + manifest sha256 of each split), ``epoch``, ``val_pose_mae_deg``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from maskbench import __version__, geometry
from maskbench.io.manifest import MANIFEST, sha256_file
from maskbench.models import box_utils
from maskbench.models.data import FaceDataset, collate, letterbox, split_samples, to_tensor
from maskbench.models.losses import multitask_loss
from maskbench.models.retinaface import RetinaFacePose
from maskbench.models.rotation6d import sixd_to_matrix

CHECKPOINT_FORMAT = "maskbench-checkpoint-1"


def load_config(name_or_path: str) -> dict[str, Any]:
    """A built-in config by name (model1, model2, model3) or a JSON file."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text())
    base = resources.files("maskbench.models.configs")
    names = sorted(p.name[:-5] for p in base.iterdir() if p.name.endswith(".json"))
    if name_or_path not in names:
        raise ValueError(f"unknown config {name_or_path!r}: built-in ones are {', '.join(names)}, or pass a .json path")
    return json.loads((base / f"{name_or_path}.json").read_text())


@dataclass
class Face:
    """One detection: box and five landmarks in pixels, face score, rotation (maskbench convention)."""

    box_px: np.ndarray
    score: float
    landmarks_px: np.ndarray
    rotation: np.ndarray


@torch.no_grad()
def detect(model: RetinaFacePose, image_bgr: np.ndarray, image_size: int, score_threshold: float = 0.5,
           nms_threshold: float = 0.4, top1: bool = False) -> list[Face]:
    """Faces in an image, best first. ``top1``: only the highest-scoring anchor, whatever its score."""
    model.eval()
    device = next(model.parameters()).device
    canvas, scale = letterbox(image_bgr, image_size)
    out = model(to_tensor(canvas)[None].to(device))
    pri = box_utils.priors(image_size, image_size).to(device)
    scores = out["conf"][0].softmax(-1)[:, 1]
    keep = scores.argmax()[None] if top1 else (scores >= score_threshold).nonzero().flatten()
    if keep.numel() == 0:
        return []
    boxes = box_utils.decode_boxes(out["loc"][0][keep], pri[keep])
    if not top1:
        sel = box_utils.nms(boxes.cpu(), scores[keep].cpu(), nms_threshold).to(device)
        keep, boxes = keep[sel], boxes[sel]
    lms = box_utils.decode_landmarks(out["landmarks"][0][keep], pri[keep])
    rots = sixd_to_matrix(out["pose6d"][0][keep].double())
    factor = image_size / scale
    return [Face((boxes[k] * factor).cpu().numpy(), float(scores[keep[k]]), (lms[k] * factor).cpu().numpy().reshape(5, 2),
                 rots[k].cpu().numpy()) for k in range(len(keep))]


def pose_mae_deg(model: RetinaFacePose, samples: list, image_size: int) -> float:  # type: ignore[type-arg]
    """Mean of yaw/pitch/roll MAE (wrapped) of the top face on each sample's whole image."""
    from maskbench.evaluation.metrics import angle_errors_deg
    from maskbench.io.atomic import read_image

    errs = []
    for s in samples:
        (face,) = detect(model, read_image(s.image_path), image_size, top1=True)
        pred = np.array(geometry.matrix_to_euler_deg(face.rotation))
        true = np.array(geometry.matrix_to_euler_deg(s.pose.matrix))
        errs.append(angle_errors_deg(pred, true).mean())
    return float(np.mean(errs)) if errs else float("nan")


def train(config: dict[str, Any], data_root: Path, out_dir: Path, *, device: str = "cpu", epochs: int | None = None,
          seed: int = 0, max_minutes: float | None = None, progress: bool = True,
          init: Path | None = None) -> dict[str, Any]:
    """Train from a config; writes ``last.pth``, ``best.pth`` and ``history.json`` into ``out_dir``."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    size = int(config["image_size"])
    train_dirs = [data_root / n for n in config["train"]]
    missing = [str(d) for d in train_dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(f"training splits not found: {', '.join(missing)} (see `maskbench synthesize/rotate`)")
    train_samples = [s for d in train_dirs for s in split_samples(d, "train" if d.name.startswith("BIWI") else None)]
    val_samples = [s for n in config.get("val", []) if (data_root / n).is_dir() for s in split_samples(data_root / n, "test")]
    if not train_samples:
        raise ValueError("no training samples found")
    loader = torch.utils.data.DataLoader(
        FaceDataset(train_samples, size), batch_size=int(config["batch_size"]), shuffle=True, collate_fn=collate,
        generator=torch.Generator().manual_seed(seed), num_workers=0,
    )
    model = RetinaFacePose().to(device)
    if init is not None:
        from maskbench.evaluation.adapters import load_checkpoint

        model.load_state_dict(load_checkpoint(init)["state_dict"])
    opt = torch.optim.AdamW(model.parameters(), lr=float(config["lr"]), weight_decay=1e-4)
    n_epochs = int(epochs or config["epochs"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(config["lr"]), total_steps=n_epochs * len(loader))
    pri = box_utils.priors(size, size).to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_refs = [{"name": d.name, "manifest_sha256": sha256_file(d / MANIFEST) if (d / MANIFEST).is_file() else None}
                 for d in train_dirs]
    history: list[dict[str, float]] = []
    best = math.inf
    start = time.monotonic()
    for epoch in range(1, n_epochs + 1):
        model.train()
        seen, t0, losses = 0, time.monotonic(), []
        bar = tqdm(loader, desc=f"epoch {epoch}/{n_epochs}", unit="batch", disable=not progress)
        for images, targets in bar:
            images = images.to(device)
            targets = [type(t)(t.boxes.to(device), t.landmarks.to(device), t.rotations.to(device)) for t in targets]
            terms = multitask_loss(model(images), targets, pri, pose_weight=float(config["pose_weight"]))
            opt.zero_grad()
            terms["total"].backward()
            opt.step()
            sched.step()
            seen += len(images)
            losses.append(float(terms["total"].detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", img_s=f"{seen / (time.monotonic() - t0):.1f}")
        val = pose_mae_deg(model, val_samples, size) if val_samples else float("nan")
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_pose_mae_deg": val,
                        "images_per_s": seen / (time.monotonic() - t0)})
        ckpt = {"format": CHECKPOINT_FORMAT, "config": config, "state_dict": model.state_dict(),
                "maskbench_version": __version__, "training_data": data_refs, "epoch": epoch, "val_pose_mae_deg": val}
        torch.save(ckpt, out_dir / "last.pth")
        if val < best or (val != val and epoch == n_epochs):
            best = val
            torch.save(ckpt, out_dir / "best.pth")
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
    return {"history": history, "best_val_pose_mae_deg": best}


def load_model_from_checkpoint(path: Path, device: str = "cpu") -> tuple[RetinaFacePose, dict[str, Any]]:
    """Build the network of a checkpoint (loaded with weights_only=True) and load its weights."""
    from maskbench.evaluation.adapters import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} file (format={ckpt.get('format')!r})")
    model = RetinaFacePose().to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
