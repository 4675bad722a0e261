"""Raw against cosine-normalised GNTK Grams under the paper protocol, on one part of the grid.

``search.py`` of Du et al. (2019) fits its SVMs on the raw Gram divided by its smallest
entry, :math:`K / \\min_{ij} K_{ij}`; ``tu_gntk.py`` runs the cosine form
:math:`K_{ij} / \\sqrt{K_{ii} K_{jj}}` alone on the large datasets, because raw Grams are
slow for libsvm. This experiment measures what that costs on one (R, scaling) part of a
dataset's grid: both forms, every depth of the grid, JK on and off, the paper protocol
(test accuracy on the GIN folds, best over the kernel and ``C``), on every ``--c-step``-th
of the 120 paper ``C`` values; then the best kernel of each form again on the full grid's
``C`` values within ``--c-step`` grid points of its best coarse ``C``.

Writes ``results/tu_raw_form_<dataset>.json`` and ``.md``; Grams and scores share
``tu_gntk.py``'s cache (the same descriptions), so either run reuses the other's work.
Command recorded in the Markdown output, e.g.::

    nice -n 19 .venv/bin/python experiments/tu_raw_form.py --dataset NCI1 --mlp-layers 2 --scalings mean
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tu_gntk as T  # noqa: E402
from tu_gntk_report import PUBLISHED, best_refined, signed_points  # noqa: E402


def run(args) -> dict:
    name = args.dataset
    folder, degree_as_tag, depths = T.DATASETS[name]
    ds = T.reference_self_loops(T.load_gin(args.data / "gin", folder, degree_as_tag=degree_as_tag))
    y = np.asarray(ds.y)
    cache = T.ScoreCache(args.cache_dir / name)
    timings: dict[str, float] = {}  # filled from the cache's record, as tu_gntk.py keeps it
    grams = T.compute_grams(name, ds, depths, args.mlp_layers, args.scalings, cache, T.gram_dtype(name), timings)
    passes = [f"gntk L{max(depths)} R{R} {sc}" for R in args.mlp_layers for sc in args.scalings]
    timings = {k: timings[k] for k in passes if k in timings}
    grams = {k: K for k, K in grams.items() if k.startswith("ntk")}
    digests = {k: T.gram_digest(K) for k, K in grams.items()}
    makers = T.forms(grams, ["raw", "cos"], False)
    y_list, folds_list = y.tolist(), [te.tolist() for _, te in ds.folds]

    def scores(item):
        k, c_grid = item
        base, form = k.split("|")
        desc = {"paper": True, "gram": digests[base], "form": form, "C": c_grid.tolist(), "y": y_list,
                "folds": folds_list}  # exactly tu_gntk.py's description: the two runs share scores
        acc, seconds = T.paper_scores(makers[k], y, ds.folds, c_grid, cache, desc)
        T._log(f"{name}: {k} on {len(c_grid)} C in {seconds:.0f} s")
        return k, acc, seconds

    pool = ThreadPoolExecutor(args.jobs)
    coarse_idx = np.arange(0, len(T.PAPER_C), args.c_step)
    coarse = {}
    svm_s = {"raw": 0.0, "cos": 0.0}  # seconds of the SVM sweeps per form, as timed when computed
    for k, acc, s in pool.map(scores, [(k, T.PAPER_C[coarse_idx]) for k in sorted(makers)]):
        coarse[k] = acc
        svm_s[k.split("|")[1]] += s
    rows = {k: T._paper_best(acc, T.PAPER_C[coarse_idx]) for k, acc in coarse.items()}
    windows = {}
    for form in ("raw", "cos"):
        top = sorted((k for k in rows if k.endswith(f"|{form}")), key=lambda k: -rows[k]["mean"])[:args.refine]
        for k in top:
            centre = int(coarse_idx[int(np.argmax(coarse[k].mean(axis=1)))])
            windows[k] = np.arange(max(0, centre - args.c_step), min(len(T.PAPER_C), centre + args.c_step + 1))
    refined = []
    for k, acc, s in pool.map(scores, [(k, T.PAPER_C[w]) for k, w in windows.items()]):
        svm_s[k.split("|")[1]] += s
        refined.append({"kernel": k, "coarse": rows[k], "n_C": len(windows[k]),
                        **T._paper_best(acc, T.PAPER_C[windows[k]])})
    return {"dataset": name, "mlp_layers": args.mlp_layers, "scalings": args.scalings, "depths": list(depths),
            "c_step": args.c_step, "refine": args.refine, "kernels": rows, "refined": refined, "gram_seconds": timings,
            "svm_seconds": {f: round(v, 1) for f, v in svm_s.items()}, "published": PUBLISHED["GNTK"][name][0],
            "command": "nice -n 19 .venv/bin/python experiments/tu_raw_form.py " + shlex.join(sys.argv[1:])}


def markdown(r: dict) -> str:
    name = r["dataset"]
    lines = [f"# {name}: raw vs cosine GNTK Gram under the paper protocol",
             "",
             f"Regenerate with `{r['command']}`.",
             "",
             f"GNTK (NTK) of R ∈ {r['mlp_layers']}, scaling {r['scalings']}, L ∈ {r['depths']}, JK on and off; "
             f"test accuracy (%) on the GIN folds, best over C on every {r['c_step']}th of the 120 paper C values "
             "(mean ± std over the 10 folds, C). *raw*: the Gram divided by its smallest entry, as `search.py` "
             "does; *cos*: cosine-normalised.",
             "",
             "| kernel | raw | cos |",
             "|---|---|---|"]
    for k in sorted({k.split("|")[0] for k in r["kernels"]}):
        cells = [r["kernels"][f"{k}|{f}"] for f in ("raw", "cos")]
        lines.append(f"| `{k}` | " + " | ".join(f"{100 * c['mean']:.1f} ± {100 * c['std']:.1f} (C = {c['C']:.3g})"
                                                 for c in cells) + " |")
    lines += ["", f"The best {r['refine']} kernels of each form again on the {len(T.PAPER_C)}-value C grid within "
                  f"{r['c_step']} grid points of their best coarse C:", "",
              "| form | kernel | coarse | refined (C values) | C |", "|---|---|---|---|---|"]
    for f in r["refined"]:
        form = f["kernel"].split("|")[1]
        lines.append(f"| {form} | `{f['kernel'].split('|')[0]}` | {100 * f['coarse']['mean']:.1f} | "
                     f"{100 * f['mean']:.1f} ± {100 * f['std']:.1f} ({f['n_C']}) | {f['C']:.3g} |")
    best = {form: 100 * best_refined(r, form)["mean"] for form in ("raw", "cos")}

    lines += ["", f"Published (Table 1): {r['published']:.1f}. Best raw − best cos: {signed_points(best['raw'] - best['cos'])} "
                  f"points; best raw − published: {signed_points(best['raw'] - r['published'])}; best cos − published: "
                  f"{signed_points(best['cos'] - r['published'])}.",
              "", f"Cost: Gram passes {sum(r['gram_seconds'].values()):.0f} s (as timed when computed), "
                  f"SVM sweeps {r['svm_seconds']['raw']:.0f} s on the raw Grams and {r['svm_seconds']['cos']:.0f} s "
                  "on the cosine ones (summed over threads, as timed when computed).", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=list(T.DATASETS))
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets",
                   help="folder holding the datasets' gin/ and tu/ folders")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--cache-dir", type=Path, default=HERE.parent / ".cache" / "tu_gntk_v2")
    p.add_argument("--mlp-layers", type=int, nargs="+", default=[2])
    p.add_argument("--scalings", nargs="+", default=["mean"], choices=T.SCALINGS)
    p.add_argument("--c-step", type=int, default=12, help="use every k-th of the 120 paper C values")
    p.add_argument("--refine", type=int, default=3, help="refine this many best kernels of each form")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="SVM sweeps at once (threads)")
    args = p.parse_args(argv)
    if not (args.data / "gin").is_dir():
        p.error(f"--data {args.data} has no gin/ folder: point it at the folder holding the TU datasets")
    if args.c_step < 1 or args.refine < 1:
        p.error("--c-step and --refine must be positive integers")
    args.out.mkdir(parents=True, exist_ok=True)  # checked before any work
    stem = args.out / f"tu_raw_form_{args.dataset}"
    r = run(args)
    for suffix, text in ((".json", json.dumps(r, indent=1)), (".md", markdown(r))):
        tmp = stem.with_suffix(suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(stem.with_suffix(suffix))  # never a half-written result
    T._log(f"wrote {stem}.md")


if __name__ == "__main__":
    main()
