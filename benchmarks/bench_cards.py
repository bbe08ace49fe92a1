"""Each leaderboard card's evaluation against its bare forward passes, measured in one run (goal: within 10 %).

Real photos of the AFLW2000 dev half (the first ``N`` protocol faces), CPU. Bare: the card's network(s) on the
already-made crops of the same batches (MediaPipe, which finds faces itself: its landmarker on the already-decoded
whole images). Evaluate: ``evaluate_suite`` on the same faces (decode, the card's crop, forward, scores, rows).
A second floor adds what no evaluator of JPEG datasets can skip: decoding the same images (2 threads) before the
bare forward. The three alternate (``REPEATS`` times), the fastest of each counts, the spreads are printed.
Needs the [cards] extra and the releases under ``$MASKBENCH_MODELS`` (else ../shared/models).
"""

from __future__ import annotations

import dataclasses
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_of_interleaved, spreads  # noqa: E402

from maskbench import devdata  # noqa: E402
from maskbench.evaluation.cards import CardError, CardModel, load_card  # noqa: E402
from maskbench.evaluation.evaluator import evaluate_suite  # noqa: E402
from maskbench.evaluation.protocol import load_item  # noqa: E402
from maskbench.evaluation.suites import scored_samples  # noqa: E402
from maskbench.io.atomic import read_image  # noqa: E402

N, BATCH, REPEATS = 256, 32, 3
CARDS = ("fsanet-fusion", "whenet", "3ddfa-v2-mb05", "openvino-head-pose-adas-0001", "mediapipe-face-landmarker")


def card_row(name: str, dev: Path, models: Path) -> str:
    card = load_card(name)
    try:
        model = CardModel(card, models / card.models_folder)
    except CardError as exc:
        return f"| {name} | skipped: {exc} |"
    samples = scored_samples(dev)[0][:N]
    images = [s.image_path for s in samples]
    items = [load_item(s) for s in samples]
    prepared = [dataclasses.replace(it, prepared=model.prepare(it)) for it in items]
    chunks = [prepared[i : i + BATCH] for i in range(0, len(prepared), BATCH)]
    if card.whole_image:
        def bare() -> None:
            for it in prepared:
                model.faces.faces(it.prepared)
    else:
        batches = [model.batch(c) for c in chunks]

        def bare() -> None:
            for x in batches:
                for run in model.runners:
                    run(x)

    def full() -> None:
        evaluate_suite(model, "AFLW2000", dev, batch_size=BATCH, limit=N, progress=False)

    def decode_bare() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(read_image, images))
        bare()

    bare_s, full_s, floor_s = best_of_interleaved([bare, full, decode_bare], repeats=REPEATS)
    return (f"| {name} | {len(samples)} | {bare_s:.3f} | {full_s:.3f} | {100 * (full_s / bare_s - 1):.1f} % | "
            f"{floor_s:.3f} | {100 * (full_s / floor_s - 1):.1f} % | {spreads(bare_s, full_s, floor_s)} |")


def main() -> list[str]:
    dev, models = devdata.dev_half(), devdata.models_dir()
    if not dev.is_dir() or not models.is_dir():
        return ["(card rows skipped: the AFLW2000 dev half or the published releases not found)", ""]
    return ["### Leaderboard cards: evaluation against the bare forward, real photos of the AFLW2000 dev half", "",
            "| card | images | bare forward s | evaluate s | overhead | decode + forward s | overhead over that | "
            "spreads (bare / evaluate / decode) |", "|---|---|---|---|---|---|---|---|",
            *[card_row(name, dev, models) for name in CARDS], ""]


if __name__ == "__main__":
    print("\n".join(main()))
