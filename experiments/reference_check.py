"""Is graph_ntk's GNTK the GNTK authors' kernel on the datasets and settings of the TU table?

The MUTAG fixtures (``../shared/fixtures``) pin the kernel at one setting (L=4, R=2). This
experiment checks the settings ``experiments/tu_gntk.py`` searches on the other datasets --
NCI1 and PTC at depth 9-13, degree tags on IMDB-B, both scalings, JK on and off, R=1..3 --
by running the authors' reference code (``../shared/reference/gntk_reference/gram.py``, run
as a program, never imported or copied) on the first ``--graphs`` graphs of each dataset's
GIN file and comparing its Gram entry by entry with graph_ntk's Gram of the same graphs
(float64). Writes ``experiments/results/reference_check.md``.

    nice -n 19 .venv/bin/python experiments/reference_check.py [--graphs 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
# (GIN folder, blocks L, MLP layers R, scaling, jumping knowledge): settings of the tu_gntk grid.
CASES = [
    ("NCI1", 13, 2, "mean", True),
    ("NCI1", 9, 3, "sum", False),
    ("PTC", 11, 1, "sum", True),
    ("IMDBBINARY", 3, 2, "mean", True),
    ("IMDBMULTI", 1, 3, "sum", False),
    ("COLLAB", 3, 2, "sum", True),
    ("COLLAB", 1, 3, "mean", False),
    ("PROTEINS", 3, 1, "mean", False),
]


def write_subset(src: Path, dst: Path, m: int, max_nodes: int) -> None:
    """The first ``m`` graphs with at most ``max_nodes`` nodes of a GIN text file (its header
    line is the graph count; the reference's memory grows with the square of a pair's size)."""
    lines = src.read_text().splitlines()
    kept, i = [], 1
    while len(kept) < m and i < len(lines):
        n = int(lines[i].split()[0])
        if n <= max_nodes:
            kept.append(lines[i:i + 1 + n])
        i += 1 + n
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join([str(len(kept))] + [line for block in kept for line in block]) + "\n")


def reference_gram(work: Path, name: str, L: int, R: int, scaling: str, jk: bool) -> tuple[np.ndarray, float]:
    out = work / f"out_{L}_{R}_{scaling}_{int(jk)}"
    out.mkdir()
    t = time.perf_counter()
    # The reference counts the input layer (num_layers = L + 1) and calls the scalings uniform / degree.
    subprocess.run([sys.executable, str(SHARED / "reference" / "gntk_reference" / "gram.py"), "--dataset", name,
                    "--num_layers", str(L + 1), "--num_mlp_layers", str(R),
                    "--scale", {"sum": "uniform", "mean": "degree"}[scaling], "--jk", str(int(jk)),
                    "--out_dir", str(out)], cwd=work, check=True, capture_output=True)
    return np.load(out / "gram.npy"), time.perf_counter() - t


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graphs", type=int, default=100, help="graphs per dataset (the first ones of the file)")
    p.add_argument("--max-nodes", type=int, default=60, help="skip larger graphs (the reference's memory)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "reference_check.md")
    args = p.parse_args(argv)
    from graph_ntk.datasets import load_gin
    from graph_ntk.engine import GNTK, gram

    sys.path.insert(0, str(HERE))
    from tu_gntk import reference_self_loops

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, L, R, scaling, jk in CASES:
            txt = work / "dataset" / name / f"{name}.txt"
            if not txt.exists():
                write_subset(SHARED / "datasets" / "gin" / name / f"{name}.txt", txt, args.graphs, args.max_nodes)
            ref, ref_s = reference_gram(work, name, L, R, scaling, jk)
            loaded = load_gin(work / "dataset", name, degree_as_tag=name.startswith(("IMDB", "COLLAB")))
            loops = sum(int(np.sum(g.edge_index[0] == g.edge_index[1])) for g in loaded.graphs)
            model = GNTK(L, R, scaling, jumping_knowledge=jk)
            t = time.perf_counter()
            ours = gram(model, reference_self_loops(loaded), progress=False)
            ours_s = time.perf_counter() - t
            rel = float(np.max(np.abs(ours - ref) / np.abs(ref)))
            once = float(np.max(np.abs(gram(model, loaded, progress=False) - ref) / np.abs(ref))) if loops else None
            rows.append((name, L, R, scaling, jk, loops, rel, once, ref_s, ours_s))
            print(f"{name} L{L} R{R} {scaling} JK={jk}: max relative difference {rel:.1e} "
                  f"(reference {ref_s:.1f} s, graph_ntk {ours_s:.1f} s)", flush=True)
    md = ["# graph_ntk's GNTK vs the authors' reference code on the TU table's settings", "",
          f"Command: `nice -n 19 .venv/bin/python experiments/reference_check.py --graphs {args.graphs} "
          f"--max-nodes {args.max_nodes}`. The first {args.graphs} graphs with at most {args.max_nodes} nodes of "
          "each GIN file; the reference (`gram.py`, run as a program) and "
          "graph_ntk (`gram(GNTK(L, R, scaling, jumping_knowledge))`, float64) on the same graphs. The reference "
          "takes the arccos of a clipped cosine, so ~1e-9 relative noise is its own rounding. Times: whole "
          "reference process vs graph_ntk's `gram` call, on a machine running other jobs (not a benchmark: see "
          "`benchmarks/`).", "",
          "Self-loops: the reference's adjacency `A + A^T + I` counts a loop `(v, v)` twice, so graph_ntk is run "
          "with each loop arc weighted 2 (`tu_gntk.reference_self_loops`, what `tu_gntk.py` does); the last column "
          "is the difference with a loop counted once, as the graphs are loaded.", "",
          "| dataset | L | R | scaling | JK | self-loops | max relative difference | reference s | graph_ntk s | "
          "loops counted once |", "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {n} | {L} | {R} | {sc} | {'yes' if jk else 'no'} | {lp} | {rel:.1e} | {a:.1f} | {b:.1f} | "
           f"{'–' if once is None else f'{once:.1e}'} |" for n, L, R, sc, jk, lp, rel, once, a, b in rows]
    args.out.write_text("\n".join(md) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
