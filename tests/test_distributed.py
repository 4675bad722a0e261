"""gram(..., scheduler=...) on a local Dask cluster equals the serial Gram, survives a killed
worker, and a rerun computes only the blocks missing from the cache."""

import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")  # a dev dependency (extra 'dask')

from graph_ntk.cli import main  # noqa: E402
from graph_ntk.datasets import make_demo_dataset  # noqa: E402
from graph_ntk.engine import GNTK, gram  # noqa: E402

MODEL = GNTK(num_blocks=2, num_mlp_layers=1)


@pytest.fixture(scope="module")
def client():
    # Worker processes (not threads), as on a real cluster: everything a task needs must
    # travel pickled, and a worker can be killed without killing the test.
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as c, \
            distributed.Client(c) as cl:
        yield cl


@pytest.fixture(scope="module")
def graphs():
    return make_demo_dataset(24).graphs


def _blocks(folder):
    """{block file name: (inode, mtime)} of every cached block under ``folder``."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*.npz")}


def test_matches_serial(client, graphs, tmp_path):
    get = ("ntk", "nngp")
    serial = gram(MODEL, graphs, get=get, block_size=8, progress=False)
    dask = gram(MODEL, graphs, get=get, block_size=8, progress=False, cache_dir=tmp_path / "a", scheduler=client)
    for s, d in zip(serial, dask):
        np.testing.assert_array_equal(d, s)
    assert len(_blocks(tmp_path / "a")) == 6  # 3 chunks: 3 * 4 / 2 chunk pairs, one file each
    # Rows and columns apart, and the scheduler given by its address (a client of our own).
    rows, cols = graphs[:14], graphs[14:]
    serial = gram(MODEL, rows, cols, block_size=8, progress=False)
    dask = gram(MODEL, rows, cols, block_size=8, progress=False, cache_dir=tmp_path / "b",
                scheduler=client.scheduler.address)
    np.testing.assert_array_equal(dask, serial)


def test_rerun_computes_only_missing_blocks(client, graphs, tmp_path):
    serial = gram(MODEL, graphs, block_size=8, progress=False, cache_dir=tmp_path)
    before = _blocks(tmp_path)
    lost = sorted(before)[::4]  # as if the client had been killed before these were done
    for p in tmp_path.rglob("*.npz"):
        if p.name in lost:
            p.unlink()
    K = gram(MODEL, graphs, block_size=8, progress=False, cache_dir=tmp_path, scheduler=client)
    np.testing.assert_array_equal(K, serial)
    after = _blocks(tmp_path)
    assert after.keys() == before.keys()
    rewritten = sorted(name for name in after if after[name] != before[name])
    assert rewritten == lost


def test_killed_worker_is_replaced_and_its_task_rerun(client, graphs, tmp_path):
    import jax.numpy as jnp

    marker, client_pid = tmp_path / "killed", os.getpid()

    def kernel_fn(x1, x2, get, **kwargs):
        # Runs when a worker traces its first block: the first one dies mid-task, hard. The
        # kernel itself (linear in the label counts) is cheap to compile on every worker.
        if os.getpid() != client_pid and not marker.exists():
            marker.touch()
            os._exit(1)
        return (jnp.einsum("anf,bmf->ab", x1, x2),)

    few, settings = graphs[:16], {"method": "nodes", "block_size": 4, "config": "label-count kernel"}
    serial = gram(kernel_fn, few, progress=False, **settings)
    K = gram(kernel_fn, few, progress=False, cache_dir=tmp_path / "c", scheduler=client, **settings)
    assert marker.exists()  # a worker really died
    np.testing.assert_array_equal(K, serial)
    counts = np.stack([np.bincount(g.node_labels, minlength=serial.shape[0]) for g in few]).astype(float)
    np.testing.assert_array_equal(serial, counts @ counts.T)  # and the kernel is what we think


def test_bad_arguments(client, graphs, tmp_path, capsys):
    with pytest.raises(ValueError, match="scheduler= needs cache_dir="):
        gram(MODEL, graphs, scheduler=client, progress=False)
    with pytest.raises(TypeError, match="scheduler must be a dask.distributed Client or an address"):
        gram(MODEL, graphs, scheduler=8786, cache_dir=tmp_path, progress=False)
    assert main(["gram", "--demo", "--workers", "2", "--output", str(tmp_path / "k.npy")]) == 2
    assert "--scheduler and --workers need --cache-dir" in capsys.readouterr().err


def test_cli_scheduler(client, tmp_path):
    out = tmp_path / "k.npy"
    assert main(["gram", "--demo", "--demo-graphs", "30", "--blocks", "2", "--mlp-layers", "1", "--block-size", "10",
                 "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--scheduler", client.scheduler.address,
                 "--output", str(out)]) == 0
    serial = gram(MODEL, make_demo_dataset(30), block_size=10, progress=False)
    np.testing.assert_array_equal(np.load(out), serial)
