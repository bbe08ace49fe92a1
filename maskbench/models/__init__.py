"""The reference head-pose estimator: a RetinaFace-style detector with a 6D rotation head (plain torch)."""
