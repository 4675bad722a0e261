"""The JAX tile executor (``backend='jax'``, :mod:`graph_ntk.kernels.jax_tiles`), forced on CPU.

It must give the NumPy executor's Gram matrices (and NT's ``kernel_fn``'s) on descriptions
covering every panel source (the low-rank factor after the first aggregation, the stored
tiles after later ones), the correlation and general pointwise steps, readout taps with and
without their own ops, and several tiles per stage (small ``block_size``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from graph_ntk.engine import gram
from graph_ntk.kernels.jax_tiles import _bucket
from graph_ntk.kernels.program_gram import program_gram
from test_item_engine import DESCRIPTIONS, NUM_TAGS, input_dim, make_graphs, nt_gram, rel_err

SIZES = (1, 3, 4, 5, 6, 7)
CASES = [
    ("gntk_sum_jk", "labels"),  # GNTK, sum aggregation, jumping knowledge (a tap per depth)
    ("gntk_mean_jk", "both"),
    ("gin_eps_erf", "weighted"),
    ("gcn_gelu", "directed"),  # Gelu (general steps) with GCN normalisation
    ("leaky_relu_bias_mean_readout", "features"),  # biases, mean readout, continuous features only
    ("jk_erf_taps", "selfloops"),  # readout taps with their own ops
    ("gntk_sum_nojk_mean_readout", "features"),  # low-rank first stage from continuous features
]


def _run(net, graphs, **kw):
    return program_gram(net.program, graphs, num_tags=NUM_TAGS, executor="tiled", block_size=3, **kw)


@pytest.mark.parametrize("name, kind", CASES)
def test_jax_backend_equals_numpy_and_nt_float64(name, kind):
    graphs = make_graphs(kind, seed=len(name), sizes=SIZES)
    net = DESCRIPTIONS[name](input_dim(kind))
    ref = _run(net, graphs, backend="numpy")
    got = _run(net, graphs, backend="jax")
    assert max(got.num_items) > 3 * 3  # several block columns per stage
    assert got.nngp.dtype == np.float64
    # NT's own jitted node-level evaluation rounds self-pairs (a fused q1 q2 - k^2 leaves an
    # angle of ~1e-8 in the ReLU family), so the oracle itself is good to ~1e-10 only.
    nt_nngp, nt_ntk = nt_gram(net, graphs)
    assert rel_err(got.nngp, nt_nngp) < 1e-8 and rel_err(got.ntk, nt_ntk) < 1e-8
    # 1e-10 to the NumPy executor, except where the kernel itself is that ill-conditioned:
    # correlations within 1e-12 of 1 (biases dominating, LeakyRelu) turn ulp-level
    # differences of the aggregation sums into 4e-10 through arccos, between the NumPy
    # executor and NT just as much (measured: numpy-NT 4.1e-10, jax-NT 4.3e-10).
    slack = [2 * rel_err(ref.nngp, nt_nngp), 2 * rel_err(ref.ntk, nt_ntk)]
    assert rel_err(got.nngp, ref.nngp) < 1e-10 + slack[0] and rel_err(got.ntk, ref.ntk) < 1e-10 + slack[1]
    assert not jax.config.jax_enable_x64  # 64-bit mode was scoped to the call


@pytest.mark.parametrize("name, kind", [("gntk_mean_jk", "both"), ("gcn_gelu", "features")])
def test_jax_backend_float32(name, kind):
    graphs = make_graphs(kind, seed=2, sizes=SIZES)
    net = DESCRIPTIONS[name](input_dim(kind))
    ref = _run(net, graphs, backend="numpy")  # float64
    got = _run(net, graphs, backend="jax", dtype=np.float32)
    assert rel_err(got.nngp, ref.nngp) < 1e-5 and rel_err(got.ntk, ref.ntk) < 1e-5
    # and float32 really ran in float32 (it is not float64-exact)
    assert rel_err(got.ntk, ref.ntk) > 1e-12


def test_gram_backend_option_and_bad_values():
    graphs = make_graphs("labels", seed=1, sizes=SIZES)
    net = DESCRIPTIONS["gntk_sum_jk"](input_dim("labels"))
    a = gram(net, graphs, num_tags=NUM_TAGS, progress=False, backend="numpy")
    b = gram(net, graphs, num_tags=NUM_TAGS, progress=False, backend="jax")
    assert rel_err(b, a) < 1e-10
    with pytest.raises(ValueError, match="backend must be 'auto', 'numpy' or 'jax', got 'gpu'"):
        gram(net, graphs, num_tags=NUM_TAGS, progress=False, backend="gpu")
    with pytest.raises(ValueError, match="backend must be"):
        program_gram(net.program, graphs, num_tags=NUM_TAGS, backend="cuda")


def test_auto_backend_on_cpu_is_numpy_without_importing_jax():
    code = (
        "import sys, numpy as np\n"
        "from graph_ntk.engine import gram\n"
        "from graph_ntk.kernels.jax_tiles import resolve_backend\n"
        "from graph_ntk.data.graph import Graph\n"
        "import graph_ntk.nn as nn\n"
        "g = Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))\n"
        "net = nn.serial(nn.Dense(8), nn.Aggregate('sum', True), nn.Relu(), nn.Dense(8), nn.GlobalSumPool())\n"
        "K = gram(net, [g, g], num_tags=2, progress=False)\n"
        "assert resolve_backend('auto') == 'numpy'\n"
        "assert 'jax' not in sys.modules, 'auto imported JAX on a CPU machine'\n"
        "print('ok', K.shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok (2, 2)" in out.stdout


def test_bucket_sizes():
    assert [_bucket(n, 4) for n in (1, 4, 5, 9, 13, 17, 25, 33)] == [4, 4, 8, 12, 16, 24, 32, 48]


@pytest.mark.slow
def test_two_host_devices_round_robin():
    """Block columns spread over two (forced host) devices give the same Gram."""
    code = (
        "import jax, numpy as np, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "assert len(jax.local_devices()) == 2\n"
        "from test_jax_tiles import _run\n"
        "from test_item_engine import DESCRIPTIONS, input_dim, make_graphs, rel_err\n"
        "g = make_graphs('both', seed=4, sizes=(1, 3, 4, 5, 6, 7))\n"
        "net = DESCRIPTIONS['gntk_mean_jk'](input_dim('both'))\n"
        "a = _run(net, g, backend='numpy'); b = _run(net, g, backend='jax', num_threads=2)\n"
        "assert rel_err(b.ntk, a.ntk) < 1e-10, rel_err(b.ntk, a.ntk)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
