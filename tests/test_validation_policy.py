"""One validation policy at every public boundary, checked by generated inputs (Hypothesis),
and the classes of silently wrong results, each pinned at its root.

Policy (graph_ntk.checks): a count is an integer (2.5 is never 2, True never 1); a flag is a
bool (the string "no" is never True); a real is finite; every error is one line, a
ValueError or TypeError naming the argument.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graph_ntk as gn
import graph_ntk.nn as nn
from graph_ntk.checks import as_choice, as_count, as_flag, as_real
from graph_ntk.cli import main as cli_main
from graph_ntk.evaluation import check_gram, cosine_normalize

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"

# values that are not integers: each must be refused by a count, never truncated
not_integers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: True),
    st.booleans(),
    st.text(max_size=4),
    st.complex_numbers(max_magnitude=10),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([np.float64(2.0), np.float32(3.5), np.bool_(True), np.str_("2")]),
)
not_flags = st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=4), st.none(),
                      st.sampled_from(["no", "False", "0", 0, 1, [], [0]]))
not_reals = st.one_of(st.sampled_from([float("nan"), float("inf"), -float("inf"), np.float32("nan")]),
                      st.text(max_size=3), st.booleans(), st.none(), st.complex_numbers(max_magnitude=3))

# every public builder argument that is a count, a flag or a real
COUNT_ARGS = [
    ("Dense(out_dim)", lambda v: nn.Dense(v)),
    ("FanOut(num)", lambda v: nn.FanOut(v)),
    ("Aggregate(edge_types)", lambda v: nn.Aggregate(edge_types=v)),
    ("GNTK(num_blocks)", lambda v: gn.GNTK(num_blocks=v)),
    ("GNTK(num_mlp_layers)", lambda v: gn.GNTK(num_mlp_layers=v)),
    ("gram(block_size)", lambda v: gn.gram(gn.GNTK(1, 1), [_graph()], block_size=v, progress=False)),
    ("gram(num_tags)", lambda v: gn.gram(gn.GNTK(1, 1), [_graph()], num_tags=v, progress=False)),
    ("gram(memory_limit)", lambda v: gn.gram(gn.GNTK(1, 1), [_graph()], memory_limit=v, progress=False)),
    ("Graph(num_nodes)", lambda v: gn.Graph(v, np.zeros((2, 0), int), x=np.ones((1, 1)))),
    ("wl_subtree_gram(h)", lambda v: gn.wl_subtree_gram([_graph()], h=v)),
    ("InputEncoding(num_features)", lambda v: gn.InputEncoding(num_features=v)),
]
NONE_ALLOWED = {"Aggregate(edge_types)", "gram(block_size)", "gram(num_tags)", "gram(memory_limit)",
                "InputEncoding(num_features)"}
FLAG_ARGS = [
    ("Aggregate(add_self_loops)", lambda v: nn.Aggregate(add_self_loops=v)),
    ("GNTK(jumping_knowledge)", lambda v: gn.GNTK(jumping_knowledge=v)),
    ("Relu(do_stabilize)", lambda v: nn.Relu(do_stabilize=v)),
    ("Gelu(approximate)", lambda v: nn.Gelu(approximate=v)),
    ("GraphKernelTransformer(normalize)", lambda v: gn.GraphKernelTransformer(normalize=v).fit([_graph()])),
]
REAL_ARGS = [
    ("Dense(W_std)", lambda v: nn.Dense(4, W_std=v)),
    ("Dense(b_std)", lambda v: nn.Dense(4, b_std=v)),
    ("Erf(a)", lambda v: nn.Erf(a=v)),
    ("LeakyRelu(alpha)", lambda v: nn.LeakyRelu(v)),
    ("ABRelu(b)", lambda v: nn.ABRelu(0.0, v)),
    ("Scale(c)", lambda v: nn.Scale(v)),
]


def _graph(labels=(0, 1)):
    return gn.Graph(len(labels), np.array([[0, 1], [1, 0]]) if len(labels) == 2 else np.zeros((2, 0), int),
                    node_labels=np.array(labels))


def _one_line_refusal(call, value):
    with pytest.raises((TypeError, ValueError)) as err:
        call(value)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


@pytest.mark.parametrize("name, call", COUNT_ARGS, ids=[c[0] for c in COUNT_ARGS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=not_integers)
def test_counts_are_never_truncated_or_truth_tested(name, call, value):
    if isinstance(value, (np.integer,)) and not isinstance(value, np.bool_):
        return
    if value is None and name in NONE_ALLOWED:
        return
    msg = _one_line_refusal(call, value)
    arg = name.split("(")[1].rstrip(")")
    assert arg in msg, f"{name}: the message must name {arg!r}: {msg}"


@pytest.mark.parametrize("name, call", COUNT_ARGS[:5], ids=[c[0] for c in COUNT_ARGS[:5]])
@given(value=st.integers(max_value=0))
@settings(max_examples=10, deadline=None)
def test_counts_below_one_are_refused(name, call, value):
    _one_line_refusal(call, value)


@pytest.mark.parametrize("name, call", FLAG_ARGS, ids=[c[0] for c in FLAG_ARGS])
@settings(max_examples=20, deadline=None)
@given(value=not_flags)
def test_flags_are_never_truth_tested(name, call, value):
    msg = _one_line_refusal(call, value)
    assert name.split("(")[1].rstrip(")") in msg


@pytest.mark.parametrize("name, call", REAL_ARGS, ids=[c[0] for c in REAL_ARGS])
@settings(max_examples=20, deadline=None)
@given(value=not_reals)
def test_reals_are_finite_numbers(name, call, value):
    if value is None and name == "Dense(b_std)":
        return
    msg = _one_line_refusal(call, value)
    assert name.split("(")[1].rstrip(")") in msg


@given(value=st.one_of(st.integers(1, 10**6), st.sampled_from([np.int8(3), np.uint16(7), np.int64(9)])))
@settings(max_examples=20, deadline=None)
def test_valid_counts_pass_unchanged(value):
    assert as_count(value, "n") == int(value) and type(as_count(value, "n")) is int
    assert as_flag(np.bool_(True), "f") is True
    assert as_real(value, "r") == float(value)
    assert as_choice("sum", "a", ("sum", "mean")) == "sum"


# ----------------------------------------------------------------------- the input encoding
raw_tags = st.one_of(st.integers(-5, 50), st.text(alphabet="CNOSPclr", min_size=1, max_size=3))


@given(groups=st.lists(st.lists(raw_tags, min_size=1, max_size=6), min_size=1, max_size=6), seed=st.integers(0, 99))
@settings(max_examples=40, deadline=None)
def test_encoding_fit_ignores_graph_order_and_round_trips(groups, seed):
    enc = gn.InputEncoding.fit(groups)
    shuffled = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    assert gn.InputEncoding.fit(shuffled) == enc
    assert gn.InputEncoding.from_dict(json.loads(json.dumps(enc.to_dict()))) == enc
    for g in groups:
        assert enc.decode_tags(enc.encode_tags(g)) == list(g)
    # another column order of the same tags: same fingerprint (same kernels), other codes
    reordered = gn.InputEncoding(tags=enc.tags[::-1])
    assert reordered.fingerprint == enc.fingerprint


def test_encoding_refuses_what_would_merge():
    with pytest.raises(TypeError, match="bool"):
        gn.InputEncoding.fit([[True, 1]])
    with pytest.raises(TypeError, match="round them"):
        gn.InputEncoding.fit([[1.0, 2.0]])
    with pytest.raises(ValueError, match="twice"):
        gn.InputEncoding(tags=(1, 1))
    mixed = gn.InputEncoding.fit([[1, "1"]])  # the int 1 and the string "1" stay two tags
    assert mixed.num_tags == 2


# ----------------------------------------------------------------------- numerics
@given(scale=st.floats(1e150, 1e300))
@settings(max_examples=20, deadline=None)
def test_cosine_normalisation_never_overflows(scale):
    K = scale * np.array([[4.0, 2.0], [2.0, 9.0]])
    np.testing.assert_allclose(cosine_normalize(K), [[1.0, 1 / 3], [1 / 3, 1.0]], rtol=1e-12)


def test_complex_and_non_numeric_grams_are_refused():
    with pytest.raises(TypeError, match="complex"):
        check_gram(np.eye(2) * (1 + 1j))
    with pytest.raises(TypeError, match="complex"):
        cosine_normalize(np.eye(2) * (1 + 1j))
    with pytest.raises(TypeError, match="strings"):
        check_gram([["1", "0"], ["0", "1"]])


def test_underflow_is_reported_like_overflow():
    g = _graph()
    tiny = nn.serial(nn.Dense(4, W_std=1e-30), nn.Aggregate(), nn.Dense(4, W_std=1e-30), nn.GlobalSumPool())
    with pytest.raises(ValueError, match="underflowed"):
        gn.gram(tiny, [g, g], num_tags=2, dtype="float32", get="nngp", progress=False)


# ----------------------------------------------------------------------- engine vs oracle
def test_nonlinearity_on_raw_features_is_refused_as_by_nt():
    with pytest.raises(ValueError, match="Gaussian input"):
        gn.gram(nn.serial(nn.Relu(), nn.GlobalSumPool()), [_graph()], num_tags=2, progress=False)


def test_relational_aggregate_needs_edge_types():
    net = nn.serial(nn.Dense(4), nn.Aggregate(edge_types=2), nn.Dense(4), nn.GlobalSumPool())
    with pytest.raises(ValueError, match="has no edge_type"):
        gn.gram(net, [_graph()], num_tags=2, progress=False)


def test_model_class_instead_of_instance():
    with pytest.raises(TypeError, match=r"pass an instance, e\.g\. GNTK\(\)"):
        gn.gram(gn.GNTK, [_graph()], progress=False)


def test_relational_node_path_and_monte_carlo_match_the_item_engine():
    ds = gn.load_tu(DATA / "tu", "MUTAG").subset(range(5))
    T = ds.encoding.num_edge_types
    net = nn.serial(nn.Dense(8), nn.Aggregate("sum", True, edge_types=T), nn.Dense(8), nn.Relu(), nn.Dense(4),
                    nn.GlobalSumPool())
    items = gn.gram(net, ds, get="nngp", progress=False)
    nodes = gn.gram(net, ds, get="nngp", method="nodes", progress=False)
    assert np.abs(items - nodes).max() <= 1e-8 * np.abs(items).max()
    est = gn.monte_carlo_kernel(net, ds.graphs, n_samples=8, n_groups=2, key=0, get="nngp")
    assert est.mean.shape == (5, 5) and np.isfinite(est.mean).all()


@pytest.mark.parametrize("pool", ["MemPooling", "SortPool"])
def test_node_count_changing_pools_followed_by_graph_layers(pool):
    from neural_tangents import stax

    layer = gn.MemPooling(4, heads=2, num_clusters=3) if pool == "MemPooling" else gn.SortPool(3)
    net = stax.serial(stax.Dense(8), layer, stax.Relu(), gn.GlobalSumPool())
    graphs = gn.load_gin(DATA / "gin", "MUTAG").graphs[:3]
    est = gn.monte_carlo_kernel(net, graphs, n_samples=4, n_groups=2, key=0, get="nngp")
    assert est.mean.shape == (3, 3) and np.isfinite(est.mean).all()


# ----------------------------------------------------------------------- loaders and files
def test_node_gp_refuses_overlapping_splits():
    from graph_ntk.node_inference import node_gp_select

    K = np.eye(6)
    with pytest.raises(ValueError, match="share"):
        node_gp_select(lambda r, c: K[np.ix_(r, c)], np.array([0, 1, 0, 1, 0, 1]), np.array([0, 1]),
                       np.array([2, 3]), np.array([1, 4]), 2)


def test_svm_refuses_a_replaced_matrix(tmp_path, capsys):
    out = tmp_path / "k.npy"
    assert cli_main(["gram", "--demo", "--demo-graphs", "20", "--blocks", "1", "--mlp-layers", "1",
                     "--no-progress", "--output", str(out)]) == 0
    K = np.load(out)
    np.save(out, K * 1.01)  # another matrix of the right shape, beside the old sidecar
    assert cli_main(["svm", "--gram", str(out), "--demo", "--demo-graphs", "20"]) != 0
    assert "SHA-256" in capsys.readouterr().err


def test_svm_refuses_another_encoding(tmp_path, capsys):
    src = DATA / "gin" / "IMDBBINARY" / "IMDBBINARY.txt"
    lines = src.read_text().splitlines()
    # a 12-graph copy of IMDB-B: read with and without --degree-as-tag
    n, keep, i = int(lines[0]), [], 1
    for _ in range(12):
        size = int(lines[i].split()[0])
        keep += lines[i:i + size + 1]
        i += size + 1
    (tmp_path / "I").mkdir()
    (tmp_path / "I" / "I.txt").write_text("12\n" + "\n".join(keep) + "\n")
    out = tmp_path / "k.npy"
    assert cli_main(["gram", "--dataset-dir", str(tmp_path), "--name", "I", "--degree-as-tag", "--blocks", "1",
                     "--mlp-layers", "1", "--no-progress", "--output", str(out)]) == 0
    capsys.readouterr()
    assert cli_main(["svm", "--gram", str(out), "--dataset-dir", str(tmp_path), "--name", "I"]) != 0
    assert "input encoding" in capsys.readouterr().err
    assert n > 12


def test_planetoid_reader_never_executes_the_file(tmp_path):
    import os
    import pickle
    import shutil

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    shutil.copytree(DATA / "planetoid" / "cora", tmp_path / "cora")
    (tmp_path / "cora" / "ind.cora.graph").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(gn.datasets.DatasetFormatError, match="never needs"):
        gn.load_planetoid(tmp_path, "cora")
    assert not (tmp_path / "pwned").exists()


def test_integers_beyond_int64_are_refused(tmp_path):
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "B.txt").write_text("1\n2 0\n99999999999999999999 1 1\n5 1 0\n")
    with pytest.raises(gn.datasets.DatasetFormatError, match="64-bit"):
        gn.load_gin(tmp_path, "B")


def test_a_full_disk_keeps_the_previous_output(tmp_path, monkeypatch):
    from graph_ntk.engine import files

    out = tmp_path / "k.npy"
    files.save_npy_atomic(out, np.eye(3))

    def full(f, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OSError, match="untouched"):
        files.save_npy_atomic(out, np.ones((3, 3)))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(out), np.eye(3))
    assert not list(tmp_path.glob(".*.tmp"))
    assert math.isfinite(1.0)


def test_one_sided_gin_neighbour_lists_are_completed_with_a_warning(tmp_path):
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "B.txt").write_text("1\n3 0\n1 1 1\n2 1 2\n1 0\n")  # 0->1 and 1->2 listed one way
    with pytest.warns(gn.datasets.DatasetWarning, match="2 neighbour entries"):
        ds = gn.load_gin(tmp_path, "B")
    assert ds.graphs[0].edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert ds.meta["one_sided_arcs_completed"] == 2
