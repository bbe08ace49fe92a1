"""Training of the reference model: data and augmentation, the trainer, export."""
