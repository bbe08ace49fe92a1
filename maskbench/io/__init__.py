"""Output contract: atomic writes, labels.csv, manifest.json, verification."""
