"""Training, checkpoints and export of the reference model (single process, CPU or one GPU, or
``torchrun``). Inference lives in :mod:`maskbench.models.inference`; validation scores with the
evaluation protocol (:func:`maskbench.evaluation.protocol.mean_axis_mae_deg`), not the evaluator.

A config is a small JSON file (see ``maskbench/training/configs/plain.json``): names of the training
folders under the data root (their ``train`` rows are used, see :mod:`maskbench.splits`), pose loss
weight, image size, epochs, batch size, learning rate, and validation: the ``val`` rows of the
training folders and of the ``val`` folders, else a hold-out (``val_fraction``, default 0.1): a seeded
share of the *training* originals, with all their masked/rotated copies, left out of training; at
most ``val_limit`` (400) faces pick ``best.pth``. Test rows are never read.
Copy one and edit it; pass its path to ``--config``.

Checkpoint (``best.pth``, ``last.pth``): a dict of tensors and plain values, loadable with
``torch.load(weights_only=True)``: ``format``, ``config``, ``state_dict``, ``maskbench_version``,
``training_data`` (name, manifest sha256 and split rule of each folder), ``validation`` (the
hold-out's fraction, seed and counts), ``faces`` (``train`` and ``validation``: the identities of
those faces, :mod:`maskbench.identity`, which the evaluator checks every scored face against), ``epoch``,
``val_pose_mae_deg``; the ``config`` records ``biwi_labels``, the BIWI label convention of the targets.
With ``ema_decay`` > 0 in the config, ``state_dict`` holds the exponential moving average of the weights (what is validated and
evaluated; ``last.pth`` keeps the raw weights too, as ``train_state_dict``, to resume from). With
``--init`` and ``pretrained_lr_scale`` < 1, the parts the release provides learn at that fraction of
``lr`` and the fresh pose head at ``lr``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maskbench.datasets import detect_format
from maskbench.evaluation.adapters import ReferenceModel
from maskbench.evaluation.protocol import mean_axis_mae_deg
from maskbench.io.atomic import atomic_write, atomic_write_text
from maskbench.io.manifest import MANIFEST, sha256_file
from maskbench.models import box_utils
from maskbench.models.inference import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
)
from maskbench.models.losses import Target, multitask_loss
from maskbench.models.pretrained import init_model
from maskbench.models.retinaface import RetinaFacePose
from maskbench.progress import progress_bar
from maskbench.splits import rule_of
from maskbench.training.config import TrainConfig
from maskbench.training.data import FaceDataset, HoldOut, TrainAugment, collate, training_items
from maskbench.version import __version__


@dataclass
class _Dist:
    """Process group facts: world size 1 unless launched by torchrun (WORLD_SIZE, RANK, LOCAL_RANK)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls, device: str) -> _Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return cls(world, torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, values: list[float]) -> list[float]:
        """Element-wise mean over processes (one all_reduce for the whole list)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return (t / self.world).tolist()

    def positives_normalizer(self, device: str) -> Callable[[int], float] | None:
        """Divide by the mean positive count over processes, so that DDP's gradient average equals
        the single-process gradient of the whole global batch."""
        if self.world == 1:
            return None

        def norm(n_pos: int) -> float:
            t = torch.tensor([float(n_pos)], device=device)
            torch.distributed.all_reduce(t)
            return max(float(t) / self.world, 1e-6)

        return norm


def _set_bn_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def train(config: dict[str, Any] | TrainConfig, data_root: Path, out_dir: Path, *, device: str = "cpu",
          epochs: int | None = None, seed: int = 0, max_minutes: float | None = None, progress: bool = True,
          init: Path | None = None, resume: bool = False, workers: int = 0, amp: bool | None = None) -> dict[str, Any]:
    """Train from a config; writes ``last.pth``, ``best.pth`` and ``history.json`` into ``out_dir``.

    Under ``torchrun --nproc_per_node N`` each process takes ``batch_size / N`` images of every
    global batch (DistributedSampler, DistributedDataParallel; SyncBatchNorm on CUDA); rank 0
    validates and writes. ``amp`` (default: on for CUDA) runs the forward pass in bfloat16.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    dist = _Dist.from_env(device)
    if dist.world > 1 and device.startswith("cuda"):
        device = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(device)
    torch.manual_seed(seed)
    np.random.seed(seed)
    if cfg.batch_size % dist.world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {dist.world} processes")
    data = _TrainingData.gather(cfg, data_root, seed)
    dataset = FaceDataset(data.train_items, cfg.image_size, TrainAugment.from_config(cfg.augment), seed, cfg.biwi_labels)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                                  seed=seed, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size // dist.world, sampler=sampler,
                                         collate_fn=collate, num_workers=workers, drop_last=True,
                                         pin_memory=device.startswith("cuda"))
    if len(loader) == 0:
        raise ValueError(f"{len(dataset)} training samples are fewer than one batch of {cfg.batch_size}")
    if init is not None:
        model, network = init_model(init, cfg.network)
        cfg = cfg.with_network(network)
    else:
        model = RetinaFacePose.from_config(cfg.network)
    n_epochs = int(epochs or cfg.epochs)
    run = _Run.start(cfg, model, device, dist, len(loader) * n_epochs, init is not None, amp)
    out_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    best, first_epoch = math.inf, 1
    if resume and (out_dir / "last.pth").is_file():
        history, best, first_epoch = run.resume_from(load_checkpoint(out_dir / "last.pth"))
    start = time.monotonic()
    # one bar for the whole run (not one per epoch): off a terminal it writes a line at most every
    # LOG_INTERVAL_S seconds, however short the epochs
    bar = progress_bar(total=max(n_epochs - first_epoch + 1, 0) * len(loader), desc="train", unit="batch",
                       disable=not (progress and dist.main))
    for epoch in range(first_epoch, n_epochs + 1):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        stats = run.epoch(loader, bar, epoch, n_epochs, best)
        val = (mean_axis_mae_deg(ReferenceModel(run.scored, cfg.image_size), data.val_samples, cfg.biwi_labels)
               if data.val_samples and dist.main else float("nan"))
        history.append({"epoch": epoch, "loss": float(np.mean(stats["losses"])), "val_pose_mae_deg": val, **stats})
        if dist.main:
            improved = val < best or (val != val and epoch == n_epochs)
            best = val if val < best else best
            run.save(out_dir, data, history, epoch, val, best, seed, improved)
        if dist.world > 1:
            torch.distributed.barrier()
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
    bar.close()
    return {"history": history, "best_val_pose_mae_deg": best, "rank": dist.rank, "world_size": dist.world}


@dataclass
class _TrainingData:
    """The rows a run trains and validates on, and what its checkpoints record about them."""

    train_items: list[Any]
    val_samples: list[Any]
    validation: dict[str, Any]  # the hold-out's fraction, seed and counts
    faces: dict[str, Any]  # identities of the training and validation faces (maskbench.identity)
    data_refs: list[dict[str, Any]]  # name, manifest sha256, format and split rule of each training folder

    @classmethod
    def gather(cls, cfg: TrainConfig, data_root: Path, seed: int) -> _TrainingData:
        train_dirs = [data_root / n for n in cfg.train]
        missing = [str(d) for d in train_dirs if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"training splits not found: {', '.join(missing)} (see `maskbench synthesize/rotate`)")
        val_dirs = [data_root / n for n in cfg.val]
        missing = [str(d) for d in val_dirs if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"validation folders not found: {', '.join(missing)}")
        rules = {d.name: (detect_format(d).name, rule_of(d)) for d in [*train_dirs, *val_dirs]}
        hold_out = HoldOut(cfg.val_fraction, seed, cfg.val_limit)
        train_items, val_samples, validation = training_items(train_dirs, hold_out, val_dirs)
        faces = validation.pop("faces")
        if not train_items:
            raise ValueError(f"no training rows in {', '.join(d.name for d in train_dirs)} (rows whose split is 'train'; "
                             "AFLW2000 is a test set, and a raw BIWI tree trains on 16 of its 24 sequences)")
        refs = [{"name": d.name, "manifest_sha256": sha256_file(d / MANIFEST) if (d / MANIFEST).is_file() else None,
                 "format": rules[d.name][0], "split": rules[d.name][1].as_dict()} for d in train_dirs]
        return cls(train_items, val_samples, validation, faces, refs)


@dataclass
class _Run:
    """The model, its optimiser, schedule and weight average, and one epoch of training."""

    cfg: TrainConfig
    model: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    sched: Any
    ema: Any  # torch.optim.swa_utils.AveragedModel or None
    device: str
    dist: _Dist
    use_amp: bool
    pri: torch.Tensor

    @classmethod
    def start(cls, cfg: TrainConfig, model: nn.Module, device: str, dist: _Dist, total_steps: int, pretrained: bool,
              amp: bool | None = None) -> _Run:
        if dist.world > 1 and device.startswith("cuda"):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(device)
        net = model if dist.world == 1 else nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.startswith("cuda") else None)
        groups = _param_groups(model, cfg.lr, cfg.pretrained_lr_scale if pretrained else 1.0)
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total_steps,
                                                    pct_start=cfg.warmup_fraction)
        ema = (torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
            if cfg.ema_decay > 0 else None)
        use_amp = device.startswith("cuda") if amp is None else amp
        return cls(cfg, model, net, opt, sched, ema, device, dist, use_amp,
                   box_utils.priors(cfg.image_size, cfg.image_size).to(device))

    @property
    def scored(self) -> nn.Module:
        """What is validated and saved: the weight average when there is one."""
        return self.model if self.ema is None else self.ema.module

    def resume_from(self, state: dict[str, Any]) -> tuple[list[dict[str, Any]], float, int]:
        self.model.load_state_dict(state.get("train_state_dict", state["state_dict"]))
        if self.ema is not None:
            self.ema.load_state_dict(state["ema_state"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        return list(state["history"]), float(state["best_val_pose_mae_deg"]), int(state["epoch"]) + 1

    def epoch(self, loader: Any, bar: Any, epoch: int, n_epochs: int, best: float) -> dict[str, Any]:
        """One pass over the loader; the losses (averaged over processes), speed and data-wait share."""
        self.net.train()
        if self.cfg.freeze_bn:
            _set_bn_eval(self.net)
        normalizer = self.dist.positives_normalizer(self.device)
        seen, t0, losses, waited = 0, time.monotonic(), [], 0.0
        t_wait = time.monotonic()
        for images, targets in loader:
            waited += time.monotonic() - t_wait
            images = images.to(self.device, non_blocking=True)
            targets = [Target(t.boxes.to(self.device), t.landmarks.to(self.device), t.rotations.to(self.device))
                       for t in targets]
            with torch.autocast(device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                                enabled=self.use_amp):
                out = self.net(images)
            out = {k: v.float() for k, v in out.items()}
            terms = multitask_loss(out, targets, self.pri, pose_weight=self.cfg.pose_weight,
                                   landmark_weight=self.cfg.landmark_weight, normalizer=normalizer)
            self.opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            self.opt.step()
            self.sched.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            seen += len(images) * self.dist.world
            losses.append(float(terms["total"].detach()))  # this process's; averaged over processes per epoch
            bar.set_postfix(epoch=f"{epoch}/{n_epochs}", loss=f"{losses[-1]:.3f}",
                            img_s=f"{seen / (time.monotonic() - t0):.1f}", best_val=f"{best:.2f}",
                            refresh=False)  # redrawn at the bar's own pace (every 30 s in a log)
            bar.update()
            t_wait = time.monotonic()
        elapsed = time.monotonic() - t0
        return {"images_per_s": seen / elapsed, "epoch_s": elapsed, "data_wait_fraction": waited / elapsed,
                "losses": self.dist.mean(losses)}

    def save(self, out_dir: Path, data: _TrainingData, history: list[dict[str, Any]], epoch: int, val: float,
             best: float, seed: int, improved: bool) -> None:
        """``last.pth`` (with what resuming needs), ``best.pth`` when ``improved``, ``history.json``."""
        ckpt = {"format": CHECKPOINT_FORMAT, "config": self.cfg.as_dict(), "state_dict": self.scored.state_dict(),
                "maskbench_version": __version__, "training_data": data.data_refs, "validation": data.validation,
                "faces": data.faces, "epoch": epoch, "val_pose_mae_deg": val, "best_val_pose_mae_deg": best,
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "history": history,
                "seed": seed, "world_size": self.dist.world}
        if self.ema is not None:  # last.pth also keeps the raw weights and the average's count, to resume
            ckpt["train_state_dict"] = self.model.state_dict()
            ckpt["ema_state"] = self.ema.state_dict()
        _atomic_save(ckpt, out_dir / "last.pth")
        if improved:
            _atomic_save({k: v for k, v in ckpt.items()
                          if k not in ("optimizer", "scheduler", "train_state_dict", "ema_state")}, out_dir / "best.pth")
        atomic_write_text(out_dir / "history.json", json.dumps(history, indent=1) + "\n")


def _param_groups(model: nn.Module, lr: float, pretrained_scale: float) -> list[dict[str, Any]]:
    """AdamW groups: the pose head at ``lr``; everything a release provides (backbone, FPN, SSH, the
    face/box/landmark heads) at ``lr * pretrained_scale`` (1.0: one group)."""
    if pretrained_scale == 1.0:
        return [{"params": list(model.parameters()), "lr": lr}]
    fresh = {id(p) for p in model.heads["pose6d"].parameters()}
    return [{"params": [p for p in model.parameters() if id(p) in fresh], "lr": lr},
            {"params": [p for p in model.parameters() if id(p) not in fresh], "lr": lr * pretrained_scale}]


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
