"""Structure-only coarsening: the pooled adjacency, and the hierarchical GNTK Gram on PROTEINS.

Baselines measured in the same run:

* ``pool_adjacency`` (:math:`A' = S^\\top A S`, two matmuls) against the three-operand
  ``np.einsum`` without a contraction path that it replaced, on the first ``--graphs``
  PROTEINS graphs (the graclus assignment of each);
* the hierarchical GNTK Gram (``hierarchical_gntk(method, 2, 1, 1)``) on all PROTEINS graphs
  against the plain GNTK of the same depth (``gntk(2, 1)``), both on the item engine.

Usage::

    .venv/bin/python benchmarks/bench_pool.py --graphs 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from graph_ntk import gntk, hierarchical_gntk
from graph_ntk.data.coarsening import graclus, pool_adjacency
from graph_ntk.datasets import load_gin
from graph_ntk.engine import gram

HERE = Path(__file__).resolve().parent


def dense(g) -> np.ndarray:
    a = np.zeros((g.num_nodes, g.num_nodes))
    np.add.at(a, (g.edge_index[0], g.edge_index[1]), 1.0)
    return a


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "gin")
    p.add_argument("--graphs", type=int, default=100, help="PROTEINS graphs for the adjacency timing")
    p.add_argument("--method", default="graclus", choices=["graclus", "ndp", "kmis"])
    args = p.parse_args()
    ds = load_gin(args.data, "PROTEINS")
    pairs = [(graclus(a), a) for a in (dense(g) for g in ds.graphs[:args.graphs])]
    t = time.perf_counter()
    ours = [pool_adjacency(s, a) for s, a in pairs]
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    base = [np.einsum("ik,ij,jl->kl", s, a, s) for s, a in pairs]
    t_base = time.perf_counter() - t
    err = max(float(np.abs(x - y).max()) for x, y in zip(ours, base))
    print(f"| pool_adjacency, {args.graphs} PROTEINS graphs | {t_base:.2f} | {t_ours:.3f} | "
          f"{t_base / t_ours:.0f}x | max diff {err:.1e} |")
    t = time.perf_counter()
    gram(gntk(2, 1, input_dim=ds.num_tags), ds, progress=False)
    t_plain = time.perf_counter() - t
    t = time.perf_counter()
    gram(hierarchical_gntk(args.method, 2, 1, 1, input_dim=ds.num_tags), ds, progress=False)
    t_hier = time.perf_counter() - t
    print(f"| Gram, all {len(ds)} PROTEINS graphs: gntk(2, 1) vs hierarchical {args.method} 2x1 | {t_plain:.1f} | "
          f"{t_hier:.1f} | {t_hier / t_plain:.1f}x slower | |")


if __name__ == "__main__":
    main()
