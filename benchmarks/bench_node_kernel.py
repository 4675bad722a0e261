"""Time and peak memory of the node-level GCN kernels on synthetic SBM graphs.

* exact path (:func:`graph_ntk.kernels.node_kernel.exact_node_kernel`, full N x N NNGP
  and NTK, float32) at 5k and 20k nodes — 50k would need 10 GB per N x N float32 array
  and about three of them at once (~30 GB), more than this 24 GB machine has, so it is
  skipped;
* low-rank Nyström path (:func:`~graph_ntk.kernels.lowrank.lowrank_node_kernel`,
  m = 500 random landmarks, NNGP + NTK factors, float32) at 5k … 200k nodes;
* the low-rank kernels' relative Frobenius error against the exact ones at 5k.

Graphs: a 10-block stochastic block model with average degree ≈ 5 (80 % of edges inside
blocks), drawn with numpy (networkx's generator is O(N²)), and 500 Gaussian features with
a block-dependent mean. The network is the 2-layer GCN preset. Each measurement runs in a
fresh subprocess, ``REPEATS`` times per size (once for the one-minute exact 20k run);
the fastest time is reported, as other jobs share the machine. Peak memory is the growth
of the process's peak RSS (``ru_maxrss``) over the RSS just before the kernel call, so it
covers numpy, scipy and BLAS buffers alike (largest over the repeats).

Run from the repository root (3–7 minutes on 2 shared cores)::

    .venv/bin/python benchmarks/bench_node_kernel.py

It writes ``benchmarks/RESULTS_node.md`` and ``benchmarks/node_kernel_scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NUM_FEATURES = 500
NUM_BLOCKS = 10
AVG_DEGREE = 5.0
LANDMARKS = 500
EXACT_SIZES = (5_000, 20_000)
LOWRANK_SIZES = (5_000, 20_000, 50_000, 100_000, 200_000)
REPEATS = 2  # fresh processes per size; the fastest is reported (the machine is shared)


def sbm(n: int, seed: int = 0, intra: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """``(x, edge_index)`` of an SBM with ``NUM_BLOCKS`` equal blocks and mean degree ≈ ``AVG_DEGREE``.

    Undirected edges are drawn as random pairs (a fraction ``intra`` inside a block), then
    self loops and repeats are dropped, so the mean degree is a little under the target.
    """
    rng = np.random.default_rng(seed)
    size = n // NUM_BLOCKS
    block = np.minimum(np.arange(n) // size, NUM_BLOCKS - 1)
    m = int(n * AVG_DEGREE / 2)
    m_in = int(intra * m)
    u_in = rng.integers(n, size=m_in)
    v_in = np.minimum(block[u_in] * size + rng.integers(size, size=m_in), n - 1)
    u_out, v_out = rng.integers(n, size=m - m_in), rng.integers(n, size=m - m_in)
    u, v = np.concatenate([u_in, u_out]), np.concatenate([v_in, v_out])
    keep = u != v
    lo, hi = np.minimum(u[keep], v[keep]), np.maximum(u[keep], v[keep])
    key = np.unique(lo.astype(np.int64) * n + hi)
    lo, hi = key // n, key % n
    edge_index = np.stack([np.concatenate([lo, hi]), np.concatenate([hi, lo])])
    means = rng.normal(scale=0.5, size=(NUM_BLOCKS, NUM_FEATURES)).astype(np.float32)
    x = means[block] + rng.standard_normal((n, NUM_FEATURES), dtype=np.float32)
    return x, edge_index


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def measure(kind: str, n: int) -> dict:
    """One measurement in this process: time and peak-RSS growth of one kernel computation."""
    from graph_ntk.kernels.lowrank import lowrank_node_kernel
    from graph_ntk.kernels.node_kernel import exact_node_kernel
    from graph_ntk.models.node import gcn

    x, edge_index = sbm(n)
    net = gcn(2)
    before = _rss_kb()
    t0 = time.perf_counter()
    if kind == "exact":
        out = exact_node_kernel(net, x, edge_index, ("nngp", "ntk"), dtype=np.float32)
        rank = None
    else:
        out = lowrank_node_kernel(net, x, edge_index, ("nngp", "ntk"), num_landmarks=LANDMARKS, seed=0,
                                  dtype=np.float32)
        rank = [int(out.nngp.shape[1]), int(out.ntk.shape[1])]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"kind": kind, "n": n, "arcs": int(edge_index.shape[1]), "seconds": seconds,
            "peak_extra_mb": max(peak - before, 0) / 1024, "baseline_mb": before / 1024, "rank": rank}


def lowrank_errors(n: int = 5_000) -> list[dict]:
    """Relative Frobenius error of low-rank NNGP / NTK vs exact (float64) at ``n`` nodes."""
    from graph_ntk.kernels.lowrank import lowrank_node_kernel
    from graph_ntk.kernels.node_kernel import exact_node_kernel
    from graph_ntk.models.node import gcn

    x, edge_index = sbm(n)
    net = gcn(2)
    exact = exact_node_kernel(net, x, edge_index, ("nngp", "ntk"))
    norms = [np.linalg.norm(k) for k in exact]
    rows = []
    for method, m, seeds in (("random", 250, 3), ("random", 500, 3), ("random", 1000, 3), ("kmeans++", 500, 3)):
        errs = []
        for seed in range(seeds):
            low = lowrank_node_kernel(net, x, edge_index, ("nngp", "ntk"), num_landmarks=m, landmark_method=method,
                                      seed=seed)
            errs.append([np.linalg.norm(low.block(get=g) - k) / nk for g, k, nk in zip(("nngp", "ntk"), exact, norms)])
        errs = np.array(errs)
        rows.append({"method": method, "m": m, "seeds": seeds, "nngp": errs[:, 0].tolist(), "ntk": errs[:, 1].tolist()})
    return rows


def _child(args: list[str]) -> dict:
    # One BLAS thread: on this shared 2-core machine OpenBLAS's worker threads contend with
    # other jobs, which made low-rank times erratic (5k nodes: 0.2 s with one thread, 0.6–4.6 s
    # with two); scipy's sparse products, the exact path's main cost, are single-threaded anyway.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for kind, label, marker in (("exact", "exact (scipy, float32)", "o"),
                                ("lowrank", f"Nyström low rank, m={LANDMARKS}", "s")):
        pts = sorted((r["n"], r["seconds"]) for r in results if r["kind"] == kind)
        ax.loglog(*zip(*pts), marker=marker, label=label)
    ref = np.array([5e3, 2e5])
    ax.loglog(ref, 2.0 * (ref / 2e4) ** 2, "k:", lw=1, label="∝ N² (reference)")
    ax.loglog(ref, 2.0 * (ref / 2e4), "k--", lw=1, label="∝ N (reference)")
    ax.set_xlabel("nodes N (SBM, mean degree ≈ 5, 500 features)")
    ax.set_ylabel("seconds (2-layer GCN NNGP + NTK)")
    ax.set_title("Node-kernel scaling")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report(results: list[dict], errors: list[dict], total: float) -> str:
    lines = [
        "# Node-level kernel benchmark (2-layer GCN, NNGP + NTK)",
        "",
        "Command: `.venv/bin/python benchmarks/bench_node_kernel.py` "
        f"(Python {platform.python_version()}, 2 CPU cores shared with other jobs, so times are noisy; "
        f"one BLAS thread, see `_child`; total benchmark wall time {total:.0f} s).",
        "",
        f"Graphs: {NUM_BLOCKS}-block SBM, mean degree ≈ {AVG_DEGREE:g} (80 % intra-block), {NUM_FEATURES} dense "
        "Gaussian features. Network: `graph_ntk.models.node.gcn(2)`. Both kernels (NNGP and NTK) are computed "
        "for all N nodes, in float32. Peak memory = growth of the process's peak RSS over the RSS just before "
        "the call (fresh process per row).",
        "",
        "| method | nodes | arcs | time (s), best of runs | runs | peak extra memory (MB) | factor ranks (NNGP, NTK) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rank = "—" if r["rank"] is None else f"{r['rank'][0]}, {r['rank'][1]}"
        name = "exact" if r["kind"] == "exact" else f"low rank, m={LANDMARKS}"
        lines.append(f"| {name} | {r['n']:,} | {r['arcs']:,} | {r['seconds']:.1f} | {r['runs']} "
                     f"| {r['peak_extra_mb']:,.0f} | {rank} |")
    big = max((r for r in results if r["kind"] == "exact"), key=lambda r: r["n"])
    matrices = big["peak_extra_mb"] * 2**20 / (4 * big["n"] ** 2)
    lines += [
        "",
        f"The exact path's peak is about {matrices:.1f} N × N float32 arrays (at {big['n']:,} nodes): the NNGP, "
        "the NTK and one aggregation buffer (C^T K is formed, K released, the buffer transposed in place, "
        "then multiplied by C^T again). Exact at 50,000 nodes is skipped: one 50k × 50k float32 array is "
        "10 GB, so the run would need about 30 GB, more than this 24 GB machine has.",
        "",
        "## Low-rank error at 5,000 nodes",
        "",
        "Relative Frobenius error ‖K_lowrank − K_exact‖_F / ‖K_exact‖_F (exact in float64), over "
        "landmark seeds (mean, min–max):",
        "",
        "| landmarks | m | NNGP error | NTK error |",
        "|---|---|---|---|",
    ]
    for e in errors:
        def fmt(v):
            return f"{np.mean(v):.2e} ({min(v):.2e}–{max(v):.2e})"
        lines.append(f"| {e['method']} | {e['m']} | {fmt(e['nngp'])} | {fmt(e['ntk'])} |")
    lines += ["", "![time vs nodes](node_kernel_scaling.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--errors", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:  # child process: one measurement, JSON on the last stdout line
        print(json.dumps(measure(args.single[0], int(args.single[1]))))
        return
    if args.errors:
        print(json.dumps(lowrank_errors()))
        return
    t0 = time.perf_counter()
    results = []
    for kind, sizes in (("exact", EXACT_SIZES), ("lowrank", LOWRANK_SIZES)):
        for n in sizes:
            repeats = 1 if kind == "exact" and n >= 20_000 else REPEATS
            runs = [_child(["--single", kind, str(n)]) for _ in range(repeats)]
            best = min(runs, key=lambda r: r["seconds"])
            results.append({**best, "runs": repeats, "peak_extra_mb": max(r["peak_extra_mb"] for r in runs)})
            print(results[-1], [round(r["seconds"], 2) for r in runs], flush=True)
    errors = _child(["--errors"])
    print(errors, flush=True)
    plot(results, HERE / "node_kernel_scaling.png")
    (HERE / "RESULTS_node.md").write_text(report(results, errors, time.perf_counter() - t0))
    print(f"wrote {HERE / 'RESULTS_node.md'}")


if __name__ == "__main__":
    main()
