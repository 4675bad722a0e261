"""The executors' memory reuse (:func:`graph_ntk.kernels.tiles.reused_memory`) and in-place
sparse products (:func:`graph_ntk.kernels.tiles.spmm_into`)."""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

from graph_ntk.engine import GNTK, gram
from graph_ntk.kernels import tiles
from graph_ntk.kernels.program_gram import program_gram
from test_item_engine import DESCRIPTIONS, NUM_TAGS, make_graphs, rel_err


def test_pooled_arrays_are_reused_only_inside_the_context():
    a = tiles.pooled(("x",), (10, 3), np.float32)
    b = tiles.pooled(("x",), (10, 3), np.float32)
    assert not np.shares_memory(a, b)  # no pool outside the context
    with tiles.reused_memory():
        a = tiles.pooled(("x",), (10, 3), np.float32)
        b = tiles.pooled(("x",), (3, 5), np.float64)  # as many bytes: the same memory
        assert np.shares_memory(a, b) and b.shape == (3, 5) and b.dtype == np.float64
        with tiles.reused_memory():  # nested: still the same pool
            assert np.shares_memory(tiles.pooled(("x",), (2,), np.float32), a)
        c = tiles.pooled(("x",), (100,), np.float64)  # larger: a new buffer
        assert not np.shares_memory(c, a)
        assert not np.shares_memory(tiles.pooled(("y",), (10, 3), np.float32), c)  # keys are separate
        # another thread (another job, a Dask worker) has no pool of its own here
        seen = []
        worker = threading.Thread(target=lambda: seen.append(tiles.current_pool()))
        worker.start()
        worker.join()
        assert seen == [None] and tiles.current_pool() is not None
    assert tiles.current_pool() is None  # released on exit


def test_spmm_into_equals_the_product():
    rng = np.random.default_rng(0)
    a = sp.random(7, 5, density=0.4, format="csr", random_state=1)
    x = rng.normal(size=(5, 6))
    out = rng.normal(size=(7, 6))
    tiles.spmm_into(a, x, out)
    np.testing.assert_allclose(out, a @ x, rtol=1e-14)
    tiles.spmm_into(a, x, out, accumulate=True)
    np.testing.assert_allclose(out, 2 * (a @ x), rtol=1e-14)
    # a strided output or another dtype takes the allocating path, same numbers
    big = np.zeros((7, 12))
    tiles.spmm_into(a, x, big[:, ::2])
    np.testing.assert_allclose(big[:, ::2], a @ x, rtol=1e-14)
    out32 = np.zeros((7, 6), np.float32)
    tiles.spmm_into(a, x, out32)
    np.testing.assert_allclose(out32, a @ x, rtol=1e-6)


def test_grams_do_not_depend_on_reused_memory():
    """Stale contents of reused buffers never leak into results: two different jobs in one
    context, then each alone, give the same matrices (chunked, so that chunk pairs reuse), up
    to the order in which threads add their partial sums."""
    g1 = make_graphs("labels", seed=4, sizes=tuple(np.random.default_rng(5).integers(2, 10, 24)))
    g2 = make_graphs("both", seed=6, sizes=(3, 7, 5, 6))
    program = DESCRIPTIONS["gcn_gelu"](NUM_TAGS + 2).program
    with tiles.reused_memory():
        k1 = gram(GNTK(3, 2, aggregation="mean"), g1, num_tags=NUM_TAGS, memory_limit=300_000, progress=False)
        p2 = program_gram(program, g2, num_tags=NUM_TAGS, block_size=2)
    alone1 = gram(GNTK(3, 2, aggregation="mean"), g1, num_tags=NUM_TAGS, memory_limit=300_000, progress=False)
    alone2 = program_gram(program, g2, num_tags=NUM_TAGS, block_size=2)
    assert rel_err(k1, alone1) < 1e-13
    assert rel_err(p2.ntk, alone2.ntk) < 1e-13 and rel_err(p2.nngp, alone2.nngp) < 1e-13
