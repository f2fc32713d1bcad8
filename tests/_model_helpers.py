"""Fixtures shared by the model and engine tests (imported by those modules)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny Qwen2.5-VL-architecture checkpoint (built offline, seed 0)."""
    from globe.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def solid(color, size=(64, 48)):
    from PIL import Image

    return Image.new("RGB", size, color)
