"""Shared test setup: float64 everywhere (kernel identities are checked to 1e-6 or tighter)."""

from pathlib import Path

import jax
import pytest

import graph_ntk  # noqa: F401  (installs the neural-tangents compatibility shims first)

jax.config.update("jax_enable_x64", True)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data directory {SHARED} not present")
    return SHARED
