"""Regenerate the README's leaderboard block (``<!-- table:leaderboard -->``) on the AFLW2000 dev half.

Builds the dev half's masked and rotated copies (``maskbench synthesize`` / ``rotate``, seed 0) in a data root,
runs ``maskbench leaderboard`` on the three suites with every published card found under the models folder and
``baseline:pnp``, and writes its table into the README, stamped with the date and commit. With ``--work DIR`` the
data root and the leaderboard folder live there and are reused (the leaderboard's cache then scores only what
changed). Needs the dev half and the releases (``$MASKBENCH_FIXTURES``, ``$MASKBENCH_MODELS``, else ``../shared``).

    python docs/make_leaderboard.py [--work DIR] [MODEL ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from maskbench import devdata
from maskbench.provenance import write_block

MODELS = ("fsanet-fusion", "whenet", "3ddfa-v2-mb05", "mediapipe-face-landmarker", "openvino-head-pose-adas-0001",
          "baseline:pnp")


def _maskbench(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "maskbench", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    dev = devdata.dev_half()
    if not dev.is_dir():
        raise SystemExit(f"the AFLW2000 dev half is not at {dev}; set ${devdata.FIXTURES_ENV}")
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        root = work / "data"
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "AFLW2000").exists():
            (root / "AFLW2000").symlink_to(dev)
        if not (root / "AFLW2000_masked").is_dir():
            _maskbench("synthesize", "--src", "AFLW2000", "--out", "AFLW2000_masked", "--data-root", str(root))
        if not (root / "AFLW2000_rotated").is_dir():
            _maskbench("rotate", "--src", "AFLW2000", "--out", "AFLW2000_rotated", "--range", "-45", "45",
                       "--data-root", str(root))
        board = work / "leaderboard"
        command = ["leaderboard", *args.models, "--models-dir", str(devdata.models_dir()), "--data-root", str(root),
                   "--out", str(board)]
        done = subprocess.run([sys.executable, "-m", "maskbench", *command])
        if done.returncode not in (0, 1):
            raise SystemExit(done.returncode)
        rows = (board / "leaderboard.md").read_text().strip().splitlines()
        rows += ["", "Made by `python docs/make_leaderboard.py` (`maskbench " + " ".join(command[:len(args.models) + 1])
                 + " --models-dir ../shared/models` on a data root holding the dev half and its masked and rotated "
                 "copies, seed 0)."]
    write_block("leaderboard", rows, by="docs/make_leaderboard.py")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
