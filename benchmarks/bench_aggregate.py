"""Sparse Aggregate kernel vs neural-tangents' ``stax.Aggregate(implementation='SPARSE')``.

Same graphs, same network (Dense -> Aggregate -> Relu -> Aggregate -> GlobalSumPool), same
float64 Gram, measured in one run. Peak memory is the largest buffer XLA allocates for the
compiled kernel (``compiled.memory_analysis()``: temporaries + outputs), which is what
grows as O(E^2) for NT and O(N·E) for graph_ntk.

    .venv/bin/python benchmarks/bench_aggregate.py [--graphs 64] [--block 8]
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import numpy as np

import graph_ntk  # noqa: F401

jax.config.update("jax_enable_x64", True)

from neural_tangents import stax  # noqa: E402

from graph_ntk import Aggregate, Graph, GraphBatch, GlobalSumPool, kernel_kwargs  # noqa: E402


def make_graphs(n_graphs: int, seed: int = 0) -> list[Graph]:
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(n_graphs):
        n = int(rng.integers(100, 301))
        degree = rng.uniform(4, 10)
        m = int(n * degree / 2)
        s, r = rng.integers(0, n, m), rng.integers(0, n, m)
        keep = s != r
        ei = np.unique(np.concatenate([np.stack([s[keep], r[keep]]), np.stack([r[keep], s[keep]])], 1), axis=1)
        graphs.append(Graph(n, ei, x=rng.normal(size=(n, 8))))
    return graphs


def network(aggregate):
    return stax.serial(stax.Dense(64), aggregate(), stax.Relu(), stax.Dense(64), aggregate(), GlobalSumPool())


def measure(kernel_fn, b1: GraphBatch, b2: GraphBatch, nt_style: bool):
    kw = kernel_kwargs(b1, b2)
    if nt_style:  # NT's layer has no node mask / weights: same graphs, padding arcs are -1
        kw = {"pattern": kw["pattern"]}
    f = jax.jit(lambda x1, x2: kernel_fn(x1, x2, "ntk", **kw))
    compiled = f.lower(b1.x, b2.x).compile()
    mem = compiled.memory_analysis()
    peak = (mem.temp_size_in_bytes + mem.output_size_in_bytes) if mem is not None else float("nan")
    compiled(b1.x, b2.x).block_until_ready()
    t = time.perf_counter()
    out = compiled(b1.x, b2.x).block_until_ready()
    return time.perf_counter() - t, peak, np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=64)
    parser.add_argument("--block", type=int, default=8, help="graphs per side of each kernel block")
    args = parser.parse_args()
    graphs = make_graphs(args.graphs)
    batch = GraphBatch.from_graphs(graphs, sparse=True)
    n_blocks = args.graphs // args.block
    print(f"{args.graphs} graphs, {min(g.num_nodes for g in graphs)}-{max(g.num_nodes for g in graphs)} nodes, "
          f"mean degree {np.mean([g.num_edges / g.num_nodes for g in graphs]):.1f}; padded to N={batch.x.shape[1]}, "
          f"E={batch.edges.shape[1]}; {n_blocks}x{n_blocks} blocks of {args.block} graphs")
    ours = network(lambda: Aggregate("sum", implementation="SPARSE"))[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NT warns that -1 arcs are padding: intended
        theirs = network(lambda: stax.Aggregate(implementation="SPARSE"))[2]
    totals = {"graph_ntk": [0.0, 0.0], "neural-tangents": [0.0, 0.0]}
    worst = 0.0
    for i in range(n_blocks):
        for j in range(n_blocks):
            sl1, sl2 = slice(i * args.block, (i + 1) * args.block), slice(j * args.block, (j + 1) * args.block)
            b1 = GraphBatch(batch.x[sl1], batch.n_nodes[sl1], edges=batch.edges[sl1])
            b2 = GraphBatch(batch.x[sl2], batch.n_nodes[sl2], edges=batch.edges[sl2])
            t_o, m_o, k_o = measure(ours, b1, b2, False)
            t_n, m_n, k_n = measure(theirs, b1, b2, True)
            worst = max(worst, float(np.max(np.abs(k_o - k_n) / np.abs(k_n))))
            totals["graph_ntk"][0] += t_o
            totals["neural-tangents"][0] += t_n
            totals["graph_ntk"][1] = max(totals["graph_ntk"][1], m_o)
            totals["neural-tangents"][1] = max(totals["neural-tangents"][1], m_n)
    (t_o, m_o), (t_n, m_n) = totals["graph_ntk"], totals["neural-tangents"]
    print(f"max relative difference of the Grams: {worst:.1e}")
    print("| implementation | kernel time (s) | peak block memory (MiB) |")
    print("|---|---|---|")
    print(f"| neural-tangents stax.Aggregate SPARSE | {t_n:.2f} | {m_n / 2**20:.0f} |")
    print(f"| graph_ntk Aggregate SPARSE | {t_o:.2f} | {m_o / 2**20:.0f} |")
    print(f"| ratio (NT / graph_ntk) | {t_n / t_o:.1f}x | {m_n / m_o:.1f}x |")


if __name__ == "__main__":
    main()
