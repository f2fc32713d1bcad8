"""Small helpers shared by the model and engine tests (the tiny model fixture is in conftest.py)."""

from __future__ import annotations


def solid(color, size=(64, 48)):
    from PIL import Image

    return Image.new("RGB", size, color)
