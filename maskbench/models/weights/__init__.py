"""The RetinaFace MobileNet-0.25 and 3DDFA_V2 MobileNet x0.5 releases (MIT; licences beside them)."""
