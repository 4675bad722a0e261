"""Benchmark the WL-colour-compressed exact GNTK Gram (graph_ntk.kernels.gntk_gram_colour).

For every dataset and dtype a fresh Python process loads the GIN-format file, computes the
full Gram (NTK and NNGP; L=4 blocks, R=2 ReLU layers, jumping knowledge, 'mean'
aggregation, sum readout) and reports: whole-process wall time (what `time python ...`
would show, including interpreter start and package import), data loading, the Gram call,
its CPU-time split over phases (WL colouring, setup incl. variances, gathering stored
rows, aggregation products, elementwise ReLU-kernel steps, storing tiles, readout),
and peak resident memory. A same-run baseline times the node-level per-pair computation
(the reference algorithm: every graph pair's node x node matrices, with per-graph
variances cached) on a random sample of pairs and extrapolates to all pairs. Finally the
machine's throughput for the same elementwise ReLU-kernel arithmetic on a large array is
measured, to show how close the Gram's ReLU phase runs to it.

Usage (from the repository root):
    .venv/bin/python benchmarks/bench_gntk_colour.py                # the five datasets
    .venv/bin/python benchmarks/bench_gntk_colour.py --collab       # also COLLAB
    .venv/bin/python benchmarks/bench_gntk_colour.py --datasets MUTAG PTC --dtypes float64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIN = ROOT.parent / "shared" / "datasets" / "gin"
DATASETS = ["MUTAG", "PTC", "IMDBBINARY", "PROTEINS", "NCI1"]
OPTIONS = dict(num_blocks=4, num_mlp_layers=2, aggregation="mean", jumping_knowledge=True, readout="sum")


def worker(name: str, dtype: str) -> dict:
    """Runs in a fresh process: import, load, Gram; returns the measurements."""
    t0 = time.perf_counter()
    import resource

    import numpy as np

    from graph_ntk.datasets import load_gin
    from graph_ntk.kernels import gntk_gram_colour

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    graphs = load_gin(GIN, name).graphs
    t_load = time.perf_counter() - t1
    t2 = time.perf_counter()
    res = gntk_gram_colour(graphs, dtype=np.dtype(dtype), **OPTIONS)
    t_gram = time.perf_counter() - t2
    return {
        "dataset": name,
        "dtype": dtype,
        "graphs": len(graphs),
        "nodes": int(sum(g.num_nodes for g in graphs)),
        "colours": list(res.num_colours),
        "import_s": t_import,
        "load_s": t_load,
        "gram_s": t_gram,
        "split_cpu_s": res.timings,
        "maxrss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "finite": bool(np.isfinite(res.ntk).all() and np.isfinite(res.nngp).all()),
    }


def run_worker(name: str, dtype: str) -> dict:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", name, dtype], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"dataset": name, "dtype": dtype, "error": proc.stderr.strip().splitlines()[-1], "process_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def baseline(name: str, pairs: int, seed: int = 0) -> dict:
    """Node-level per-pair GNTK (mean aggregation, JK) on sampled pairs, extrapolated."""
    import numpy as np

    from graph_ntk.datasets import load_gin

    graphs = load_gin(GIN, name).graphs
    tags = int(max(g.node_labels.max() for g in graphs)) + 1
    L, R = OPTIONS["num_blocks"], OPTIONS["num_mlp_layers"]

    def prepare(g):
        a = np.zeros((g.num_nodes, g.num_nodes))
        a[g.edge_index[0], g.edge_index[1]] = 1.0
        a = np.maximum(a, a.T)
        np.fill_diagonal(a, 0.0)
        a += np.eye(g.num_nodes)
        p = a / a.sum(axis=1, keepdims=True)
        x = np.eye(tags)[g.node_labels]
        return p, x

    def recursion(pa, xa, pb, xb, da=None, db=None):
        k = xa @ xb.T
        theta = k.copy()
        jump = k.copy()
        diags = []
        for block in range(L):
            k, theta = pa @ k @ pb.T, pa @ theta @ pb.T
            for layer in range(R):
                if da is None:
                    va = vb = np.sqrt(np.diag(k))
                    diags.append(va)
                else:
                    va, vb = da[block * R + layer], db[block * R + layer]
                lam = np.clip(k / va[:, None] / vb[None, :], -1.0, 1.0)
                angle = np.arccos(lam)
                k_new = va[:, None] * vb[None, :] * (np.sqrt(1 - lam * lam) + (np.pi - angle) * lam) / np.pi
                theta = theta * (np.pi - angle) / np.pi + k_new
                k = k_new
            jump += theta
        return 2.0 * jump.sum(), diags

    prep = [prepare(g) for g in graphs]
    t0 = time.perf_counter()
    diags = [recursion(p, x, p, x)[1] for p, x in prep]
    t_diag = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    n = len(graphs)
    sample = rng.integers(0, n, size=(pairs, 2))
    t1 = time.perf_counter()
    for i, j in sample:
        recursion(prep[i][0], prep[i][1], prep[j][0], prep[j][1], diags[i], diags[j])
    per_pair = (time.perf_counter() - t1) / pairs
    total_pairs = n * (n + 1) // 2
    return {
        "dataset": name,
        "pairs_sampled": pairs,
        "per_pair_ms": per_pair * 1e3,
        "extrapolated_s": t_diag + per_pair * total_pairs,
    }


def elementwise_throughput(entries: int = 1 << 23) -> dict:
    """ns per (entry, ReLU step) of the Gram's own elementwise kernel on a large array."""
    import numpy as np

    from graph_ntk.kernels.gntk_colour import _relu_steps

    out = {}
    rng = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        width = 504
        rows = entries // width
        data = [rng.uniform(0.0, 1.0, (rows, 2, width)).astype(dtype) for _ in range(2)]
        steps = 2
        t, c = time.perf_counter(), time.thread_time()
        _relu_steps(data[0], steps)
        single = (time.perf_counter() - t) / (rows * width * steps) * 1e9
        single_cpu = (time.thread_time() - c) / (rows * width * steps) * 1e9
        threads = [threading.Thread(target=_relu_steps, args=(d, steps)) for d in data]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        both = (time.perf_counter() - t) / (2 * rows * width * steps) * 1e9
        x = rng.uniform(0.0, 1.0, entries).astype(dtype)
        t = time.perf_counter()
        np.arccos(x, out=x)
        arccos = (time.perf_counter() - t) / entries * 1e9
        y = np.empty_like(x)
        t = time.perf_counter()
        np.copyto(y, x)
        copy = (time.perf_counter() - t) / entries * 1e9
        out[dtype] = {
            "relu_step_ns_1thread_wall": single,
            "relu_step_ns_1thread_cpu": single_cpu,
            "relu_step_ns_2threads_wall": both,
            "arccos_ns": arccos,
            "copy_ns": copy,
        }
    return out


def panel_entries(colours: list[int], block: int = 504) -> int:
    """Entries the ReLU phase touches: lower block-triangle incl. diagonal tiles, depths 1..L."""
    total = 0
    for c in colours[1:]:
        starts = list(range(0, c, block))
        total += sum((c - s) * min(block, c - s) for s in starts)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--collab", action="store_true", help="also run COLLAB (expected to exceed memory)")
    parser.add_argument(
        "--baseline-pairs", type=int, default=200, help="sampled pairs for the node-level baseline (0: skip)"
    )
    parser.add_argument("--json", type=Path, help="also write all measurements here")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return

    names = args.datasets + (["COLLAB"] if args.collab else [])
    print(f"# {os.cpu_count()} CPUs, load average at start {os.getloadavg()}")
    results = []
    header = (
        f"{'dataset':<11}{'dtype':<8}{'process s':>10}{'import s':>9}{'load s':>8}{'gram s':>8}{'peak GiB':>9}"
        "  split (CPU s)"
    )
    print(header)
    for name in names:
        for dtype in args.dtypes:
            r = run_worker(name, dtype)
            results.append(r)
            if "error" in r:
                print(f"{name:<11}{dtype:<8}{r['process_s']:>10.2f}  FAILED: {r['error']}")
                continue
            split = " ".join(f"{k}={v:.2f}" for k, v in r["split_cpu_s"].items() if k != "total")
            print(
                f"{name:<11}{dtype:<8}{r['process_s']:>10.2f}{r['import_s']:>9.2f}{r['load_s']:>8.2f}"
                f"{r['gram_s']:>8.2f}{r['maxrss_gib']:>9.2f}  {split}  colours={r['colours']}",
                flush=True,
            )
    print(f"# load average at end {os.getloadavg()}")

    thr = elementwise_throughput()
    print("\nElementwise ReLU-kernel arithmetic on a large array (ns per entry and step; 2 threads:")
    print("wall time per entry with both threads busy):")
    for dtype, v in thr.items():
        print(f"  {dtype}: " + ", ".join(f"{k}={x:.2f}" for k, x in v.items()))
    print("ReLU phase of the Gram, ns per entry and step (CPU time of both threads):")
    for r in results:
        if "error" not in r:
            steps = panel_entries(r["colours"]) * OPTIONS["num_mlp_layers"]
            print(f"  {r['dataset']:<11}{r['dtype']:<8}{r['split_cpu_s']['relu'] / steps * 1e9:.2f}")

    base = []
    if args.baseline_pairs:
        print(f"\nBaseline: node-level per-pair computation, {args.baseline_pairs} sampled pairs, extrapolated:")
        for name in names:
            if name == "COLLAB":
                continue
            b = baseline(name, args.baseline_pairs)
            base.append(b)
            ours = [r["gram_s"] for r in results if r["dataset"] == name and r["dtype"] == "float64" and "gram_s" in r]
            ratio = f", {b['extrapolated_s'] / ours[0]:.0f}x the colour Gram (float64)" if ours else ""
            print(f"  {name:<11}{b['per_pair_ms']:.2f} ms/pair -> {b['extrapolated_s']:.0f} s for all pairs{ratio}")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "elementwise": thr, "baseline": base}, indent=1))


if __name__ == "__main__":
    main()
