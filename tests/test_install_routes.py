"""Every install route (README, pip of the checkout and of the wheel, uv pip, uv add; bare,
[dask], [stax]) in fresh environments: no TensorFlow, either import order, a MUTAG Gram from a
graph_ntk.nn description and, with the stax side, NT's kernel_fn equal to it. Needs PyPI."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_install_route(shared_dir, tmp_path):
    report = tmp_path / "routes.json"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_install_routes.py"), "--report", str(report)],
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stdout + out.stderr
