"""The RetinaFace MobileNet-0.25 and 3DDFA_V2 MobileNet x0.5 releases (MIT; licences beside them): where
their files are. Imports nothing, so any layer may ask (tests/test_architecture.py lists it with the
foundations)."""

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent
#: RetinaFace MobileNet-0.25 (WIDER FACE), byte for byte the authors' ``mobilenet0.25_Final.pth``.
RETINAFACE_WEIGHTS = WEIGHTS / "retinaface_mobilenet0.25_Final.pth"
#: 3DDFA_V2 MobileNet x0.5 at 120 px, and its parameter mean and std.
TDDFA_WEIGHTS = WEIGHTS / "mb05_120x120.pth"
TDDFA_MEAN_STD = WEIGHTS / "param_mean_std_62d_120x120.pkl"
