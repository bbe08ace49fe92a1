"""Evaluator overhead over the bare model forward pass, measured in the same run.

Models, all TorchScript on 224x224 crops, CPU: two toy CNNs (4 strided 3x3 convolutions, global
pool, 6D output; first layer 16 or 64 channels), the bundled reference model as ``maskbench
export`` writes it (MobileNet-0.25 RetinaFace + pose head, crops resized to its 320 px) and a
ResNet-50 with a 6D head (Hopenet's backbone); random weights: the cost does not depend on them.
The overhead is a roughly fixed per-image cost (read the labels, decode the JPEG, crop, resize,
score) set against the model's cost, so it is reported for each. Bare: the model's forward on
already-prepared tensors of the same batches. Full: ``evaluate_suite`` on the same 256
AFLW2000-format images (labels read from the .mat files; decode, crop and resize in 2 threads,
before each batch's forward on the CPU; metrics; per-sample rows). Overhead = full / bare - 1
(goal <= 10 %). A second floor adds what no evaluator of JPEG datasets can skip: decoding the
same images (2 threads, as the evaluator), then the bare forward; the last column is the
evaluator's overhead over that. The runs alternate (7 times; 6 for the ResNet) and the fastest of
each counts; the spread of each set is printed beside it (this shared machine's speed drifts by
20-30 % over a minute: an overhead smaller than the spreads is not measured).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import aflw_tree, best_of_interleaved, spreads  # noqa: E402

from maskbench import devdata  # noqa: E402
from maskbench.evaluation.adapters import TorchScriptModel  # noqa: E402
from maskbench.evaluation.evaluator import evaluate_suite  # noqa: E402
from maskbench.evaluation.suites import scored_samples  # noqa: E402
from maskbench.io.atomic import read_image  # noqa: E402
from maskbench.models.retinaface import RetinaFacePose  # noqa: E402
from maskbench.training.export import PoseExport  # noqa: E402

N, BATCH = 256, 32


class SmallCNN(torch.nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 128]
        layers: list[torch.nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [torch.nn.Conv2d(a, b, 3, stride=2, padding=1), torch.nn.ReLU()]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(128, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))) + torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


class Bottleneck(torch.nn.Module):
    def __init__(self, cin: int, mid: int, stride: int) -> None:
        super().__init__()
        cout = 4 * mid
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(cin, mid, 1, bias=False), torch.nn.BatchNorm2d(mid), torch.nn.ReLU(),
            torch.nn.Conv2d(mid, mid, 3, stride, 1, bias=False), torch.nn.BatchNorm2d(mid), torch.nn.ReLU(),
            torch.nn.Conv2d(mid, cout, 1, bias=False), torch.nn.BatchNorm2d(cout))
        self.skip = (torch.nn.Identity() if stride == 1 and cin == cout else
                     torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet50Pose(torch.nn.Module):
    """ResNet-50 (the backbone of Hopenet and of the published masked-HPE RetinaFace) with a 6D head."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(64),
                                         torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for mid, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for k in range(blocks):
                layers.append(Bottleneck(cin, mid, stride if k == 0 else 1))
                cin = 4 * mid
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(cin, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))) + torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def main() -> list[str]:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    lines = ["## Evaluate (`maskbench evaluate`, TorchScript model, CPU)", "",
             "| model | images | bare forward s | evaluate s | overhead | decode + forward s | overhead over that | "
             "spreads (bare / evaluate / decode) |",
             "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        aflw_tree(root, N, n_rendered=32)  # 256 pairs: 32 renders under 8 names each
        images = [s.image_path for s in scored_samples(root / "AFLW2000")[0]]
        for label in ("CNN width 16", "CNN width 64", "reference model, 320 px", "ResNet-50, 224 px"):
            path = root / f"{label.split(',')[0].replace(' ', '_')}.pt"
            if label.startswith("CNN"):
                torch.jit.script(SmallCNN(int(label.split()[-1])).eval()).save(str(path))
            elif label.startswith("ResNet"):
                torch.jit.script(ResNet50Pose().eval()).save(str(path))
            else:
                export = PoseExport(RetinaFacePose().eval(), 320).eval()
                with torch.no_grad():
                    torch.jit.trace(export, torch.rand(2, 3, 224, 224)).save(str(path))
            model = TorchScriptModel(path)
            n = evaluate_suite(model, "AFLW2000", root / "AFLW2000", batch_size=BATCH, progress=False).overall.n
            # same memory layout as the adapter feeds (contiguous NCHW), so only the work differs
            batches = [torch.rand(min(BATCH, n - i), 3, 224, 224) for i in range(0, n, BATCH)]

            module = torch.jit.load(str(path)).eval()  # the same file, called directly

            def bare(module: torch.jit.ScriptModule = module, batches: list = batches) -> None:  # type: ignore[type-arg]
                with torch.no_grad():
                    for x in batches:
                        module(x)

            def full(model: TorchScriptModel = model) -> None:
                evaluate_suite(model, "AFLW2000", root / "AFLW2000", batch_size=BATCH, progress=False)

            def decode_bare(bare: Callable[[], None] = bare) -> None:
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(read_image, images))
                bare()

            bare_s, full_s, floor_s = best_of_interleaved([bare, full, decode_bare],
                                                          repeats=6 if label.startswith("ResNet") else 7)
            lines.append(f"| {label} | {n} | {bare_s:.3f} | {full_s:.3f} | {100 * (full_s / bare_s - 1):.1f} % "
                         f"| {floor_s:.3f} | {100 * (full_s / floor_s - 1):.1f} % | {spreads(bare_s, full_s, floor_s)} |")
    return lines + [""] + fsanet_lines()


FSANET = devdata.models_dir() / "fsanet"
DEV = devdata.dev_half()


def fsanet_lines() -> list[str]:
    """A model card (FSA-Net Fusion: three ONNX models, 64x64 BGR crops of the published AFLW2000 crop)
    on the real photos of the AFLW2000 dev half: full evaluation against decoding the same JPEGs plus
    the bare forward of the three models on the same batches (the card's crop is the only extra)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return []
    if not FSANET.is_dir() or not DEV.is_dir():
        return ["(FSA-Net card row skipped: ../shared/models/fsanet or the AFLW2000 dev half not found)", ""]
    from maskbench.evaluation.cards import CardModel, load_card
    from maskbench.evaluation.protocol import load_item

    model = CardModel(load_card("fsanet-fusion"), FSANET)
    samples = scored_samples(DEV)[0]
    images = [s.image_path for s in samples]
    batches = [model.batch([load_item(s) for s in samples[i : i + BATCH]]) for i in range(0, len(samples), BATCH)]

    def bare() -> None:
        for x in batches:
            for run in model.runners:
                run(x)

    def full() -> None:
        evaluate_suite(model, "AFLW2000", DEV, batch_size=BATCH, progress=False)

    def decode_bare() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(read_image, images))
        bare()

    bare_s, full_s, floor_s = best_of_interleaved([bare, full, decode_bare], repeats=7)
    return ["### Model card: FSA-Net Fusion (3 ONNX models, 64x64), real photos of the AFLW2000 dev half", "",
            "| model | images | bare forward s | evaluate s | overhead | decode + forward s | overhead over that | "
            "spreads (bare / evaluate / decode) |",
            "|---|---|---|---|---|---|---|---|",
            f"| fsanet-fusion card | {len(samples)} | {bare_s:.3f} | {full_s:.3f} | {100 * (full_s / bare_s - 1):.1f} % "
            f"| {floor_s:.3f} | {100 * (full_s / floor_s - 1):.1f} % | {spreads(bare_s, full_s, floor_s)} |", ""]


if __name__ == "__main__":
    print("\n".join(main()))
