"""The tiled executor on JAX devices against NumPy: NCI1 GNTK(13, 2) and COLLAB GNTK(3, 2), float32.

Each (dataset, backend) runs in a fresh process, the whole of what a user waits for
(imports, loading, compilation, Gram), stopped at ``--limit`` seconds (``> limit``); the
JAX backend uses every local device (``jax.local_devices()``) in parallel. The JAX run's
Gram is checked against the NumPy run's when both finish (max-normalised difference).
Goal (issue #9): COLLAB GNTK(3, 2) under 3 minutes on one H200.

    .venv/bin/python benchmarks/bench_gpu.py                       # both datasets, both backends
    .venv/bin/python benchmarks/bench_gpu.py --datasets MUTAG --blocks 2 --limit 120   # smoke test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "gin"
DEPTHS = {"NCI1": 13, "COLLAB": 3}
SOCIAL = ("COLLAB", "REDDITBINARY", "IMDBBINARY", "IMDBMULTI")

SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import graph_ntk as gn
root, name, blocks, backend, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ds = gn.load_gin(root, name, degree_as_tag=name in {social!r})
t1 = time.perf_counter()
K = gn.gram(gn.GNTK(blocks, 2), ds, dtype="float32", progress=False, backend=backend)
np.save(out, K)
devices = "cpu"
if backend == "jax":
    import jax
    devices = ",".join(sorted({{d.platform for d in jax.local_devices()}})) + f" x{{len(jax.local_devices())}}"
print(json.dumps({{"wall": time.perf_counter() - t0, "gram": time.perf_counter() - t1, "graphs": len(ds),
                  "devices": devices}}))
""".format(social=SOCIAL)


def run(name: str, blocks: int, backend: str, limit: float, out: Path) -> dict:
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(DATA), name, str(blocks), backend, str(out)],
                              capture_output=True, text=True, timeout=limit, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"wall": None}
    if proc.returncode != 0:
        return {"wall": None, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DEPTHS), help="GIN-format dataset names")
    parser.add_argument("--blocks", type=int, default=None, help="GNTK depth (default: NCI1 13, COLLAB 3, else 2)")
    parser.add_argument("--backends", nargs="+", default=["jax", "numpy"], choices=("jax", "numpy"))
    parser.add_argument("--limit", type=float, default=3600, help="seconds per run")
    args = parser.parse_args()
    print(f"{'case':<22} {'backend':<8} {'devices':<12} {'wall s':>9} {'gram s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            blocks = args.blocks or DEPTHS.get(name, 2)
            grams = {}
            for backend in args.backends:
                out = Path(tmp) / f"{name}_{backend}.npy"
                res = run(name, blocks, backend, args.limit, out)
                if res["wall"] is not None:
                    grams[backend] = np.load(out)
                wall = f"> {args.limit:.0f}" if res["wall"] is None else f"{res['wall']:.1f}"
                gram = "" if res["wall"] is None else f"{res['gram']:.1f}"
                print(f"{f'{name} GNTK({blocks}, 2)':<22} {backend:<8} {res.get('devices', ''):<12} {wall:>9} "
                      f"{gram:>9}", *res.get("error", []), flush=True)
            if len(grams) == 2:
                a, b = grams["jax"], grams["numpy"]
                print(f"  max-normalised |jax - numpy| = {np.abs(a - b).max() / np.abs(b).max():.2e}")


if __name__ == "__main__":
    main()
