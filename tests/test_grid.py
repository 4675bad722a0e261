"""The whole depth grid of the GNTK from one run (issue: grid in one pass)."""

import numpy as np
import pytest

import graph_ntk as gn


@pytest.fixture(scope="module")
def ptc_subset(shared_dir):
    ds = gn.load_gin(shared_dir / "datasets" / "gin", "PTC")
    return ds.subset(np.arange(0, len(ds), 4))


@pytest.mark.parametrize("aggregation,readout", [("sum", "sum"), ("mean", "mean")])
def test_every_depth_equals_its_own_run(ptc_subset, aggregation, readout):
    grid = gn.gram(gn.GNTK(4, 2, aggregation, readout=readout), ptc_subset, get=("nngp", "ntk"),
                   all_depths=True, progress=False)
    assert sorted(grid) == [(d, jk) for d in range(1, 5) for jk in (False, True)]
    for (depth, jk), got in grid.items():
        want = gn.gram(gn.GNTK(depth, 2, aggregation, jk, readout), ptc_subset, get=("nngp", "ntk"), progress=False)
        for g, w in zip(got, want):
            assert np.abs(g - w).max() <= 1e-10 * np.abs(w).max(), (depth, jk)


def test_grid_output_file_cache_and_errors(ptc_subset, tmp_path):
    out = tmp_path / "grid.npz"
    grid = gn.gram(gn.GNTK(3, 1), ptc_subset, all_depths=True, output=out, cache_dir=tmp_path / "c",
                   block_size=20, progress=False)
    saved = np.load(out)
    assert sorted(saved.files) == sorted(f"L{d}_{j}" for d in (1, 2, 3) for j in ("jk", "nojk"))
    np.testing.assert_array_equal(saved["L2_nojk"], grid[(2, False)])
    again = gn.gram(gn.GNTK(3, 1), ptc_subset, all_depths=True, cache_dir=tmp_path / "c", block_size=20,
                    progress=False)  # from the cache
    np.testing.assert_array_equal(again[(3, True)], grid[(3, True)])
    with pytest.raises(ValueError, match="all_depths=True needs model=GNTK"):
        gn.gram(gn.gntk(2, 1, input_dim=19), ptc_subset, all_depths=True)
    with pytest.raises(ValueError, match=r"\.npz"):
        gn.gram(gn.GNTK(2, 1), ptc_subset, all_depths=True, output=tmp_path / "K.npy")
    # the per-depth results count against memory_limit: refused before any work
    n = len(ptc_subset)
    held = 1 * 3 * n * n * 8 * 2  # one kernel, 3 readouts, their per-depth sums
    with pytest.raises(MemoryError, match=r"the Gram matrices .* more than memory_limit"):
        gn.gram(gn.GNTK(2, 1), ptc_subset, all_depths=True, memory_limit=held - 1, progress=False)


def test_cli_blocks_range_writes_every_depth(shared_dir, tmp_path):
    from graph_ntk.cli import main

    out = tmp_path / "grid.npz"
    args = ["gram", "--dataset-dir", str(shared_dir / "datasets" / "gin"), "--name", "MUTAG", "--no-progress"]
    assert main([*args, "--blocks", "2-3", "--mlp-layers", "1", "--output", str(out)]) == 0
    saved = np.load(out)
    assert sorted(saved.files) == ["L2_jk", "L2_nojk", "L3_jk", "L3_nojk"]
    mutag = gn.load_gin(shared_dir / "datasets" / "gin", "MUTAG")
    want = gn.gram(gn.GNTK(2, 1, jumping_knowledge=False), mutag, progress=False)
    np.testing.assert_allclose(saved["L2_nojk"], want, rtol=1e-10)
    assert main([*args, "--blocks", "2-3", "--output", str(tmp_path / "grid.npy")]) == 2  # a range needs .npz
    assert main([*args, "--blocks", "3-2", "--output", str(out)]) == 2
