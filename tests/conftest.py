"""Shared test setup.

float64 is NOT enabled globally: a suite that runs everything in 64-bit mode hides bugs
where the library forgets to enable it itself (gram(dtype='float64') does so per call).
Tests that check kernel identities to 1e-6 or tighter ask for the ``x64`` fixture
(``pytestmark = pytest.mark.usefixtures("x64")`` or per test), which enables 64-bit mode
for that test only.
"""

from pathlib import Path

import jax
import pytest

import graph_ntk  # noqa: F401  (installs the neural-tangents compatibility shims first)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def x64():
    """64-bit JAX for the duration of one test."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def _keep_float64_off_globally():
    """Undo a test that switches float64 on globally (the README example does, as users
    should), so that it cannot leak into the tests after it."""
    before = jax.config.jax_enable_x64
    yield
    if jax.config.jax_enable_x64 != before:
        jax.config.update("jax_enable_x64", before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data directory {SHARED} not present")
    return SHARED
