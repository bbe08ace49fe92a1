"""Where the project's real fixture files and published weights are, for tests, benchmarks and the
table scripts (never needed by the package itself): ``$MASKBENCH_FIXTURES`` (else
``../shared/fixtures/real`` next to the checkout) and ``$MASKBENCH_MODELS`` (else ``../shared/models``).
One rule for every caller; a caller whose folder is absent skips (tests) or says so (scripts)."""

from __future__ import annotations

import os
from pathlib import Path

FIXTURES_ENV = "MASKBENCH_FIXTURES"
MODELS_ENV = "MASKBENCH_MODELS"
#: The checkout's parent, where ``shared/`` sits beside it.
_BESIDE_CHECKOUT = Path(__file__).resolve().parents[2]


def fixtures_dir() -> Path:
    """The real fixture files: ``$MASKBENCH_FIXTURES``, else ``../shared/fixtures/real``."""
    return Path(os.environ.get(FIXTURES_ENV) or _BESIDE_CHECKOUT / "shared" / "fixtures" / "real")


def models_dir() -> Path:
    """The published weights (one folder per model): ``$MASKBENCH_MODELS``, else ``../shared/models``."""
    return Path(os.environ.get(MODELS_ENV) or _BESIDE_CHECKOUT / "shared" / "models")


def dev_half() -> Path:
    """The AFLW2000 dev half (1,005 labelled photos) among the fixtures."""
    return fixtures_dir() / "aflw2000_dev"


def retinaface_release() -> Path:
    """The RetinaFace MobileNet-0.25 release. It ships in the package (MIT; the same bytes as the release,
    sha256 2979b33f...: the default mask placement runs it), so every clone has it; the copy among the
    published weights is not needed."""
    from maskbench.models.weights import RETINAFACE_WEIGHTS

    return RETINAFACE_WEIGHTS
