"""The examples in globe.geo's docstrings are true."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["globe.geo.distance", "globe.geo.countries",
                                    "globe.geo.reverse_geocoding", "globe.geo.geocoding",
                                    "globe.geo.features"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
