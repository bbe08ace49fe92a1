"""Image augmentations whose labels are recomputed exactly (in-plane rotation)."""
