"""Mask templates shipped with maskbench: one ``<name>.png`` (RGBA texture in mask (u, v) space)
and one ``<name>.json`` (anchors by landmark meaning, geometry, colours) per mask type.

All templates are drawn procedurally by ``generate.py`` in this folder (run it to rebuild them
byte for byte) and are released under CC0-1.0.
"""
