"""Shared fixtures. Real servers (SeaweedFS S3, MLflow, KServe) run on loopback only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GLOBE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SHARED_CRDS = Path(os.environ.get("GLOBE_SHARED_CRDS", ROOT.parent / "shared" / "k8s-crds"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real benchmark files); tests that need it skip with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set GLOBE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"shared CRDs not found at {SHARED_CRDS} (set GLOBE_SHARED_CRDS)")
    return SHARED_CRDS
