"""The ``graph-ntk`` command: GNTK Gram matrices and SVM evaluation from the shell.

Subcommands::

    graph-ntk gram --dataset-dir ../shared/datasets/gin --name MUTAG --output mutag.npy
    graph-ntk svm  --gram mutag.npy --dataset-dir ../shared/datasets/gin --name MUTAG
    graph-ntk demo

``gram`` computes the GNTK (or GNNGP) Gram matrix of a benchmark dataset with a progress
bar and, with ``--cache-dir``, resumes an interrupted run without redoing finished blocks;
the output file is written atomically, so it exists only once complete. ``svm`` evaluates a
saved Gram matrix with the GNTK paper's protocol (best ``C`` on the test folds) and with
nested cross-validation. ``demo`` does both on the built-in synthetic dataset in seconds.

Bad input (unknown dataset, missing or malformed file, inconsistent options) ends with a
one-line ``graph-ntk: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["main"]

_PROG = "graph-ntk"
# The demo's architecture and grids: chosen so that `graph-ntk demo` runs in seconds while
# staying close to the paper (GNTK with 2 blocks scores as well as deeper ones on the demo data).
_DEMO_BLOCKS = 2
_DEMO_C_GRID = np.logspace(-2, 4, 25)
_DEMO_NESTED_C_GRID = np.logspace(-2, 4, 13)
_DEMO_INNER_SPLITS = 3


class _UsageError(Exception):
    """A command-line mistake, reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr (no usage dump) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _gigabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in GiB, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size in GiB, got {value}")
    return int(value * (1 << 30))


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("dataset (give --dataset-dir and --name, or --demo)")
    src.add_argument("--dataset-dir", type=Path, help="folder with one sub-folder per dataset "
                     "(e.g. ../shared/datasets/gin); a parent holding gin/ or tu/ works too")
    src.add_argument("--name", help="dataset name, e.g. MUTAG, PTC, NCI1, PROTEINS, IMDBBINARY")
    src.add_argument("--format", choices=("gin", "tu"), default="gin", help="file format (default: gin)")
    src.add_argument("--degree-as-tag", action="store_true",
                     help="use node degrees as node labels (as GIN/GNTK do for the social datasets)")
    src.add_argument("--demo", action="store_true", help="use the built-in synthetic dataset instead")
    src.add_argument("--demo-graphs", type=_positive_int, default=300, help=argparse.SUPPRESS)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_PROG, description="Exact GNTK / GNNGP Gram matrices of graph datasets and "
                                              "their SVM evaluation.")
    sub = parser.add_subparsers(dest="command", metavar="{gram,svm,demo}", parser_class=_Parser)
    sub.required = True

    g = sub.add_parser("gram", help="compute a Gram matrix and save it as .npy",
                       description="Compute the GNTK (or GNNGP) Gram matrix of a dataset.")
    _add_dataset_args(g)
    arch = g.add_argument_group("architecture (GNTK of Du et al. 2019)")
    arch.add_argument("--blocks", type=_positive_int, default=4, help="L, aggregation blocks (default 4)")
    arch.add_argument("--mlp-layers", type=_positive_int, default=2, help="R, ReLU layers per block (default 2)")
    arch.add_argument("--aggregation", choices=("sum", "mean"), default="sum", help="neighbour scaling (default sum)")
    arch.add_argument("--no-jk", action="store_true", help="read out only the last block (no jumping knowledge)")
    arch.add_argument("--readout", choices=("sum", "mean"), default="sum", help="graph readout (default sum)")
    comp = g.add_argument_group("computation")
    comp.add_argument("--kernel", choices=("ntk", "nngp"), default="ntk", help="GNTK or GNNGP (default ntk)")
    comp.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="precision (default float64)")
    comp.add_argument("--method", choices=("auto", "colour", "nodes"), default="auto",
                      help="colour-compressed engine, padded node batches, or auto (default)")
    comp.add_argument("--implementation", choices=("dense", "sparse"), default="dense",
                      help="graph batches of the node path (default dense)")
    comp.add_argument("--block-size", type=_positive_int, default=None, help="graphs per block side")
    comp.add_argument("--memory-limit", type=_gigabytes, default=4 << 30, metavar="GIB",
                      help="approximate memory per block in GiB (default 4)")
    comp.add_argument("--cache-dir", type=Path, help="keep finished blocks here; a rerun resumes")
    comp.add_argument("--output", type=Path, required=True, help="where to write the matrix (.npy)")
    comp.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("svm", help="SVM accuracy of a saved Gram matrix",
                       description="Evaluate a Gram matrix with the GNTK paper's protocol and nested CV.")
    s.add_argument("--gram", type=Path, required=True, help="the .npy written by 'graph-ntk gram'")
    _add_dataset_args(s)
    s.add_argument("--grid", choices=("paper", "coarse"), default="paper",
                   help="C grid of the paper protocol: GNTK's 120 values, or 25 (default paper)")
    s.add_argument("--inner-splits", type=_positive_int, default=5, help="inner folds of nested CV (default 5)")
    s.add_argument("--gp", action="store_true", help="also GP / kernel-regression classification (nested)")

    d = sub.add_parser("demo", help="Gram + SVM on the built-in synthetic dataset (seconds)",
                       description="Generate the synthetic demo dataset, compute its GNTK Gram matrix "
                                   "and evaluate it with both SVM protocols.")
    d.add_argument("--n-graphs", type=_positive_int, default=300, help=argparse.SUPPRESS)
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _load_dataset(args: argparse.Namespace):
    from graph_ntk.datasets import load_gin, load_tu, make_demo_dataset

    if args.demo:
        if args.dataset_dir is not None or args.name is not None:
            raise _UsageError("give either --demo or --dataset-dir/--name, not both")
        return make_demo_dataset(args.demo_graphs)
    if args.dataset_dir is None or args.name is None:
        raise _UsageError("give --dataset-dir and --name (or --demo)")
    root = args.dataset_dir
    # Accept the parent of gin/ and tu/ (e.g. ../shared/datasets) as well as the format folder.
    if not (root / args.name).is_dir() and (root / args.format / args.name).is_dir():
        root = root / args.format
    loader = load_gin if args.format == "gin" else load_tu
    return loader(root, args.name, degree_as_tag=args.degree_as_tag)


def _order_fingerprint(ds) -> str:
    """Hash of the graph order by (nodes, arcs): the same for GIN and TU files that list the
    same graphs in the same order (both loaders drop duplicate arcs), different when a format
    orders them otherwise."""
    sizes = [(g.num_nodes, g.num_edges) for g in ds.graphs]
    return hashlib.sha256(json.dumps(sizes).encode()).hexdigest()


def _sidecar(gram_path: Path) -> Path:
    return gram_path.with_name(gram_path.name + ".json")


def _write_gram(path: Path, K: np.ndarray, info: dict) -> None:
    """Write ``K`` to ``path`` with its sidecar ``path.json`` (lets `graph-ntk svm` check that
    its labels are in the Gram's graph order, and the matrix by its SHA-256) such that a kill
    at any moment never leaves ``path`` without its own sidecar: first the old matrix goes,
    then the sidecar appears, then the matrix (each write atomic)."""
    from graph_ntk.engine.files import _write_atomic, save_npy_atomic

    K = np.ascontiguousarray(K)
    info = {**info, "dtype": K.dtype.str, "shape": list(K.shape), "sha256": hashlib.sha256(K.data).hexdigest()}
    path.unlink(missing_ok=True)
    text = json.dumps(info).encode()
    _write_atomic(_sidecar(path), lambda f: f.write(text))
    save_npy_atomic(path, K)


def _cmd_gram(args: argparse.Namespace) -> int:
    from graph_ntk.engine import GNTK, gram
    from graph_ntk.engine.files import check_destinations

    if args.output.suffix != ".npy":
        raise _UsageError(f"--output must end in .npy, got {args.output}")
    ds = _load_dataset(args)
    model = GNTK(args.blocks, args.mlp_layers, args.aggregation, not args.no_jk, args.readout)
    # The order sidecar must never be missing beside a finished output, so gram() does not
    # write the output itself: check it first, then (old output removed) sidecar, then output.
    itemsize = 8 if args.dtype == "float64" else 4
    check_destinations(args.output, args.cache_dir, len(ds) ** 2 * itemsize)
    start = time.perf_counter()
    K = gram(model, ds, get=args.kernel, dtype=args.dtype, method=args.method,
             implementation=args.implementation.upper(), block_size=args.block_size,
             memory_limit=args.memory_limit, cache_dir=args.cache_dir, progress=not args.no_progress)
    _write_gram(args.output, K, {"dataset": ds.name, "graphs": len(ds), "order_fingerprint": _order_fingerprint(ds)})
    print(f"{ds.name}: {args.kernel} Gram {K.shape[0]}x{K.shape[1]} ({args.dtype}) of {model} "
          f"in {time.perf_counter() - start:.1f} s -> {args.output}")
    return 0


def _load_gram(path: Path, n: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (Gram matrix written by 'graph-ntk gram')")
    try:
        K = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(K, np.ndarray) or K.shape != (n, n):
        shape = getattr(K, "shape", "an archive")
        raise ValueError(f"{path}: expected a {n}x{n} Gram matrix for this dataset, got {shape}")
    return K


def _folds(ds):
    from graph_ntk.evaluation import default_folds

    if ds.folds is not None:
        return ds.folds, "the dataset's 10 folds"
    return default_folds(ds.y), "10 stratified folds (seed 0): the dataset defines none"


def _cmd_svm(args: argparse.Namespace) -> int:
    from graph_ntk.evaluation import NESTED_C_GRID, PAPER_C_GRID, evaluate

    ds = _load_dataset(args)
    K = _load_gram(args.gram, len(ds))
    sidecar = _sidecar(args.gram)
    if sidecar.is_file() and json.loads(sidecar.read_text()).get("order_fingerprint") != _order_fingerprint(ds):
        raise ValueError(f"{args.gram} was computed for graphs in another order than {ds.name} as loaded here "
                         f"(see {sidecar.name}); use the same --dataset-dir and --format as for 'graph-ntk gram'")
    folds, where = _folds(ds)
    protocols = ("paper", "nested", "gp") if args.gp else ("paper", "nested")
    grid = PAPER_C_GRID if args.grid == "paper" else _DEMO_C_GRID
    start = time.perf_counter()
    result = evaluate(K, ds.y, folds, name=ds.name, protocols=protocols, c_grid=grid,
                      nested_c_grid=NESTED_C_GRID, inner_splits=args.inner_splits)
    print(f"{ds.name}: {len(ds)} graphs, {where}; {time.perf_counter() - start:.1f} s\n")
    print(result.to_markdown())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from graph_ntk.datasets import make_demo_dataset
    from graph_ntk.evaluation import evaluate
    from graph_ntk.engine import GNTK, gram

    t0 = time.perf_counter()
    ds = make_demo_dataset(args.n_graphs)
    model = GNTK(num_blocks=_DEMO_BLOCKS)
    print(f"demo: {len(ds)} synthetic graphs in {len(np.unique(ds.y))} classes (rings, trees, "
          f"scale-free, grids; 5% label noise), model {model}")
    t1 = time.perf_counter()
    K = gram(model, ds, get="ntk", method="colour", progress=not args.no_progress)
    t2 = time.perf_counter()
    folds, where = _folds(ds)
    result = evaluate(K, ds.y, folds, name=ds.name, c_grid=_DEMO_C_GRID, nested_c_grid=_DEMO_NESTED_C_GRID,
                      inner_splits=_DEMO_INNER_SPLITS)
    t3 = time.perf_counter()
    print(f"Gram {K.shape[0]}x{K.shape[1]} (colour engine): {t2 - t1:.1f} s; SVM on {where} "
          f"({len(_DEMO_C_GRID)} C values; nested: {len(_DEMO_NESTED_C_GRID)} C values, "
          f"{_DEMO_INNER_SPLITS} inner folds): {t3 - t2:.1f} s\n")
    print(result.to_markdown())
    print(f"\ntotal {t3 - t0:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``graph-ntk`` command line; returns the exit status.

    Example:
        >>> main(["demo", "--no-progress"])  # doctest: +SKIP
        0
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        command = {"gram": _cmd_gram, "svm": _cmd_svm, "demo": _cmd_demo}[args.command]
        return command(args)
    except (_UsageError, ValueError, OSError) as exc:
        # Unknown datasets, missing or malformed files, bad options: one line, no traceback.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{_PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted (finished blocks stay in --cache-dir, if given)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
