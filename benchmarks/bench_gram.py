"""Full GNTK Gram of TU datasets: graph_ntk's colour engine vs the naive neural-tangents route.

Setting (the GNTK paper's): L=4 blocks, R=2 MLP layers, jumping knowledge, mean
neighbour scaling, sum readout, GIN-format data (IMDB-B with degree tags).

(a) engine: ``graph_ntk.kernels.program_gram`` of the ``graph_ntk.gntk`` program (the item
    engine ``gram()`` uses) in a fresh process per run; the wall
    time is the whole process (interpreter start, imports, loading, Gram), peak memory its
    max RSS.
(b) naive NT: the same network as one stax description (``graph_ntk.gntk``), every graph
    padded to the dataset's largest, ``nt.batch(kernel_fn)`` over the whole Gram. On the
    larger sets only a subset of graphs is timed and the time scaled by the pair count
    (the work per pair is the same at a fixed padded size); the table says so.

    .venv/bin/python benchmarks/bench_gram.py [--datasets MUTAG PTC PROTEINS IMDBBINARY] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "gin"
SETTING = dict(num_blocks=4, num_mlp_layers=2, aggregation="mean", jumping_knowledge=True, readout="sum")
# Graphs timed on the naive route (None = all) and its nt.batch size.
NAIVE_SUBSET = {"MUTAG": None, "PTC": None, "PROTEINS": 24, "IMDBBINARY": 60, "NCI1": 60}
NAIVE_BATCH = {"MUTAG": 47, "PTC": 43, "PROTEINS": 4, "IMDBBINARY": 20, "NCI1": 20}

ENGINE_SCRIPT = """
import json, sys, time
import numpy as np
from graph_ntk.datasets import load_gin
from graph_ntk.kernels.program_gram import program_gram
from graph_ntk.models.gntk import gntk
t0 = time.perf_counter()
ds = load_gin(sys.argv[1], sys.argv[2], degree_as_tag=sys.argv[2].startswith("IMDB"))
t1 = time.perf_counter()
net = gntk(**json.loads(sys.argv[4]), input_dim=ds.num_tags)
res = program_gram(net.program, ds.graphs, num_tags=ds.num_tags, dtype=np.dtype(sys.argv[3]))
t2 = time.perf_counter()
np.save(sys.argv[5], res.ntk)
print(json.dumps({"load": t1 - t0, "gram": t2 - t1, "colours": list(res.num_items),
                  "timings": res.timings}))
"""


def run_engine(data: Path, name: str, dtype: str, out: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", ENGINE_SCRIPT, str(data), name, dtype, json.dumps(SETTING), str(out)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"engine run for {name} ({dtype}) failed:\n{proc.stderr}")
    wall = time.perf_counter() - t
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    # RUSAGE_CHILDREN's maxrss is the largest child so far: exact for the first and
    # growing runs, an upper bound otherwise (runs go from small to large datasets).
    info.update(wall=wall, maxrss_mb=max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)
    return info


def run_naive(data: Path, name: str, dtype: str) -> dict:
    import warnings

    import jax

    import graph_ntk as gn
    from graph_ntk.datasets import load_gin

    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt

    ds = load_gin(data, name, degree_as_tag=name.startswith("IMDB"))
    n_all = len(ds.graphs)
    subset = NAIVE_SUBSET.get(name)
    graphs = ds.graphs if subset is None else ds.graphs[:: max(1, n_all // subset)][:subset]
    n_max = max(g.num_nodes for g in ds.graphs)  # pad to the dataset's largest graph
    batch = gn.GraphBatch.from_graphs(graphs, num_tags=ds.num_tags, n_max=n_max)
    x = batch.x.astype(dtype)
    pattern = batch.adjacency.astype(dtype)
    _, _, kernel_fn = gn.gntk(**SETTING, input_dim=ds.num_tags)
    bs = NAIVE_BATCH.get(name, 8)
    while len(graphs) % bs:
        bs -= 1
    batched = nt.batch(kernel_fn, batch_size=bs)
    kw = {"pattern": (pattern, pattern), "node_mask": (batch.node_mask, batch.node_mask)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        gram = np.asarray(batched(x, None, "ntk", **kw))
        elapsed = time.perf_counter() - t
    scale = (n_all / len(graphs)) ** 2
    return {"graphs_timed": len(graphs), "measured": elapsed, "full_estimate": elapsed * scale,
            "scaled": subset is not None, "gram": gram, "index": [ds.graphs.index(g) for g in graphs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["MUTAG", "PTC", "PROTEINS", "IMDBBINARY"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("/tmp/graph_ntk_bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets:
        row = {"name": name}
        for dtype in ("float64", "float32"):
            row[dtype] = run_engine(args.data, name, dtype, args.out / f"{name}_{dtype}.npy")
        g64 = np.load(args.out / f"{name}_float64.npy")
        g32 = np.load(args.out / f"{name}_float32.npy")
        row["f32_rel"] = float(np.max(np.abs(g32 - g64) / np.abs(g64)))
        fixture = ROOT.parent / "shared" / "fixtures" / "gntk_MUTAG_mean_L4_R2_jk.npy"
        if name == "MUTAG" and fixture.exists():
            row["fixture_rel"] = float(np.max(np.abs(g64 - np.load(fixture)) / np.abs(np.load(fixture))))
        if not args.skip_naive:
            naive = run_naive(args.data, name, "float64")
            idx = np.array(naive["index"])
            row["naive_rel"] = float(np.max(np.abs(naive["gram"] - g64[np.ix_(idx, idx)]) / np.abs(g64[np.ix_(idx, idx)])))
            row["naive"] = {k: v for k, v in naive.items() if k not in ("gram", "index")}
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)

    print("\n| dataset | colours at depth 4 | engine f64 wall (s) | engine f32 wall (s) | peak RSS f64 (MB) "
          "| naive NT f64 (s) | speed-up vs naive | max rel. diff naive / fixture | f32 vs f64 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e64, e32 = r["float64"], r["float32"]
        naive = r.get("naive")
        naive_s = "-" if naive is None else (f"{naive['full_estimate']:.0f} (est. from {naive['graphs_timed']} graphs)"
                                             if naive["scaled"] else f"{naive['measured']:.1f}")
        speed = "-" if naive is None else f"{naive['full_estimate'] / e64['wall']:.0f}x"
        diffs = f"{r.get('naive_rel', float('nan')):.1e} / {r.get('fixture_rel', float('nan')):.1e}"
        print(f"| {r['name']} | {e64['colours'][-1]} | {e64['wall']:.2f} | {e32['wall']:.2f} | {e64['maxrss_mb']:.0f} "
              f"| {naive_s} | {speed} | {diffs} | {r['f32_rel']:.1e} |")
    print("\nEngine time split (float64, seconds; panel phases summed over threads):")
    for r in rows:
        t = r["float64"]["timings"]
        print(f"- {r['name']}: load {r['float64']['load']:.2f}, gram {r['float64']['gram']:.2f}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))


if __name__ == "__main__":
    main()
