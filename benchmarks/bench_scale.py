"""Scale: dense social graphs, deep networks and the whole depth grid in one pass (float32).

Every case is one fresh process (interpreter, imports, loading, Gram: what a user waits
for), stopped at ``--limit`` seconds (reported as ``> limit``), with its peak resident
memory. GIN-format data; social graphs with degree tags, as the GNTK paper.

1. COLLAB ``GNTK(1, 2)`` and ``GNTK(3, 2)``, REDDIT-BINARY ``GNTK(4, 2)``, NCI1
   ``GNTK(13, 2)`` (targets: 5 min, 1 h, 5 min, 5 min);
2. the grid in one pass: ``gram(GNTK(L), all_depths=True)`` (every depth 1..L, with and
   without jumping knowledge) against ``gram(GNTK(L))`` alone, same run (target <= 1.2x).

    .venv/bin/python benchmarks/bench_scale.py [--cases collab1 reddit nci13 grid] [--limit 900]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"

SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import graph_ntk as gn
root, name, blocks, grid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "grid"
ds = gn.load_gin(root, name, degree_as_tag=name in ("COLLAB", "REDDITBINARY", "IMDBBINARY", "IMDBMULTI"))
from graph_ntk.engine.memory import default_memory_limit
limit = default_memory_limit()  # what gram() uses when memory_limit is not given
K = gn.gram(gn.GNTK(blocks, 2), ds, dtype="float32", progress=False, all_depths=grid)
print(json.dumps({"wall": time.perf_counter() - t0, "graphs": len(ds), "limit": limit}))
"""

CASES = {
    "collab1": ("gin", "COLLAB", 1, 300),
    "collab3": ("gin", "COLLAB", 3, 3600),
    "reddit": ("gin_extra", "REDDITBINARY", 4, 300),
    "nci13": ("gin", "NCI1", 13, 300),
}


def run(folder: Path, name: str, blocks: int, mode: str, limit: float) -> tuple[str, float | None, float | None]:
    """Shown time, seconds (None: stopped or failed) and the run's memory_limit in GB."""
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), name, str(blocks), mode],
                              capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return f"> {limit:.0f}", None, None
    if proc.returncode:
        return "failed: " + proc.stderr.strip().splitlines()[-1][:200], None, None
    wall = time.perf_counter() - t
    return f"{wall:.1f}", wall, json.loads(proc.stdout.strip().splitlines()[-1])["limit"] / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["collab1", "reddit", "nci13", "grid"])
    parser.add_argument("--limit", type=float, default=900.0)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    print("| case | whole process (s) | target (s) | peak RSS (GB) | memory_limit (GB) |")
    print("|---|---|---|---|---|")
    for case in args.cases:
        if case == "grid":
            continue
        folder, name, blocks, target = CASES[case]
        shown, _, mem = run(args.data / folder, name, blocks, "single", args.limit)
        # the largest child so far: each case's own peak once cases run largest last
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        limit = "-" if mem is None else f"{mem:.1f}"
        print(f"| {name} GNTK({blocks}, 2) float32 | {shown} | {target} | <= {rss:.1f} | {limit} |", flush=True)
    if "grid" in args.cases:
        for name, blocks in (("PTC", 13), ("PROTEINS", 3)):
            _, single, _ = run(args.data / "gin", name, blocks, "single", args.limit)
            _, grid, _ = run(args.data / "gin", name, blocks, "grid", args.limit)
            ratio = "-" if single is None or grid is None else f"{grid / single:.2f}x"
            print(f"| grid in one pass, {name} L=1..{blocks} (x2 JK): all_depths vs L={blocks} alone | "
                  f"{grid or float('nan'):.1f} vs {single or float('nan'):.1f} | ratio <= 1.2 | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
