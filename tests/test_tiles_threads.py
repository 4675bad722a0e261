"""The tiled executor's thread pool: BLAS calls inside its worker threads are single-threaded
(OpenBLAS's own threads on top of ours would oversubscribe the cores), and the setting is
restored afterwards."""

from __future__ import annotations

from threadpoolctl import threadpool_info

from graph_ntk.kernels.tiles import parallel_for


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_single_threaded_inside_workers_and_restored():
    before = _blas_threads()
    seen: list[list[int]] = []
    parallel_for(4, lambda i, ctx: seen.append(_blas_threads()), [{}, {}], None)
    assert len(seen) == 4 and all(threads and all(n == 1 for n in threads) for threads in seen)
    assert _blas_threads() == before


def test_one_thread_leaves_blas_alone():
    before = _blas_threads()
    seen: list[list[int]] = []
    parallel_for(2, lambda i, ctx: seen.append(_blas_threads()), [{}], None)
    assert seen == [before, before]
