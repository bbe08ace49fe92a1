"""The package version (its one home: setup.cfg, manifests and checkpoints read it here)."""

__version__ = "0.1.0"
