"""Hostile inputs to the node-level API (audit of main @ a48fafa, findings S3-S7, U1-U4, U8,
U17-U19, U23): each is refused at the boundary by the graph_ntk.checks policy — a wrong type
is a TypeError, a wrong value a ValueError, one line naming the argument — instead of being
coerced, iterated, or failing inside NumPy / JAX / neural-tangents.
"""

from __future__ import annotations

from decimal import Decimal

import jax
import numpy as np
import pytest
from neural_tangents import stax

import graph_ntk as gn
import graph_ntk.nn as nn
from graph_ntk.kernels.lowrank import lowrank_node_kernel, select_landmarks
from graph_ntk.kernels.node_kernel import exact_node_kernel
from graph_ntk.models.node import gcn, gcnii, gin, sage, node_kernel
from graph_ntk.monte_carlo import monte_carlo_kernel
from graph_ntk.node_inference import node_gp, node_gp_classify, node_gp_predict, node_gp_select

X6 = np.eye(6)
EI6 = np.array([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
EI6 = np.hstack([EI6, EI6[::-1]])
Y6 = np.array([0, 1, 0, 1, 0, 1])
K2, Y2 = np.eye(2), np.array([0, 1])


def _refused(call, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match) as info:
        call()
    assert "\n" not in str(info.value), "one line"


def _gp(**kw):
    return node_gp(gcn(2), X6, EI6, kw.pop("y", Y6), [0, 1], [2, 3], [4, 5], 2, **kw)


def _lowrank(**kw):
    return lowrank_node_kernel(gcn(2), X6, EI6, **kw)


# S3: reals coerced with float() -- strings, bytes, bools, complex, inf
@pytest.mark.parametrize("call, exc, match", [
    (lambda: node_gp_classify(K2, K2, Y2, 2, "0.1", Y2), TypeError, "reg must be a real number"),
    (lambda: node_gp_classify(K2, K2, Y2, 2, True, Y2), TypeError, "reg must be a real number"),
    (lambda: node_gp_predict(K2, K2, Y2, 2, 1j), TypeError, "reg must be a real number"),
    (lambda: _lowrank(jitter="3"), TypeError, "jitter must be a real number"),
    (lambda: _lowrank(jitter=True), TypeError, "jitter must be a real number"),
    (lambda: _lowrank(jitter=np.inf), ValueError, "jitter must be finite"),
    (lambda: _gp(regs=b"3"), TypeError, "regs must be a sequence of numbers"),
    (lambda: _gp(regs=["3"]), TypeError, r"regs\[0\] must be a real number"),
    (lambda: _gp(regs=[True]), TypeError, r"regs\[0\] must be a real number"),
], ids=["reg-str", "reg-bool", "reg-complex", "jitter-str", "jitter-bool", "jitter-inf", "regs-bytes",
        "regs-str-item", "regs-bool-item"])
def test_s3_reals_not_coerced(call, exc, match):
    _refused(call, exc, match)


# S4: num_landmarks validated by int(x) == x
@pytest.mark.parametrize("value", [True, 2.0, np.complex64(1), Decimal(2)], ids=["bool", "float", "complex", "decimal"])
def test_s4_num_landmarks_is_a_count(value):
    _refused(lambda: _lowrank(num_landmarks=value), TypeError, "num_landmarks must be an integer")
    _refused(lambda: select_landmarks(X6, value), TypeError, "num_landmarks must be an integer")


# S5: node kernels that overflow to inf/NaN are refused, naming the fixes
@pytest.mark.parametrize("network", [nn.serial(nn.Dense(2), nn.Aggregate()), gcn(3)], ids=["linear", "gcn3"])
@pytest.mark.parametrize("x, dtype", [(np.full((3, 1), 1e200), np.float64), (np.full((3, 1), 1e30), np.float32)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("kernel", ["exact", "lowrank"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_s5_overflow_refused(network, x, dtype, kernel):
    ei = [[0, 1], [1, 0]]
    if kernel == "exact":
        def call():
            return exact_node_kernel(network, x, ei, ("nngp", "ntk"), dtype=dtype)
    else:
        def call():
            low = lowrank_node_kernel(network, x, ei, ("nngp", "ntk"), num_landmarks=2, dtype=dtype)
            return low.block(get="nngp"), low.block(get="ntk")
    _refused(call, ValueError, "not finite .*overflowed; rescale the node features x")


# S6: a relational Aggregate on a graph without arc types (every arc read as type 0)
@pytest.mark.parametrize("network", [
    nn.serial(nn.Dense(2), nn.Aggregate(edge_types=2)),
    nn.serial(nn.FanOut(2), nn.parallel(nn.Dense(2), nn.serial(nn.Dense(2), nn.Aggregate(edge_types=3))),
              nn.FanInSum()),
], ids=["serial", "in-a-branch"])
@pytest.mark.parametrize("kernel", ["exact", "lowrank"])
def test_s6_relational_network_refused(network, kernel):
    fn = exact_node_kernel if kernel == "exact" else lowrank_node_kernel
    _refused(lambda: fn(network, X6, EI6), ValueError, "edge_types=[23] but the graph has no edge_type")


# S7: node_gp compares y with the graph
@pytest.mark.parametrize("y", [Y6[:5], np.concatenate([Y6, [0]])], ids=["short", "long"])
@pytest.mark.parametrize("method", ["exact", "lowrank"])
def test_s7_labels_match_nodes(y, method):
    _refused(lambda: _gp(y=y, method=method), ValueError, r"y must have one label per node \(6 rows of x\)")


# U1: seeds
@pytest.mark.parametrize("seed, exc", [(2.5, TypeError), (-1, ValueError), ("0", TypeError), (2**32, ValueError),
                                       (True, TypeError)])
def test_u1_seed(seed, exc):
    _refused(lambda: _lowrank(num_landmarks=2, seed=seed), exc, "seed must be")
    _refused(lambda: select_landmarks(X6, 2, seed=seed), exc, "seed must be")


# U2: grids / regs: None, scalars, strings; node_gp_classify reg None / inf / ragged
@pytest.mark.parametrize("call, exc, match", [
    (lambda: _gp(regs=None), TypeError, "regs must be a sequence"),
    (lambda: _gp(regs=0.1), TypeError, "regs must be a sequence"),
    (lambda: _gp(regs="no"), TypeError, "regs must be a sequence"),
    (lambda: _gp(regs=[]), ValueError, "regs is empty"),
    (lambda: _gp(regs=[0.1, np.nan]), ValueError, r"regs\[1\] must be finite"),
    (lambda: node_gp_select(lambda r, c: np.eye(6)[np.ix_(r, c)], Y6, [0, 1], [2, 3], [4], 2, regs=None),
     TypeError, "regs must be a sequence"),
    (lambda: node_gp_classify(K2, K2, Y2, 2, None, Y2), TypeError, "reg must be a real number"),
    (lambda: node_gp_classify(K2, K2, Y2, 2, np.inf, Y2), ValueError, "reg must be finite"),
    (lambda: node_gp_classify(K2, K2, Y2, 2, [[1], [1, 2]], Y2), TypeError, "reg must be a real number"),
    (lambda: node_gp_classify(K2, K2, Y2, 2, -1.0, Y2), ValueError, "reg must be at least 0"),
], ids=["None", "scalar", "str", "empty", "nan-item", "select-None", "reg-None", "reg-inf", "reg-ragged", "reg-neg"])
def test_u2_grids(call, exc, match):
    _refused(call, exc, match)


# U3: num_landmarks None / nan / inf / 0
@pytest.mark.parametrize("value, exc", [(None, TypeError), (np.nan, TypeError), (np.inf, TypeError),
                                        (0, ValueError), ("5", TypeError)])
def test_u3_num_landmarks(value, exc):
    _refused(lambda: _lowrank(num_landmarks=value), exc, "num_landmarks must be")


# U4: jitter "no" / 1j / negative
@pytest.mark.parametrize("value, exc", [("no", TypeError), (1j, TypeError), (-1e-3, ValueError), (np.nan, ValueError)])
def test_u4_jitter(value, exc):
    _refused(lambda: _lowrank(jitter=value), exc, "jitter must be")


# U8: get= not a name or a sequence of names
@pytest.mark.parametrize("get, exc", [(None, TypeError), (5, TypeError), ((), TypeError), ("bogus", ValueError),
                                      (("nngp", "x"), ValueError)])
@pytest.mark.parametrize("fn", [exact_node_kernel, lowrank_node_kernel,
                                lambda net, x, ei, get: node_kernel(net[2], x, ei, get)],
                         ids=["exact", "lowrank", "stax"])
def test_u8_get(get, exc, fn):
    _refused(lambda: fn(gcn(2), X6, EI6, get), exc, "get must be")


def test_u8_get_lowrank_block_and_node_gp():
    low = _lowrank(num_landmarks=6)
    _refused(lambda: low.block(get=None), ValueError, "get must be one of")
    _refused(lambda: _gp(get=None), ValueError, "get must be one of")
    _refused(lambda: _gp(method=None), ValueError, "method must be one of")


# U17: reals of the node presets
@pytest.mark.parametrize("call, exc, match", [
    (lambda: gcn(2, W_std="1"), TypeError, "W_std must be a real number"),
    (lambda: gin(2, b_std=None), TypeError, "b_std must be a real number"),
    (lambda: sage(2, W_std=np.nan), ValueError, "W_std must be finite"),
    (lambda: sage(2, combine=None), ValueError, "combine must be one of"),
    (lambda: gcn(2, W_std=0.0), ValueError, "W_std must be positive"),
    (lambda: gcnii(2, lam="x"), TypeError, "lam must be a real number"),
    (lambda: gcnii(2, alpha="0.1"), TypeError, "alpha must be a real number"),
    (lambda: gcnii(2, alpha=np.nan), ValueError, "alpha must be finite"),
    (lambda: gcnii(2, beta="0.5"), TypeError, "beta must be a sequence"),
    (lambda: gcnii(2, beta=[0.5, "x"]), TypeError, r"beta\[1\] must be a real number"),
], ids=["gcn-W-str", "gin-b-None", "sage-W-nan", "sage-combine", "gcn-W-0", "gcnii-lam", "gcnii-alpha-str",
        "gcnii-alpha-nan", "gcnii-beta-str", "gcnii-beta-item"])
def test_u17_preset_reals(call, exc, match):
    _refused(call, exc, match)


# U18: node_kernel(None, ...)
@pytest.mark.parametrize("kernel_fn", [None, "gcn", 5])
def test_u18_node_kernel_needs_kernel_fn(kernel_fn):
    _refused(lambda: node_kernel(kernel_fn, np.eye(3), [[0, 1], [1, 0]]), TypeError, "kernel_fn must be")


# U19: monte_carlo_kernel key / implementation / model
_G = gn.Graph(3, np.array([[0, 1], [1, 2]]), x=np.eye(3))
_NET = stax.serial(stax.Dense(8), gn.Aggregate(), stax.Relu(), gn.GlobalSumPool())


def _mc(network=_NET, **kw):
    return monte_carlo_kernel(network, [_G, _G], n_samples=4, n_groups=2, **{"key": 0, "get": "nngp", **kw})


@pytest.mark.parametrize("kw, exc, match", [
    ({"key": "a"}, TypeError, "key must be an integer"),
    ({"key": 2.5}, TypeError, "key must be an integer"),
    ({"key": -1}, ValueError, "key must be at least 0"),
    ({"key": None}, TypeError, "key must be an integer"),
    ({"implementation": 7}, ValueError, "implementation must be at most 3"),
    ({"implementation": "1"}, TypeError, "implementation must be an integer"),
    ({"get": None}, TypeError, "get must be"),
], ids=["key-str", "key-float", "key-negative", "key-None", "impl-7", "impl-str", "get-None"])
def test_u19_monte_carlo_arguments(kw, exc, match):
    _refused(lambda: _mc(**kw), exc, match)


@pytest.mark.parametrize("network", [gn.GNTK(1, 1), "net", None, (1, 2, 3), gn.GNTK],
                         ids=["GNTK", "str", "None", "not-callables", "class"])
def test_u19_monte_carlo_needs_a_triple(network):
    _refused(lambda: _mc(network), TypeError, "network must be a stax triple .* or a graph_ntk.nn network")


def test_u19_monte_carlo_keys_still_accepted():
    """An integer seed and both kinds of JAX key give the same estimate for the same seed."""
    by_seed = _mc(key=1).mean
    np.testing.assert_allclose(_mc(key=jax.random.PRNGKey(1)).mean, by_seed)
    assert _mc(key=jax.random.key(1)).mean.shape == by_seed.shape


# U23: node_gp_classify kernel matrices
@pytest.mark.parametrize("k_tt, k_st, exc, match", [
    ("ab", K2, TypeError, "K_train_train must hold real numbers"),
    (K2, [["a", "b"]], TypeError, "K_test_train must hold real numbers"),
    (K2 + 0j, K2, TypeError, "K_train_train must hold real numbers, got complex"),
    ([[1, 0], [0]], K2, ValueError, "K_train_train must be a rectangular array"),
], ids=["str", "str-test", "complex", "ragged"])
def test_u23_kernel_matrices(k_tt, k_st, exc, match):
    _refused(lambda: node_gp_classify(k_tt, k_st, Y2, 2, 0.1, Y2), exc, match)
