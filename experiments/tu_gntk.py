"""GNTK, GNNGP and WL on the seven graph-classification benchmarks of Du et al. (2019):
the paper's grid and protocol, repeated nested cross-validation, paired comparisons.

One command regenerates ``experiments/results/tu_gntk.md`` / ``.json`` and the plots::

    nice -n 19 .venv/bin/python experiments/tu_gntk.py

(full protocol, all seven datasets; days of CPU time on two cores). Flags shrink it; the
committed results were produced with the commands listed at the end of ``tu_gntk.md``, and
``experiments/tu_gntk_replay.py`` reruns exactly those, in order.
Grams and paper scores are cached (``--cache-dir``, git-ignored, verified by checksum on
load), so a rerun resumes and only computes what is missing; per-dataset results
accumulate in ``tu_gntk.json`` across runs. The nested CV's SVM scores are kept beside the
results, in ``results/nested_scores/<dataset>.json.gz`` (committed, verified against the
fingerprints of this run's Grams: :mod:`score_archive`), and saved after every repetition,
so its repetitions accumulate across runs and machines: a run with ``--nested-only``
(which keeps the stored paper protocol and needs only the nested grid's Grams) and more
``--repeats`` computes only the repetitions not yet there.

**Kernels** (GIN-format data with their ``10fold_idx`` splits; node degrees as tags for
IMDB-B, IMDB-M, COLLAB, as GIN and GNTK do):

* GNTK and GNNGP (the NTK and the NNGP of the same network, :class:`graph_ntk.engine.GNTK`,
  readout sum): the reference ``run_gram.sh`` grid -- ``L`` in {1, 3} blocks for IMDB-B,
  IMDB-M, COLLAB, MUTAG, PROTEINS and {9, 11, 13} for NCI1, PTC (the reference's
  ``num_layers`` counts the input layer: 2, 4 and 10, 12, 14); ``R`` in {1, 2, 3} MLP
  layers; uniform / degree scaling (``aggregation='sum'`` / ``'mean'``); with and without
  jumping knowledge. One engine pass per (dataset, R, scaling) gives every depth, both
  JK variants and NTK and NNGP together (``gram(..., get=('ntk', 'nngp'), all_depths=True)``).
* WL subtree (:func:`graph_ntk.kernels.wl_kernel.wl_subtree_gram`, equal to GraKeL's),
  ``h`` in 1..6: the range Xu et al. (2019) tuned, whose WL numbers Du et al. reprint.
* With ``--attributes`` (moonshot only): PROTEINS' continuous node attribute (TU files) as a
  feature beside the tag (:func:`attribute_dataset`), GNTK and GNNGP for the nested grid.
* With ``--edge-labels`` (moonshot only): the relational GNTK and GNNGP over MUTAG's and PTC's
  bond types (``gntk(..., edge_types=T)`` on the TU graphs, matched exactly to the GIN graphs
  by :func:`tu_inputs.edge_label_dataset`; PTC's without GIN's explicit hydrogens).
* With ``--moonshot-depths`` (moonshot only): GNTK and GNNGP of more depths than the grid's
  (plain inputs, the nested grid's R and scaling; one more engine pass per (R, scaling)).
* With ``--moonshot-pool METHOD`` (moonshot only): the hierarchical GNTK and GNNGP
  (:func:`graph_ntk.hierarchical_gntk`, two levels of 1 or 2 blocks, each graph coarsened
  between them by the structure-only ``graclus`` / ``ndp`` / ``kmis`` assignment), plain
  inputs, the nested grid's R and scaling.
* Sums (moonshot only): ``cos(NTK L R scaling JK) + cos(WL h)`` for every JK architecture
  of the grid, i.e. the GNTK with an explicit subtree-count term, with ``h = min(L, 6)`` (the
  depth-matched subtrees) and ``h = 6`` (the deepest).

Every Gram is tried raw (divided by its smallest entry, as ``search.py`` does) and
cosine-normalised (``--paper-forms`` / ``--nested-forms``).

**Protocols**

* *paper*: for every kernel and form, SVMs (``SVC(kernel='precomputed')``) for every ``C``
  of ``np.logspace(-2, 4, 120)`` on the 10 GIN folds; the best mean test accuracy over
  kernel, form and ``C`` (std over the folds there). ``C`` and the kernel are chosen on
  the test folds, as in Du et al. and ``search.py``: optimistic by construction.
* *repeated nested CV*: ``--repeats`` (10) repetitions of stratified ``--outer`` (10)-fold
  splits with seeds 0..9; on each outer training part an inner stratified
  ``--inner`` (5)-fold CV selects kernel, form and ``C`` (``--nested-c`` log-spaced values
  in 10^-2..10^4, 25 by default) among all candidates of a family; the outer test fold is
  used once, for the reported accuracy. Families: GNTK (all NTK candidates), GNNGP (all
  NNGP), WL (h = 1..6), and *graph_ntk best* = GNTK u GNNGP u WL u sums, selected by the
  inner CV like any other family. Every family is evaluated on the same outer folds, so
  the comparisons are paired (:func:`graph_ntk.model_selection.paired_comparison`).

The SVM scores of every candidate (inner and outer, every ``C``, every split) are
computed once and cached, and each family's nested selection is read off them
exactly (:func:`graph_ntk.model_selection.nested_select`).

**Cost** (the design constraint): one SVM fit takes about 1-4 ms on MUTAG, 20 ms on
IMDB-B and 0.5 s on NCI1, and the full protocol needs, per candidate Gram form, 120 x 10
paper fits and 10 x 10 x (5 + 1) x 25 nested fits: e.g. NCI1 alone is weeks of CPU.
Shrinking flags, in order of effect: ``--repeats``, ``--nested-c``, ``--inner``,
``--nested-forms cos`` / ``--paper-forms cos`` (raw Grams also make libsvm slow at large
``C``), ``--paper-c-step k`` (every k-th of the 120 C), ``--paper-kernels ntk wl``,
``--mlp-layers`` / ``--scalings`` / ``--depths``, ``--datasets``. With ``--paper-c-step``,
the ``--paper-refine`` (4) best GNTK kernels are rerun on all 120 C, so the table's GNTK
number is that of the full C grid for the kernels that matter. ``--jobs`` SVMs are fitted at
once (threads; default one per core). ``--quick`` is a one-minute smoke test. Every reduction
used is listed per dataset in ``tu_gntk.md``.

Examples::

    nice -n 19 .venv/bin/python experiments/tu_gntk.py --quick --out /tmp/q
    nice -n 19 .venv/bin/python experiments/tu_gntk.py --datasets MUTAG PTC --repeats 2 \
        --inner 3 --nested-c 7 --nested-forms cos --paper-forms cos --paper-c-step 4
    nice -n 19 .venv/bin/python experiments/tu_gntk.py --report-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from graph_ntk.datasets import load_gin
from graph_ntk.evaluation import _raw_scale, cosine_normalize
from graph_ntk.model_selection import (CandidateScores, ScoreCache, gram_digest, nested_select, paired_comparison,
                                       repeated_splits, svm_candidate_scores)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from score_archive import ScoreArchive, gram_fingerprint  # noqa: E402
from tu_inputs import attribute_dataset, edge_label_dataset, reference_self_loops  # noqa: E402

# name -> (GIN folder, degree_as_tag, grid depths L)
DATASETS = {
    "MUTAG": ("MUTAG", False, (1, 3)),
    "PTC": ("PTC", False, (9, 11, 13)),
    "IMDB-B": ("IMDBBINARY", True, (1, 3)),
    "IMDB-M": ("IMDBMULTI", True, (1, 3)),
    "PROTEINS": ("PROTEINS", False, (1, 3)),
    "NCI1": ("NCI1", False, (9, 11, 13)),
    "COLLAB": ("COLLAB", True, (1, 3)),
}
MLP_LAYERS = (1, 2, 3)
SCALINGS = ("sum", "mean")  # uniform, degree
WL_H = (1, 2, 3, 4, 5, 6)
# Datasets whose TU files hold a continuous node attribute (GIN name -> TU name), for --attributes.
ATTRIBUTES = {"PROTEINS": "PROTEINS"}
# Datasets whose TU files hold edge labels (GIN name -> TU name, GIN tag the TU graphs leave out).
EDGE_LABELS = {"MUTAG": ("MUTAG", None), "PTC": ("PTC_MR", 19)}
# Name tags of the kernels on those inputs: moonshot search space only (never the paper table).
MOONSHOT_INPUTS = (" attr", " rel", " pool-")
# --moonshot-pool: two levels of this many GNTK blocks each, the graph coarsened between them.
POOL_BLOCKS = (1, 2)


def on_moonshot_input(kernel: str) -> bool:
    """Whether ``kernel`` runs on a moonshot input (the node attribute, the bond types) or
    architecture (a hierarchical pool)."""
    return any(t in kernel for t in MOONSHOT_INPUTS)

PAPER_C = np.logspace(-2, 4, 120)
FAMILIES = ("GNTK", "GNNGP", "WL", "graph_ntk best")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- Grams
def gntk_pass(name: str, ds, depths, R: int, sc: str, cache: ScoreCache, key: dict, timings: dict, *,
              tag: str = "", dtype: str = "float64", memory_limit: int | None = None) -> dict[str, np.ndarray]:
    """The GNTK and GNNGP Grams of every depth, JK on and off, of one (R, scaling) from one
    engine pass (cached; ``key`` completes the cache description): ``'<kind> L<d> R<R> <sc><tag>[ JK]'``."""
    from graph_ntk.engine import GNTK, gram

    n, L = len(ds), max(depths)
    want = {f"{kind} L{d} R{R} {sc}{tag}{' JK' if jk else ''}": (kind, d, jk)
            for kind in ("ntk", "nngp") for d in depths for jk in (True, False)}
    desc = {n_: {"dataset": name, "gram": n_, "L": L, **key, "v": 1} for n_ in want}
    got = {n_: cache.get(desc[n_], (n, n)) for n_ in want}
    if any(v is None for v in got.values()):
        t = time.perf_counter()
        out = gram(GNTK(L, R, sc), ds, get=("ntk", "nngp"), all_depths=True, dtype=dtype, progress=False,
                   memory_limit=memory_limit)
        seconds = timings[f"gntk L{L} R{R} {sc}{tag}"] = time.perf_counter() - t
        _log(f"{name}: GNTK/GNNGP L{L} R{R} {sc}{tag} Gram (all depths) in {seconds:.1f} s")
        for n_, (kind, d, jk) in want.items():
            got[n_] = np.asarray(out[(d, jk)][0 if kind == "ntk" else 1], dtype=np.float64)
            cache.put(desc[n_], got[n_])
    # A float32 Gram is held as float32 (exact: the cache's float64 copy was made from it),
    # so that NCI1's 72 Grams fit in memory; forms() widens one at a time.
    return {n_: K.astype(dtype, copy=False) for n_, K in got.items()}


def cached_pair(name: str, ds, arch: str, key: dict, network: Callable, cache: ScoreCache, timings: dict,
                dtype: str = "float64") -> dict[str, np.ndarray]:
    """The NTK and NNGP Grams ``'ntk <arch>'``, ``'nngp <arch>'`` of ``network()`` on ``ds``,
    read from the cache (``key`` completes its description) or computed in one engine call
    and cached, its time kept in ``timings['gntk <arch>']``."""
    from graph_ntk.engine import gram

    names = [f"{kind} {arch}" for kind in ("ntk", "nngp")]
    desc = [{"dataset": name, "gram": k, **key, "v": 1} for k in names]
    got = [cache.get(x, (len(ds), len(ds))) for x in desc]
    if any(K is None for K in got):
        t = time.perf_counter()
        got = gram(network(), ds, get=("ntk", "nngp"), dtype=dtype, progress=False)
        timings[f"gntk {arch}"] = time.perf_counter() - t
        for x, K in zip(desc, got):
            cache.put(x, np.asarray(K, dtype=np.float64))
    return dict(zip(names, got))


def relational_pass(name: str, rel, depths, R: int, sc: str, cache: ScoreCache, timings: dict
                    ) -> dict[str, np.ndarray]:
    """The relational GNTK / GNNGP Grams (``gntk(..., edge_types=T)``, per-type aggregation over
    the bond labels of :func:`edge_label_dataset`) of every depth, JK on and off, of one
    (R, scaling): ``'<kind> L<d> R<R> <sc> rel[ JK]'`` (cached)."""
    from graph_ntk import gntk

    T = int(rel.meta["num_edge_types"])
    out = {}
    for d in depths:
        for jk in (True, False):
            out.update(cached_pair(name, rel, f"L{d} R{R} {sc} rel{' JK' if jk else ''}", {"edge_types": T},
                                   partial(gntk, d, R, sc, jk, input_dim=rel.num_tags, edge_types=T), cache,
                                   timings))
    _log(f"{name}: relational GNTK/GNNGP R{R} {sc} Grams ready")
    return out


def pooled_pass(name: str, ds, R: int, sc: str, method: str, cache: ScoreCache, key: dict, timings: dict
                ) -> dict[str, np.ndarray]:
    """The hierarchical GNTK / GNNGP Grams (:func:`graph_ntk.hierarchical_gntk`: two levels of
    ``b`` blocks in :data:`POOL_BLOCKS`, the graph coarsened by the structure-only ``method``
    between them), JK on and off, of one (R, scaling): ``'<kind> L<2b> R<R> <sc> pool-<method>[ JK]'``
    (cached)."""
    from graph_ntk import hierarchical_gntk

    out = {}
    for b in POOL_BLOCKS:
        for jk in (True, False):
            out.update(cached_pair(name, ds, f"L{2 * b} R{R} {sc} pool-{method}{' JK' if jk else ''}", key,
                                   partial(hierarchical_gntk, method, 2, b, R, sc, jk, input_dim=ds.num_tags),
                                   cache, timings, dtype=key.get("dtype", "float64")))
    _log(f"{name}: hierarchical GNTK/GNNGP R{R} {sc} {method} Grams ready")
    return out


def plain_key(ds, dtype: str) -> dict:
    """What completes the cache description of a GNTK pass on the plain (GIN) input."""
    key = {"dtype": dtype}
    if any(g.edge_weight is not None for g in ds.graphs):
        key["self_loop_weight"] = 2  # the reference's self-loop convention (older Grams counted a loop once)
    return key


def gram_dtype(name: str) -> str:
    """The dtype a dataset's GNTK passes run in: float32 for COLLAB and NCI1, whose deep item
    kernels would not fit or finish otherwise.

    >>> gram_dtype("NCI1"), gram_dtype("MUTAG")
    ('float32', 'float64')
    """
    return "float32" if name in ("COLLAB", "NCI1") else "float64"


def compute_grams(name: str, ds, depths, mlp_layers, scalings, cache: ScoreCache, dtype: str,
                  timings: dict, memory_limit: int | None = None) -> dict[str, np.ndarray]:
    """All GNTK / GNNGP / WL Grams of the grid for one dataset (cached as float64; computed in float32 for
    COLLAB and NCI1, whose deep item kernels would not fit or finish otherwise)."""
    from graph_ntk.kernels.wl_kernel import wl_subtree_gram

    n = len(ds)
    grams: dict[str, np.ndarray] = {}
    key = plain_key(ds, dtype)
    # Gram times of earlier runs are kept with the cache, so a resumed run still reports them.
    tfile = cache.folder / "gram_timings.json"
    timings.update(json.loads(tfile.read_text()) if tfile.exists() else {})
    for R in mlp_layers:
        for sc in scalings:
            grams.update(gntk_pass(name, ds, depths, R, sc, cache, key, timings, dtype=dtype,
                                   memory_limit=memory_limit))
            tfile.write_text(json.dumps(timings, indent=1))
    for h in WL_H:
        desc = {"dataset": name, "gram": f"wl h{h}", "v": 1}
        K = cache.get(desc, (n, n))
        if K is None:
            t = time.perf_counter()
            K = wl_subtree_gram(ds, h=h)
            timings[f"wl h{h}"] = time.perf_counter() - t
            tfile.write_text(json.dumps(timings, indent=1))
            cache.put(desc, K)
        grams[f"wl h{h}"] = K
    return grams


def forms(grams: dict[str, np.ndarray], which, sums: bool) -> dict[str, Callable[[], np.ndarray]]:
    """Candidate Gram forms ``'<kernel>|raw'`` / ``'<kernel>|cos'`` (and the sums), each as a
    function building the float64 matrix on demand: all forms of NCI1's grid at once would
    need 13 GB.

    >>> f = forms({"wl h1": np.array([[4.0, 2.0], [2.0, 1.0]])}, ["raw", "cos"], False)
    >>> sorted(f), f["wl h1|raw"]().tolist(), f["wl h1|cos"]().tolist()
    (['wl h1|cos', 'wl h1|raw'], [[4.0, 2.0], [2.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]])
    """
    def raw(K):
        K = np.asarray(K, dtype=np.float64)
        return K / _raw_scale(K)  # the library's paper-protocol scale: search.py's K / min K

    def cos(K):
        return cosine_normalize(np.asarray(K, dtype=np.float64))

    out: dict[str, Callable[[], np.ndarray]] = {}
    for k, K in grams.items():
        if "raw" in which:
            out[f"{k}|raw"] = partial(raw, K)
        if "cos" in which:
            out[f"{k}|cos"] = partial(cos, K)
    if sums:
        for k, K in grams.items():
            if k.startswith("ntk") and k.endswith("JK"):
                d = int(k.split()[1][1:])
                for h in sorted({min(d, max(WL_H)), max(WL_H)}):  # depth-matched and deepest subtrees
                    out[f"{k} + wl h{h}|cos"] = partial(lambda a, b: cosine_normalize(cos(a) + cos(b)), K,
                                                        grams[f"wl h{h}"])
    return out


def in_grid(candidate: str, mlp_layers, scalings) -> bool:
    """Whether a candidate's GNTK / GNNGP part has ``R`` in ``mlp_layers`` and its scaling in
    ``scalings`` (WL candidates always are): restricts the nested CV to part of the grid.

    >>> in_grid("ntk L3 R2 mean JK + wl h3|cos", [1], ["sum"]), in_grid("wl h2|raw", [1], ["sum"])
    (False, True)
    """
    words = candidate.split("|")[0].split("+")[0].split()
    return words[0] == "wl" or (int(words[2][1:]) in mlp_layers and words[3] in scalings)


def in_reference_grid(kernel: str, grid_depths) -> bool:
    """Whether ``kernel`` (no sum) is one of the reference grid's: WL, or a GNTK / GNNGP on
    the plain input at one of the dataset's grid depths.

    >>> [in_reference_grid(k, (1, 3)) for k in ("ntk L3 R1 sum JK", "ntk L5 R1 sum", "ntk L1 R1 sum attr", "wl h6")]
    [True, False, False, True]
    """
    words = kernel.split()
    return words[0] == "wl" or (not on_moonshot_input(kernel) and int(words[1][1:]) in grid_depths)


def family_of(candidate: str, grid_depths) -> list[str]:
    base = candidate.split("|")[0]
    fams = ["graph_ntk best"]
    if "+" in base or not in_reference_grid(base, grid_depths):  # moonshot search space only
        return fams
    return fams + [{"ntk": "GNTK", "nngp": "GNNGP", "wl": "WL"}[base.split()[0]]]


# --------------------------------------------------------------------------- protocols
def timed_get(cache: ScoreCache, desc: dict, shape: tuple[int, ...], compute: Callable[[], np.ndarray]
              ) -> tuple[np.ndarray, float]:
    """The cached array under ``desc`` (computed and cached when absent) and the seconds its
    computation took, timed when it was first computed and kept with the cache, so a rerun
    that reads scores back still reports what they cost (NaN for an entry cached without it).

    >>> import tempfile
    >>> c = ScoreCache(tempfile.mkdtemp())
    >>> a, s = timed_get(c, {"k": 1}, (2,), lambda: np.ones(2))
    >>> b, s2 = timed_get(c, {"k": 1}, (2,), lambda: np.zeros(2))
    >>> b.tolist(), s2 == s
    ([1.0, 1.0], True)
    """
    arr = cache.get(desc, shape)
    if arr is not None:
        sec = cache.get({**desc, "seconds": True}, (1,))
        return arr, float("nan") if sec is None else float(sec[0])
    t = time.perf_counter()
    arr = compute()
    seconds = time.perf_counter() - t
    cache.put(desc, arr)
    cache.put({**desc, "seconds": True}, np.array([seconds]))
    return arr, seconds


def paper_scores(make_gram: Callable[[], np.ndarray], y: np.ndarray, folds, c_grid: np.ndarray, cache: ScoreCache,
                 desc: dict) -> tuple[np.ndarray, float]:
    """Test accuracy ``(len(c_grid), folds)`` on the given folds, and the seconds it took
    (cached; the Gram is built only when the scores are not)."""
    from graph_ntk.evaluation import _svm_accuracies

    def compute():
        K = make_gram()
        return np.stack([_svm_accuracies(K, y, tr, te, c_grid) for tr, te in folds], axis=1)

    return timed_get(cache, desc, (len(c_grid), len(folds)), compute)


def _paper_best(acc: np.ndarray, c_grid: np.ndarray) -> dict:
    best = int(np.argmax(acc.mean(axis=1)))  # first maximum: the smallest such C
    return {"mean": float(acc[best].mean()), "std": float(acc[best].std()), "C": float(c_grid[best]),
            "n_C": len(c_grid)}


def paper_search(accs: dict[str, np.ndarray], c_step: int) -> list[dict]:
    """How the paper-protocol GNTK number depends on the size of the search over the test
    folds: the best mean test accuracy (over NTK kernels, forms and ``C``) for every
    (R, scaling) part of the grid and for all of it, with the ``C`` grid thinned to every
    k-th of the 120 values (``k`` a multiple of the step actually run).

    ``accs`` maps ``'<kernel>|<form>'`` to its ``(C, fold)`` accuracies on the paper C grid
    ``PAPER_C[::c_step]``.

    >>> a = {"ntk L1 R1 sum|cos": np.array([[0.5, 0.5], [0.9, 0.7]]), "wl h1|cos": np.ones((2, 2))}
    >>> [(r["grid"], r["C"], r["mean"]) for r in paper_search(a, 4)]
    [('R1 sum', 2, 0.8), ('R1 sum', 1, 0.5), ('all', 2, 0.8), ('all', 1, 0.5)]
    """
    ntk = {k: a for k, a in accs.items() if k.startswith("ntk")}
    parts = sorted({" ".join(k.split("|")[0].split()[2:4]) for k in ntk})
    rows = []
    for grid in parts + ["all"]:
        members = [a for k, a in ntk.items() if grid == "all" or " ".join(k.split("|")[0].split()[2:4]) == grid]
        for thin in (1, 2, 4, 8):
            sub = [a[::thin] for a in members]
            if thin > 1 and c_step * thin > 8:  # the coarsest grid compared: every 8th of the 120 C
                continue
            means = np.stack([a.mean(axis=1) for a in sub])  # (kernel, C)
            i, j = np.unravel_index(int(np.argmax(means)), means.shape)
            rows.append({"grid": grid, "kernels": len(sub), "C": int(sub[0].shape[0]), "mean": float(means[i, j]),
                         "std": float(sub[i][j].std())})
    return rows


def per_fold_selection(accs: dict[str, np.ndarray]) -> dict:
    """Two more optimistic selections than the paper protocol's (one ``C`` and kernel for all
    folds), as a diagnostic of what a published number may have been selected over: the
    best ``C`` chosen per test fold (best kernel), and kernel and ``C`` both chosen per fold.

    >>> a = {"ntk L1 R1 sum|cos": np.array([[1.0, 0.0], [0.0, 1.0]])}
    >>> per_fold_selection(a)
    {'c_per_fold': 1.0, 'kernel_and_c_per_fold': 1.0}
    """
    ntk = [a for k, a in accs.items() if k.startswith("ntk")]
    if not ntk:
        return {}
    return {"c_per_fold": float(max(a.max(axis=0).mean() for a in ntk)),
            "kernel_and_c_per_fold": float(np.max([a.max(axis=0) for a in ntk], axis=0).mean())}


def archive_label(candidate: str, repetition: int, inner: int, n_c: int, outer: int) -> str:
    """How an archive entry says what it holds (the tests rebuild the nested tables from it).

    >>> archive_label("wl h2|cos", 3, 2, 3, 10)
    'wl h2|cos / repetition 3 / outer 10 / inner 2 / C 3'
    """
    return f"{candidate} / repetition {repetition} / outer {outer} / inner {inner} / C {n_c}"


def nested_rep_scores(make_gram: Callable[[], np.ndarray], y, rep_splits, c_grid, inner, archive: ScoreArchive,
                      desc: dict, fingerprints: list[list[float]]) -> tuple[np.ndarray, float]:
    """Inner and outer scores ``(2, folds, len(c_grid))`` of one candidate on one repetition's
    outer splits, and the SVM seconds they took: read from ``archive`` when it holds them for
    Grams of these ``fingerprints``, else computed (the Gram built only then) and added to it."""
    got = archive.get(desc, fingerprints)
    if got is not None:
        return got
    t = time.perf_counter()
    s = svm_candidate_scores(make_gram(), y, [rep_splits], c_grid=c_grid, inner_splits=inner, seed=0)
    both, seconds = np.stack([s.inner[0], s.outer[0]]), time.perf_counter() - t
    archive.put(desc, fingerprints, both, seconds, archive_label(desc["candidate"], desc["repetition"], inner,
                                                                 len(c_grid), desc["outer"]))
    return both, seconds


def svm_total(seconds: list[float]) -> float | None:
    """Total SVM thread-seconds of a protocol, or None when some scores were cached without
    their time (an older cache).

    >>> svm_total([1.0, 2.5]), svm_total([1.0, float("nan")])
    (3.5, None)
    """
    return None if any(np.isnan(seconds)) else round(float(np.sum(seconds)), 1)


def run_dataset(name: str, args) -> dict:
    folder, degree_as_tag, depths = DATASETS[name]
    if args.depths:
        depths = tuple(d for d in args.depths if d <= max(depths)) or (min(depths),)
    ds = reference_self_loops(load_gin(args.data / "gin", folder, degree_as_tag=degree_as_tag))
    y = np.asarray(ds.y)
    cache = ScoreCache(args.cache_dir / name)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dtype = gram_dtype(name)
    memory_limit = None if args.memory_limit is None else int(args.memory_limit * 2**30)
    grams = compute_grams(name, ds, depths, args.mlp_layers, args.scalings, cache, dtype, timings, memory_limit)
    deep = sorted(set(args.moonshot_depths) - set(depths))
    if deep:
        for R in args.nested_mlp_layers or args.mlp_layers:  # moonshot only: the nested grid
            for sc in args.nested_scalings or args.scalings:
                grams.update(gntk_pass(name, ds, deep, R, sc, cache, plain_key(ds, dtype), timings, dtype=dtype,
                                       memory_limit=memory_limit))
    if args.attributes and name in ATTRIBUTES:
        attr = attribute_dataset(ds, args.data / "tu", ATTRIBUTES[name])
        for R in args.nested_mlp_layers or args.mlp_layers:  # moonshot only: the nested grid
            for sc in args.nested_scalings or args.scalings:
                grams.update(gntk_pass(name, attr, depths, R, sc, cache, {"attribute": "clip p1-p99 / rms"}, timings,
                                       tag=" attr"))
    for method in args.moonshot_pool:
        for R in args.nested_mlp_layers or args.mlp_layers:  # moonshot only: the nested grid
            for sc in args.nested_scalings or args.scalings:
                grams.update(pooled_pass(name, ds, R, sc, method, cache, plain_key(ds, dtype), timings))
    if args.edge_labels and name in EDGE_LABELS:
        rel, ambiguous = edge_label_dataset(ds, args.data / "tu", *EDGE_LABELS[name])
        timings["edge-label twins with different labels"] = ambiguous
        for R in args.nested_mlp_layers or args.mlp_layers:  # moonshot only: the nested grid
            for sc in args.nested_scalings or args.scalings:
                grams.update(relational_pass(name, rel, depths, R, sc, cache, timings))
    digests = {k: gram_digest(K) for k, K in grams.items()}
    t_grams = time.perf_counter() - t0
    if args.grams_only:
        return {}
    result = {"dataset": name, "graphs": len(ds), "depths": list(depths), "mlp_layers": list(args.mlp_layers),
              "scalings": list(args.scalings), "gram_seconds": timings, "grams_wall_s": round(t_grams, 1)}

    # Paper protocol on the GIN folds: every GNTK (NTK) candidate, plus GNNGP and WL for reference.
    # libsvm releases the GIL, so SVMs of different candidates run on threads over one copy of the Grams.
    t = time.perf_counter()
    pool = ThreadPoolExecutor(args.jobs)
    c_paper = PAPER_C[::args.paper_c_step]
    svm_seconds: list[float] = []  # per SVM sweep, as timed when computed (list.append is thread-safe)
    y_list, folds_list = y.tolist(), [te.tolist() for _, te in ds.folds]
    refined: list[dict] = []
    if not args.nested_only:  # else main() keeps the paper protocol of the stored run
        def paper_run(item, c_grid):
            k, make = item
            base, form = k.split("|")
            desc = {"paper": True, "gram": digests[base], "form": form, "C": c_grid.tolist(), "y": y_list,
                    "folds": folds_list}
            acc, seconds = paper_scores(make, y, ds.folds, c_grid, cache, desc)
            svm_seconds.append(seconds)
            return k, acc

        paper_cands = [(k, f) for k, f in forms(grams, args.paper_forms, False).items()
                       if k.split()[0] in args.paper_kernels and in_reference_grid(k.split("|")[0], depths)]
        paper_acc = {}
        for k, acc in pool.map(partial(paper_run, c_grid=c_paper), paper_cands):
            paper_acc[k] = acc
            if len(paper_acc) % 10 == 0:  # the sweep runs for up to an hour: show it moves
                _log(f"{name}: paper scores {len(paper_acc)}/{len(paper_cands)} ({time.perf_counter() - t:.0f} s)")
        paper = {k: _paper_best(acc, c_paper) for k, acc in paper_acc.items()}
        result["paper_search"] = paper_search(paper_acc, args.paper_c_step)
        result["paper_per_fold"] = per_fold_selection(paper_acc)
        # The best few GNTKs (the row compared with Table 1) again on all 120 C: a finer C grid lifts
        # mostly the kernels already near the top (so this is a lower bound on the full grid's maximum).
        if args.paper_c_step > 1 and args.paper_refine:
            top = sorted((k for k in paper if k.startswith("ntk")), key=lambda k: -paper[k]["mean"])[:args.paper_refine]
            make = dict(paper_cands)
            for k, acc in pool.map(partial(paper_run, c_grid=PAPER_C), [(k, make[k]) for k in top]):
                full = _paper_best(acc, PAPER_C)
                refined.append({"kernel": k, "coarse": paper[k], **full})
                paper[k] = full
        result["paper"], result["paper_refined"] = paper, refined
        result["paper_wall_s"] = round(time.perf_counter() - t, 1)
        result["paper_svm_s"] = svm_total(svm_seconds)
        svm_seconds.clear()
        _log(f"{name}: paper protocol over {len(paper)} kernels in {result['paper_wall_s']} s")

    # Repeated nested CV: candidate scores once, then every family.
    t = time.perf_counter()
    c_nested = np.logspace(-2, 4, args.nested_c)
    splits = repeated_splits(y, args.repeats, args.outer, seed=0)
    nested_R = args.nested_mlp_layers or args.mlp_layers
    nested_sc = args.nested_scalings or args.scalings
    cands = {k: f for k, f in forms(grams, args.nested_forms, args.sums).items() if in_grid(k, nested_R, nested_sc)}

    archive = ScoreArchive(args.out / "nested_scores" / f"{name}.json.gz")
    fingerprints = {k: gram_fingerprint(K) for k, K in grams.items()}
    y_digest = ScoreCache.key(y_list)

    def nested_run(item, r, rep):
        k, make = item
        desc = {"dataset": name, "candidate": k, "C": c_nested.tolist(), "y": y_digest, "outer": args.outer,
                "inner": args.inner, "seed": 0, "repetition": r, "splits": ScoreCache.key([te.tolist() for _, te in rep]),
                "v": 1}
        both, seconds = nested_rep_scores(make, y, rep, c_nested, args.inner, archive, desc,
                                          [fingerprints[b.strip()] for b in k.split("|")[0].split("+")])
        svm_seconds.append(seconds)
        return both

    # Repetition by repetition, each saved to the archive when done: a killed run loses at most one.
    per_rep: list[list[np.ndarray]] = []
    for r, rep in enumerate(splits):
        per_rep.append(list(pool.map(partial(nested_run, r=r, rep=rep), cands.items())))
        archive.save()
        _log(f"{name}: nested repetition {r + 1}/{len(splits)} over {len(cands)} candidates "
             f"({time.perf_counter() - t:.0f} s)")
    scores = {k: CandidateScores(np.stack([per_rep[r][i][0] for r in range(len(splits))]),
                                 np.stack([per_rep[r][i][1] for r in range(len(splits))]))
              for i, k in enumerate(cands)}
    pool.shutdown()
    families = {f: {k: s for k, s in scores.items() if f in family_of(k, depths)} for f in FAMILIES}
    nested, accs = {}, {}
    for fam, members in families.items():
        if not members:
            continue
        r = nested_select(members, c_nested)
        accs[fam] = r.accuracies
        picks: dict[str, int] = {}
        for row in r.selected:
            for s in row:
                picks[s["kernel"]] = picks.get(s["kernel"], 0) + 1
        nested[fam] = {"mean": r.mean, "std": r.std, "repeat_std": r.repeat_std, "candidates": len(members),
                       "accuracies": r.accuracies.tolist(),
                       "picks": dict(sorted(picks.items(), key=lambda kv: -kv[1])[:5])}
    # Depth profile (plot): nested CV within each depth's GNTK candidates, and WL per h.
    by_depth = {}
    for d in sorted({*depths, *deep}):
        members = {k: s for k, s in scores.items() if k.startswith(f"ntk L{d} ") and "+" not in k
                   and not on_moonshot_input(k)}
        by_depth[d] = nested_select(members, c_nested).mean
    result["nested_by_depth"] = by_depth
    # Diagnostic: the GNTK on each moonshot input alone (nested CV within its NTK candidates), to
    # tell the input's contribution from that of the larger union.
    result["nested_inputs"] = {}
    for tag in MOONSHOT_INPUTS:
        members = {k: s for k, s in scores.items() if k.startswith("ntk") and tag in k and "+" not in k}
        if members:
            r = nested_select(members, c_nested)
            result["nested_inputs"][tag.strip(" -")] = {"mean": r.mean, "std": r.std, "candidates": len(members)}
    if deep:  # the same for the GNTK over the grid's and the moonshot's depths together
        members = {k: s for k, s in scores.items()
                   if k.startswith("ntk") and "+" not in k and not on_moonshot_input(k)}
        r = nested_select(members, c_nested)
        result["nested_inputs"]["L " + ", ".join(map(str, sorted({*depths, *deep})))] = {
            "mean": r.mean, "std": r.std, "candidates": len(members)}
    result["nested_wl_by_h"] = {h: nested_select({k: s for k, s in scores.items() if k.split("|")[0] == f"wl h{h}"},
                                                 c_nested).mean for h in WL_H}
    pairs = {}
    for a, b in (("GNTK", "WL"), ("GNNGP", "WL"), ("graph_ntk best", "WL"), ("GNTK", "GNNGP")):
        if a in accs and b in accs:
            pairs[f"{a} - {b}"] = paired_comparison(accs[a], accs[b])
    result.update(nested=nested, paired=pairs, nested_candidates=list(cands), nested_wall_s=round(time.perf_counter() - t, 1),
                  nested_svm_s=svm_total(svm_seconds),
                  protocol={"repeats": args.repeats, "outer": args.outer, "inner": args.inner,
                            "nested_c": args.nested_c, "nested_forms": list(args.nested_forms),
                            "paper_c": len(c_paper), "paper_refine": len(refined), "paper_forms": list(args.paper_forms), "sums": args.sums,
                            "paper_kernels": list(args.paper_kernels), "full_depths": list(DATASETS[name][2]),
                            "candidates": len(cands), "nested_mlp_layers": list(nested_R),
                            "nested_scalings": list(nested_sc), "attributes": bool(args.attributes and name in ATTRIBUTES),
                            "edge_labels": bool(args.edge_labels and name in EDGE_LABELS),
                            "moonshot_depths": deep, "moonshot_pool": list(args.moonshot_pool)})
    _log(f"{name}: nested over {len(cands)} candidates in {result['nested_wall_s']} s: "
         + ", ".join(f"{f} {100 * v['mean']:.1f}" for f, v in nested.items()))
    return result


# What a --nested-only run keeps of the stored run: its paper protocol and the Gram grid that ran it.
PAPER_KEYS = ("depths", "mlp_layers", "scalings", "paper_search", "paper_per_fold", "paper", "paper_refined",
              "paper_wall_s", "paper_svm_s")
PAPER_PROTOCOL = ("paper_c", "paper_refine", "paper_forms", "paper_kernels")


def keep_paper(new: dict, stored: dict) -> dict:
    """``new`` (a ``--nested-only`` result) with the paper protocol of ``stored`` (an earlier run of
    the same dataset), its command as ``paper_command``, and the Gram times of both.

    >>> old = {"paper": {"k": 1}, "mlp_layers": [1, 2, 3], "command": "run A", "gram_seconds": {"a": 1},
    ...        "protocol": {"paper_c": 10, "repeats": 1}}
    >>> new = {"mlp_layers": [2], "command": "run B", "gram_seconds": {"b": 2}, "protocol": {"paper_c": 120, "repeats": 10}}
    >>> r = keep_paper(new, old)
    >>> r["paper"], r["mlp_layers"], r["paper_command"], r["protocol"], sorted(r["gram_seconds"])
    ({'k': 1}, [1, 2, 3], 'run A', {'paper_c': 10, 'repeats': 10}, ['a', 'b'])
    """
    out = {**new, **{k: stored[k] for k in PAPER_KEYS if k in stored}}
    out["paper_command"] = stored.get("paper_command", stored["command"])
    out["gram_seconds"] = {**stored.get("gram_seconds", {}), **new.get("gram_seconds", {})}
    out["protocol"] = {**new["protocol"], **{k: stored["protocol"][k] for k in PAPER_PROTOCOL
                                             if k in stored.get("protocol", {})}}
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets",
                   help="folder holding gin/ (default ../shared/datasets)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--cache-dir", type=Path, default=HERE.parent / ".cache" / "tu_gntk_v2",
                   help="verified Gram and SVM-score cache (git-ignored); reruns resume from it")
    p.add_argument("--depths", type=int, nargs="+", help="restrict the grid depths (those <= the grid's largest)")
    p.add_argument("--mlp-layers", type=int, nargs="+", default=list(MLP_LAYERS))
    p.add_argument("--scalings", nargs="+", default=list(SCALINGS), choices=SCALINGS)
    p.add_argument("--paper-c-step", type=int, default=1, help="use every k-th of the 120 paper C values")
    p.add_argument("--paper-refine", type=int, default=4,
                   help="with --paper-c-step > 1: rerun the best N GNTK kernels on all 120 C")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="SVMs fitted at once (threads)")
    p.add_argument("--paper-forms", nargs="+", default=["raw", "cos"], choices=["raw", "cos"])
    p.add_argument("--nested-forms", nargs="+", default=["raw", "cos"], choices=["raw", "cos"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--outer", type=int, default=10)
    p.add_argument("--inner", type=int, default=5)
    p.add_argument("--nested-c", type=int, default=25, help="number of log-spaced C values, 10^-2..10^4")
    p.add_argument("--nested-mlp-layers", type=int, nargs="+",
                   help="R values whose candidates enter the nested CV (default: all of --mlp-layers)")
    p.add_argument("--nested-scalings", nargs="+", choices=SCALINGS,
                   help="scalings whose candidates enter the nested CV (default: all of --scalings)")
    p.add_argument("--attributes", action="store_true",
                   help="moonshot: add GNTK/GNNGP Grams with PROTEINS' continuous node attribute (TU files "
                        "under --data/tu), for the nested grid's R and scalings")
    p.add_argument("--edge-labels", action="store_true",
                   help="moonshot: add relational GNTK/GNNGP Grams over MUTAG's and PTC's bond types (TU files "
                        "under --data/tu, matched to the GIN graphs), for the nested grid's R and scalings")
    p.add_argument("--no-sums", dest="sums", action="store_false", help="leave the NTK+WL sums out")
    p.add_argument("--quick", action="store_true", help="smoke test: MUTAG, R=1, 2x10 splits, 3-fold inner, few C")
    p.add_argument("--paper-kernels", nargs="+", default=["ntk", "nngp", "wl"], choices=["ntk", "nngp", "wl"],
                   help="kernels run through the paper protocol (the table's GNTK row needs ntk)")
    p.add_argument("--memory-limit", type=float, help="GiB one engine block may use (default: 75%% of free memory)")
    p.add_argument("--moonshot-depths", type=int, nargs="+", default=[],
                   help="moonshot: add GNTK/GNNGP Grams of these depths L (beyond the grid's) for the nested grid")
    p.add_argument("--moonshot-pool", nargs="+", default=[], choices=["graclus", "ndp", "kmis"],
                   help="moonshot: add hierarchical GNTK/GNNGP Grams (2 levels of 1 or 2 blocks, coarsened by "
                        "this structure-only method between them) for the nested grid's R and scalings")
    p.add_argument("--grams-only", action="store_true", help="compute and cache the Grams, nothing else")
    p.add_argument("--nested-only", action="store_true",
                   help="run the nested protocol only, keeping the paper protocol of the run stored in tu_gntk.json "
                        "(e.g. to add repetitions without the paper grid's Grams)")
    p.add_argument("--report-only", action="store_true", help="rebuild tu_gntk.md and the plots from tu_gntk.json")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.datasets, args.mlp_layers, args.repeats, args.inner = ["MUTAG"], [1], 2, 3
        args.nested_c, args.paper_c_step, args.nested_forms = 7, 20, ["cos"]
    import tu_gntk_report as report  # tables and plots, in their own file

    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "tu_gntk.json"
    stored = json.loads(json_path.read_text()) if json_path.exists() else {}
    if not isinstance(stored, dict) or "datasets" not in stored:  # absent, or the old script's format
        stored = {"datasets": {}}
    if args.nested_only:  # checked before any work
        missing = [d for d in args.datasets if "paper" not in stored["datasets"].get(d, {})]
        if missing:
            raise SystemExit(f"--nested-only keeps the paper protocol stored in {json_path}, which has none for "
                             f"{', '.join(missing)}: run those datasets without --nested-only first")
    if not args.report_only:
        command = "nice -n 19 .venv/bin/python experiments/tu_gntk.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        for name in args.datasets:
            _log(f"{name}: start")
            t = time.perf_counter()
            r = run_dataset(name, args)
            if args.grams_only:
                continue
            r["command"], r["wall_s"] = command, round(time.perf_counter() - t, 1)
            if json_path.exists():  # another run may have added datasets meanwhile: merge, don't overwrite
                stored["datasets"].update(json.loads(json_path.read_text()).get("datasets", {}))
            stored["datasets"][name] = keep_paper(r, stored["datasets"][name]) if args.nested_only else r
            tmp = json_path.with_name(json_path.name + ".tmp")  # never a half-written results file
            tmp.write_text(json.dumps(stored, indent=1))
            os.replace(tmp, json_path)
            report.write_all(stored, args.out, DATASETS)
    if not args.grams_only:
        report.write_all(stored, args.out, DATASETS)
        _log(f"wrote {args.out / 'tu_gntk.md'} ({platform.python_version()})")


if __name__ == "__main__":
    main()
