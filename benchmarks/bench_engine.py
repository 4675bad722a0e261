"""One engine for every description: speed ratios against baselines measured in the same run.

Every case runs in a fresh process (interpreter, imports, loading and the Gram included:
what a user waits for), float64 unless noted, L=4 blocks, R=2, jumping knowledge:

1. the GNTK preset (``gram(GNTK(4, 2))``, the item engine) against *today's* colour engine
   — ``graph_ntk/kernels/gntk_colour.py`` as of commit ``476f686``, read from git history
   into a temporary module — on PROTEINS and NCI1 (target: ratio <= 1.05);
2. a hand-written GIN with ``Erf`` of the same depth (``graph_ntk.nn``) against the GNTK
   preset on PTC and PROTEINS (target <= 1.5x);
3. TU PROTEINS with its continuous node attribute against the node path (NT's
   ``kernel_fn`` on padded batches; target >= 5x faster, under 90 s);
4. ``graph-ntk gram`` on IMDB-B (float32, degree tags) against GraKeL's Weisfeiler–Lehman
   subtree kernel (h=5) on the same graphs (target: faster than WL).

    .venv/bin/python benchmarks/bench_engine.py [--cases 1 2 3 4] [--data ../shared/datasets]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
OLD_ENGINE_COMMIT = "476f686"

PRELUDE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import graph_ntk as gn
"""

GNTK = PRELUDE + """
ds = gn.load_gin(sys.argv[1], sys.argv[2])
K = gn.gram(gn.GNTK(4, 2), ds, progress=False)
print(json.dumps({"wall": time.perf_counter() - t0, "sum": float(K.sum())}))
"""

OLD = PRELUDE + """
sys.path.insert(0, sys.argv[3])
from old_gntk_colour import gntk_gram_colour
ds = gn.load_gin(sys.argv[1], sys.argv[2])
K = gntk_gram_colour(ds.graphs, num_blocks=4, num_mlp_layers=2).ntk
print(json.dumps({"wall": time.perf_counter() - t0, "sum": float(K.sum())}))
"""

GIN_ERF = PRELUDE + """
import math
import graph_ntk.nn as nn
ds = gn.load_gin(sys.argv[1], sys.argv[2])
layers = [nn.Dense(512, W_std=math.sqrt(ds.num_tags))]
for _ in range(4):
    layers += [nn.Aggregate("sum", add_self_loops=True)] + [nn.Dense(512, W_std=1.5), nn.Erf()] * 2
net = nn.serial(*layers, nn.Dense(512), nn.GlobalSumPool())
K = gn.gram(net, ds, progress=False)
print(json.dumps({"wall": time.perf_counter() - t0, "sum": float(K.sum())}))
"""

PROTEINS_ATTR = PRELUDE + """
ds = gn.load_tu(sys.argv[1], "PROTEINS")
K = gn.gram(gn.GNTK(4, 2), ds, progress=False, method=sys.argv[2], dtype="float32")
print(json.dumps({"wall": time.perf_counter() - t0, "sum": float(K.sum()), "dim": ds.graphs[0].x.shape[1]}))
"""

GRAKEL = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from grakel.kernels import VertexHistogram, WeisfeilerLehman
import graph_ntk as gn
ds = gn.load_gin(sys.argv[1], "IMDBBINARY", degree_as_tag=True)
graphs = []
for g in ds.graphs:
    edges = {(int(s), int(r)) for s, r in g.edge_index.T if s != r}
    graphs.append([edges, {i: int(t) for i, t in enumerate(g.node_labels)}])
K = WeisfeilerLehman(n_iter=5, base_graph_kernel=VertexHistogram, normalize=False).fit_transform(graphs)
print(json.dumps({"wall": time.perf_counter() - t0, "sum": float(K.sum())}))
"""


def run(code: str, *args: str) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process"] = time.perf_counter() - t
    return out


def run_cli(*args: str) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "graph_ntk.cli", *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return time.perf_counter() - t


def old_engine(folder: Path) -> Path:
    src = subprocess.run(["git", "show", f"{OLD_ENGINE_COMMIT}:graph_ntk/kernels/gntk_colour.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    (folder / "old_gntk_colour.py").write_text(src)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    gin, tu = args.data / "gin", args.data / "tu"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if 1 in args.cases:
            old_dir = old_engine(tmp)
            for name in ("PROTEINS", "NCI1"):
                old = run(OLD, gin, name, old_dir)
                new = run(GNTK, gin, name)
                rows.append((f"GNTK preset vs today's colour engine, {name}", new["process"], old["process"],
                             "<= 1.05", abs(new["sum"] - old["sum"]) / abs(old["sum"])))
        if 2 in args.cases:
            for name in ("PTC", "PROTEINS"):
                base = run(GNTK, gin, name)
                erf = run(GIN_ERF, gin, name)
                rows.append((f"GIN-Erf vs GNTK preset, {name}", erf["process"], base["process"], "<= 1.5", None))
        if 3 in args.cases:
            new = run(PROTEINS_ATTR, tu, "auto")
            nodes = run(PROTEINS_ATTR, tu, "nodes")
            rows.append(("TU PROTEINS with its attribute (float32): item engine vs node path", new["process"],
                         nodes["process"], ">= 5x faster, < 90 s", abs(new["sum"] - nodes["sum"]) / abs(nodes["sum"])))
        if 4 in args.cases:
            ours = run_cli("gram", "--dataset-dir", gin, "--name", "IMDBBINARY", "--degree-as-tag", "--blocks", "4",
                           "--mlp-layers", "2", "--dtype", "float32", "--no-progress", "--output", tmp / "K.npy")
            wl = run(GRAKEL, gin)
            rows.append(("`graph-ntk gram` IMDB-B (float32) vs GraKeL WL subtree h=5", ours, wl["process"],
                         "< 1 (faster)", None))
    print("| case | graph_ntk (s) | baseline (s) | ratio | target | sum rel. diff |")
    print("|---|---|---|---|---|---|")
    for case, ours, base, target, diff in rows:
        d = "" if diff is None else f"{diff:.1e}"
        print(f"| {case} | {ours:.2f} | {base:.2f} | {ours / base:.3f} | {target} | {d} |")


if __name__ == "__main__":
    main()
