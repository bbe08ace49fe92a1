"""Synthetic face masks: templates, landmark sources, pose-aware 3D fitting, blending."""
