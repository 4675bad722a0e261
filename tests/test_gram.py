"""graph_ntk.engine: colour path == node path, bucketing == one padded batch, caching, resume."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import neural_tangents as nt
import numpy as np
import pytest
from neural_tangents import stax

import graph_ntk as gn
from graph_ntk import Aggregate, Graph, GraphBatch, GlobalSumPool, kernel_kwargs
import graph_ntk.engine.jobs  # noqa: F401  (monkeypatched below)
import graph_ntk.engine.node_path  # noqa: F401
from graph_ntk import engine as gram_mod
from graph_ntk.datasets import load_gin, make_demo_dataset
from graph_ntk.engine import GNTK, BucketPlan, cache_key, gram, gram_diagonal, plan_buckets, save_npy_atomic


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def mutag(shared_dir):
    return load_gin(shared_dir / "datasets" / "gin", "MUTAG")


@pytest.fixture(scope="module")
def demo():
    return make_demo_dataset(40, seed=3)


def _raw_kernel_fn(implementation: str = "DENSE"):
    """A small generic graph network (not the GNTK preset): only the node path applies."""
    return stax.serial(stax.Dense(64, W_std=1.5), Aggregate("gcn", add_self_loops=True, implementation=implementation),
                       stax.Relu(), stax.Dense(64), GlobalSumPool())[2]


# ----------------------------------------------------------------------------- engines agree
@pytest.mark.parametrize(
    "implementation, model",
    [("DENSE", GNTK(4, 2, "sum", True, "sum")), ("SPARSE", GNTK(2, 1, "mean", False, "mean"))],
)
def test_colour_path_equals_node_path(mutag, implementation, model):
    graphs = mutag.graphs[:30]
    colour = gram(model, graphs, get=("nngp", "ntk"), method="colour", progress=False)
    nodes = gram(model, graphs, get=("nngp", "ntk"), method="nodes", implementation=implementation,
                 num_tags=mutag.num_tags, progress=False)
    for c, n in zip(colour, nodes):
        assert c.dtype == np.float64 and c.shape == (30, 30)
        assert rel_err(c, n) < 1e-8


def test_gntk_stax_triple_uses_the_colour_engine(mutag, monkeypatch):
    import graph_ntk as gn

    graphs = mutag.graphs[:12]
    reference = gram(GNTK(2, 2, "mean"), graphs, num_tags=mutag.num_tags, progress=False)
    triple = gn.gntk(2, 2, "mean", input_dim=mutag.num_tags)
    monkeypatch.setattr(gram_mod.node_path._NodeEngine, "dispatch", lambda *a: pytest.fail("node path used"))
    np.testing.assert_allclose(gram(triple, graphs, num_tags=mutag.num_tags, progress=False), reference, rtol=1e-12)
    monkeypatch.undo()
    # built for twice the feature dimension: weight variance 2d doubles the input kernel and
    # the ReLU kernel is 1-homogeneous, so the Gram doubles; the node path must compute it
    other = gn.gntk(2, 2, "mean", input_dim=2 * mutag.num_tags)
    np.testing.assert_allclose(gram(other, graphs, num_tags=mutag.num_tags, progress=False), 2 * reference,
                               rtol=1e-8)


def test_self_loops_and_directed_arcs_stay_on_the_item_engine(demo, monkeypatch):
    """A self-loop or a one-way arc is just another input: the item engine keeps it (no
    silent switch to the node path) and still equals NT's kernel on padded batches."""
    g = demo.graphs[0]
    looped = Graph(g.num_nodes, np.concatenate([g.edge_index, [[0], [0]]], axis=1), node_labels=g.node_labels)
    oneway = Graph(g.num_nodes, g.edge_index[:, 1:], node_labels=g.node_labels)
    graphs = [looped, oneway, *demo.graphs[1:4]]
    nodes = gram(GNTK(2, 1), graphs, method="nodes", progress=False)
    calls = []
    original = gram_mod.item_path.ItemEngine.dispatch
    monkeypatch.setattr(gram_mod.item_path.ItemEngine, "dispatch",
                        lambda self, *a: calls.append(1) or original(self, *a))
    items = gram(GNTK(2, 1), graphs, progress=False)
    assert calls, "auto must use the item engine for any description with a layer program"
    assert rel_err(items, nodes) < 1e-10


# ----------------------------------------------------------------------------- bucketing
@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_buckets_match_one_padded_batch(shared_dir, monkeypatch):
    """Two buckets, chunks padded with repeats, mirrored blocks, and a rectangular Gram ==
    NT's batched kernel of one big padded batch."""
    ptc = load_gin(shared_dir / "datasets" / "gin", "PTC")
    order = np.argsort([g.num_nodes for g in ptc.graphs])
    graphs = [ptc.graphs[i] for i in order[:: len(order) // 10][:10]]  # sizes spread from 2 to ~60 nodes
    # For 10 graphs the planner rightly prefers one bucket (compiling costs more than padding);
    # make compilation free so that it splits them.
    monkeypatch.setattr(gram_mod.buckets, "_SECONDS_PER_COMPILE", 0.0)
    kernel_fn = _raw_kernel_fn()
    kw = dict(num_tags=ptc.num_tags, block_size=3, max_buckets=2, method="nodes", progress=False)
    job = gram_mod.jobs._prepare(kernel_fn, graphs, None, get="ntk", dtype="float64", implementation="DENSE",
                            config=None, memory_limit=1 << 30, cache_dir=None, **kw)
    assert len(job.settings["plan"]) == 2 and len(job.chunks1) >= 4
    assert any(c.padded_len > c.index.size for c in job.chunks1)
    K = gram(kernel_fn, graphs, **kw)
    rect = gram(kernel_fn, graphs[:4], graphs[4:], **kw)

    batch = GraphBatch.from_graphs(graphs, num_tags=ptc.num_tags)
    batched = nt.batch(kernel_fn, batch_size=5, store_on_device=False)
    reference = batched(batch.x, batch.x, "ntk", **kernel_kwargs(batch))
    assert rel_err(K, np.asarray(reference)) < 1e-10
    assert rect.shape == (4, 6) and rel_err(rect, np.asarray(reference)[:4, 4:]) < 1e-10


def test_plan_buckets_properties():
    rng = np.random.default_rng(0)
    sizes = np.concatenate([rng.integers(10, 40, 500), [300, 620]])
    plan = plan_buckets(sizes, max_buckets=5)
    assert 1 <= len(plan.bounds) <= 5 and plan.bounds[-1] == 620
    assert list(plan.bounds) == sorted(plan.bounds)
    # Huge outliers get their own bucket instead of padding 500 small graphs to 620 nodes.
    assert plan.bounds[0] < 300
    assert plan_buckets([7] * 10).bounds == (7,)
    assert BucketPlan((5, 9)).assign(np.array([1, 5, 6, 9])).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="max_buckets"):
        plan_buckets([3], max_buckets=0)


# ----------------------------------------------------------------------------- shapes
def test_rectangular_and_tuple_get(demo):
    a, b = demo.graphs[:15], demo.graphs[15:]
    full_nngp, full_ntk = gram(GNTK(2, 1), demo, get=("nngp", "ntk"), progress=False)
    rect = gram(GNTK(2, 1), a, b, num_tags=demo.num_tags, progress=False)
    assert rect.shape == (15, 25)
    # Two collections run the cross executor with each graph's own variances, the square Gram
    # the square executor: equal to rounding, which sum aggregation of one-hot tags amplifies
    # (collinear items, the ReLU NTK factor's infinite slope: tests/test_cross_exec.py). The
    # variances agree to 4e-16 here, the Grams to ~1e-11.
    assert rel_err(rect, full_ntk[:15, 15:]) < 1e-10
    np.testing.assert_allclose(full_ntk, full_ntk.T, rtol=1e-13)
    # Chunked item engine (a memory limit ~1/10 of what one call needs) and float32 give the
    # same matrix.
    job = gram_mod.jobs._prepare(GNTK(2, 1), a, b, get="ntk", num_tags=None, dtype="float64", block_size=None,
                                 method="auto", implementation="DENSE", config=None, max_buckets=8,
                                 memory_limit=4_000_000, cache_dir=None, progress=False)
    assert len(job.chunks1) > 1 and len(job.chunks2) > 1
    chunked = gram(GNTK(2, 1), a, b, memory_limit=4_000_000, progress=False)
    assert rel_err(chunked, rect) < 1e-10
    single = gram(GNTK(2, 1), demo, get="nngp", dtype="float32", progress=False)
    assert single.dtype == np.float32 and rel_err(single, full_nngp) < 1e-5


def test_gram_diagonal(demo):
    K = gram(GNTK(2, 2), demo, progress=False)
    np.testing.assert_allclose(gram_diagonal(GNTK(2, 2), demo), np.diag(K), rtol=1e-9)


# ----------------------------------------------------------------------------- cache
def _count_dispatches(monkeypatch, fail_after: int | None = None) -> list:
    calls: list = []
    original = gram_mod.item_path.ItemEngine.dispatch

    def spy(self, *args):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt  # as if the run were killed here
        calls.append(args[0].key + "_" + args[2].key)
        return original(self, *args)

    monkeypatch.setattr(gram_mod.item_path.ItemEngine, "dispatch", spy)
    return calls


def test_cache_resumes_without_recomputing(demo, tmp_path, monkeypatch):
    kw = dict(block_size=8, cache_dir=tmp_path / "cache", progress=False)
    reference = gram(GNTK(2, 2), demo, block_size=8, progress=False)
    calls = _count_dispatches(monkeypatch, fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        gram(GNTK(2, 2), demo, output=tmp_path / "K.npy", **kw)
    assert len(calls) == 4 and not (tmp_path / "K.npy").exists()
    [folder] = (tmp_path / "cache").iterdir()
    assert len(list(folder.glob("*.npz"))) == 4

    monkeypatch.undo()
    calls = _count_dispatches(monkeypatch)
    resumed = gram(GNTK(2, 2), demo, output=tmp_path / "K.npy", **kw)
    total = math.comb(5, 2) + 5  # 40 graphs in 5 chunks of 8: unordered chunk pairs
    assert len(calls) == total - 4
    np.testing.assert_array_equal(resumed, reference)
    np.testing.assert_array_equal(np.load(tmp_path / "K.npy"), reference)
    assert not list(tmp_path.glob(".*.tmp")) and not list(folder.glob(".*.tmp"))

    calls.clear()
    gram(GNTK(2, 2), demo, **kw)
    assert calls == []  # everything cached


def test_changed_setting_never_reuses_blocks(demo, tmp_path, monkeypatch):
    kw = dict(block_size=10, cache_dir=tmp_path, progress=False)
    calls = _count_dispatches(monkeypatch)
    k_sum = gram(GNTK(2, 1, "sum"), demo, **kw)
    n_blocks = len(calls)
    k_mean = gram(GNTK(2, 1, "mean"), demo, **kw)
    assert len(calls) == 2 * n_blocks and rel_err(k_mean, k_sum) > 1e-3
    gram(GNTK(2, 1, "sum"), demo, get="nngp", **kw)
    gram(GNTK(2, 1, "sum"), demo, dtype="float32", **kw)
    assert len(calls) == 4 * n_blocks
    assert len(list(tmp_path.iterdir())) == 4
    # Changing one node label of one graph changes the key too.
    g = demo.graphs[0]
    edited = [Graph(g.num_nodes, g.edge_index, node_labels=(g.node_labels + 1) % 4), *demo.graphs[1:]]
    assert cache_key({}, edited, None) != cache_key({}, demo.graphs, None)
    assert cache_key({}, demo.graphs[:3], None) != cache_key({}, demo.graphs[:3], demo.graphs[:3])


def test_raw_kernel_fn_cache_needs_config(demo, tmp_path):
    with pytest.raises(ValueError, match="config="):
        gram(_raw_kernel_fn(), demo.graphs[:3], cache_dir=tmp_path, progress=False)


def test_output_files(demo, tmp_path):
    both = gram(GNTK(1, 1), demo.graphs[:6], get=("ntk", "nngp"), output=tmp_path / "k.npz", progress=False)
    with np.load(tmp_path / "k.npz") as f:
        np.testing.assert_array_equal(f["ntk"], both[0])
        np.testing.assert_array_equal(f["nngp"], both[1])
    with pytest.raises(ValueError, match=r"must end in \.npy"):
        gram(GNTK(1, 1), demo.graphs[:6], output=tmp_path / "k.npz", progress=False)
    with pytest.raises(ValueError, match=r"must end in \.npz"):
        gram(GNTK(1, 1), demo.graphs[:6], get=("ntk", "nngp"), output=tmp_path / "k.npy", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npz", "k.npz.json"]
    # the sidecar is the CLI's: load_gram verifies the matrices by it, and refuses a replaced file
    loaded = gn.load_gram(tmp_path / "k.npz")
    np.testing.assert_array_equal(loaded["ntk"], both[0])
    np.savez(tmp_path / "k.npz", ntk=both[0] * 2, nngp=both[1])
    with pytest.raises(ValueError, match="SHA-256"):
        gn.load_gram(tmp_path / "k.npz")


def test_save_npy_atomic(tmp_path):
    save_npy_atomic(tmp_path / "sub" / "a.npy", np.arange(3.0))
    assert np.load(tmp_path / "sub" / "a.npy").tolist() == [0.0, 1.0, 2.0]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.npy"]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"get": "cov"}, ValueError, "get must be"),
        ({"dtype": "float16"}, ValueError, "dtype must be"),
        ({"method": "fast"}, ValueError, "method must be"),
        ({"implementation": "csr"}, ValueError, "implementation must be"),
        ({"block_size": 0}, ValueError, "block_size"),
    ],
)
def test_argument_errors(demo, kwargs, error, match):
    with pytest.raises(error, match=match):
        gram(GNTK(1, 1), demo.graphs[:2], progress=False, **kwargs)


def test_input_errors(demo):
    with pytest.raises(TypeError, match="single Graph"):
        gram(GNTK(1, 1), demo.graphs[0])
    with pytest.raises(TypeError, match=r"graphs\[1\]"):
        gram(GNTK(1, 1), [demo.graphs[0], "x"])
    with pytest.raises(ValueError, match="empty"):
        gram(GNTK(1, 1), [])
    with pytest.raises(ValueError, match="method='colour' needs"):
        gram(_raw_kernel_fn(), demo.graphs[:2], method="colour")
    featured = Graph(2, np.array([[0, 1], [1, 0]]), x=np.ones((2, 3)))  # continuous features: item engine too
    assert np.isfinite(gram(GNTK(1, 1), [featured], method="colour", progress=False)).all()
    with pytest.raises(ValueError, match="num_blocks"):
        GNTK(num_blocks=0)
    with pytest.raises(ValueError, match="aggregation"):
        GNTK(aggregation="max")


@pytest.mark.slow
def test_blocks_spread_over_several_devices(tmp_path):
    """With two (virtual CPU) devices the node path dispatches round-robin and still agrees."""
    script = tmp_path / "two_devices.py"
    script.write_text(
        "import jax, numpy as np\n"
        "import graph_ntk\n"
        "from graph_ntk.datasets import make_demo_dataset\n"
        "from graph_ntk.engine import GNTK, gram\n"
        "assert len(jax.devices()) == 2\n"
        "ds = make_demo_dataset(24)\n"
        "nodes = gram(GNTK(2, 1), ds, method='nodes', block_size=4, progress=False)\n"
        "colour = gram(GNTK(2, 1), ds, method='colour', progress=False)\n"
        "print(float(np.abs(nodes - colour).max() / np.abs(colour).max()))\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout.strip().splitlines()[-1]) < 1e-8


def test_inconsistent_node_information_is_rejected():
    tri = np.array([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]])
    labelled = Graph(3, tri, node_labels=np.array([0, 1, 1]))
    featured = Graph(3, tri, x=np.ones((3, 3)))
    with pytest.raises(ValueError, match="graph 1 .*lacks discrete node_labels but graph 0 has them"):
        gram(GNTK(2, 1), [labelled], [featured], progress=False)
    with pytest.raises(ValueError, match="num_tags=1 but a graph has node label 1"):
        gram(GNTK(2, 1), [labelled], num_tags=1, progress=False)
