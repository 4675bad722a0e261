"""Speed-up of a Gram on a local Dask cluster (``gram(..., scheduler=...)``) over one process.

The job: the node path (jitted neural-tangents blocks) of GNTK(L=2, R=1) on demo graphs,
``--block-size`` graphs per block side, so that there are enough blocks to share out. Each
side runs the job twice, each time into an empty cache: *cold* includes the JIT
compilations (every worker compiles each block shape it meets, where one process compiles
each shape once), *warm* is the same job again with the compilations cached, i.e. the
steady state of a long job. The cluster's start-up is timed apart. The client process
only waits, so ``--workers 2`` has as many processes working as a 2-core machine has cores.

    .venv/bin/python benchmarks/bench_dask.py [--graphs 200] [--workers 2] [--block-size 25]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=25)
    parser.add_argument("--method", choices=("nodes", "colour"), default="nodes")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from graph_ntk.datasets import make_demo_dataset
    from graph_ntk.engine import GNTK, gram

    ds = make_demo_dataset(args.graphs)
    model = GNTK(num_blocks=2, num_mlp_layers=1)
    kw = dict(method=args.method, block_size=args.block_size, progress=False)
    n_chunks = -(-args.graphs // args.block_size)
    print(f"{args.graphs} demo graphs, method={args.method}, block size {args.block_size} "
          f"(about {n_chunks * (n_chunks + 1) // 2} blocks), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        def timed(name: str, **extra) -> tuple[float, np.ndarray]:
            t = time.perf_counter()
            K = gram(model, ds, cache_dir=f"{tmp}/{name}", **kw, **extra)
            return time.perf_counter() - t, K

        serial = [timed(f"serial{i}") for i in range(2)]
        print(f"one process: cold {serial[0][0]:.1f} s, warm {serial[1][0]:.1f} s")
        t = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            t_start = time.perf_counter() - t
            dask = [timed(f"dask{i}", scheduler=client) for i in range(2)]
    assert all(np.array_equal(K, serial[0][1]) for _, K in dask), "the Dask Gram differs from the serial one"
    print(f"{args.workers} Dask workers: cold {dask[0][0]:.1f} s, warm {dask[1][0]:.1f} s "
          f"(+ {t_start:.1f} s cluster start-up)")
    print(f"speed-up: cold {serial[0][0] / dask[0][0]:.2f}x, warm {serial[1][0] / dask[1][0]:.2f}x; "
          f"load average now {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
