"""The ``graph-ntk`` command: GNTK Gram matrices and SVM evaluation from the shell.

Subcommands::

    graph-ntk gram --dataset-dir ../shared/datasets/gin --name MUTAG --output mutag.npy
    graph-ntk gram --dataset-dir DIR --name MUTAG --model my_net.py:net --output k.npy
    graph-ntk gram --dataset-dir DIR --name MUTAG --test-dataset TEST_DIR --output k_test.npy
    graph-ntk svm  --gram mutag.npy --dataset-dir ../shared/datasets/gin --name MUTAG
    graph-ntk node --dataset-dir ../shared/datasets/planetoid --name cora
    graph-ntk demo

``gram`` computes the Gram matrix of a benchmark dataset for the GNTK (flags) or any model
(``--model FILE.py:NAME``), with a progress bar and, with ``--cache-dir``, resumes an
interrupted run without redoing finished blocks (with ``--scheduler`` or ``--workers`` its
blocks run as Dask tasks, see :mod:`graph_ntk.engine.distributed`); the output file is written atomically,
so it exists only once complete, with a JSON sidecar ``<output>.json`` (architecture,
dataset fingerprint, settings). With ``--test-dataset`` it writes the *test x train*
kernel: rows are the test graphs, columns the training graphs (what
``SVC(kernel='precomputed').predict`` takes). ``svm`` evaluates a saved Gram matrix with
the GNTK paper's protocol (best ``C`` on the test folds) and with nested cross-validation.
``node`` classifies the nodes of a Planetoid graph with a node-level GP. ``demo`` runs
gram and svm on the built-in synthetic dataset in seconds.

Every failure ends with one line ``graph-ntk: error: ...`` on stderr and a non-zero exit
status: 2 for bad input (unknown dataset, missing or malformed file, inconsistent
options), 1 for anything else (e.g. out of memory). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import inspect
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from graph_ntk import gram_files

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


# Exceptions that mean "bad input" (exit 2); anything else is exit 1.
_INPUT_ERRORS = (_UsageError, ValueError, TypeError, OSError, LookupError, EOFError)


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


def _blocks(text: str) -> tuple[int, int]:
    """``'4'`` -> (4, 4); ``'1-13'`` -> (1, 13): every depth of the range from one run."""
    lo, sep, hi = text.partition("-")
    try:
        lo_n, hi_n = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected L or a range A-B of blocks (e.g. 4 or 1-13), got {text!r}") from None
    if lo_n < 1 or hi_n < lo_n:
        raise argparse.ArgumentTypeError(f"expected 1 <= A <= B in --blocks A-B, got {text!r}")
    return lo_n, hi_n


def _inner_splits(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"inner cross-validation needs at least 2 folds, got {value}")
    return value


def _gigabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in GiB, got {text!r}") from None
    if not value > 0 or value > 1 << 30:  # NaN, inf and absurd sizes too
        raise argparse.ArgumentTypeError(f"expected a positive, finite size in GiB, got {text}")
    return int(value * (1 << 30))


def _add_debug(p: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    # SUPPRESS in the subcommands: `graph-ntk --debug gram ...` is not undone by gram's default.
    p.add_argument("--debug", action="store_true", default=default, help="show the traceback of a failure")


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
    _add_debug(parser, default=False)
    from graph_ntk import __version__

    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{gram,svm,node,demo}", parser_class=_Parser)
    sub.required = True

    g = sub.add_parser("gram", help="compute a Gram matrix and save it as .npy",
                       description="Compute the Gram matrix of a dataset for the GNTK (or GNNGP) or any "
                                   "model given with --model.")
    _add_dataset_args(g)
    test = g.add_argument_group("test x train kernel (optional)")
    test.add_argument("--test-dataset", type=Path, metavar="DIR",
                      help="folder of the test dataset (same --format); writes the (test graphs x training "
                           "graphs) kernel instead of the square Gram")
    test.add_argument("--test-name", help="test dataset name (default: --name)")
    test.add_argument("--handle-unknown", choices=("error", "ignore"), default="error",
                      help="a test node tag (or degree, with --degree-as-tag) that the training file lacks: "
                           "refuse it (default) or give it the zero feature row; the test file is always "
                           "encoded with the training file's tags, matched by raw value")
    arch = g.add_argument_group("architecture (GNTK of Du et al. 2019, or --model)")
    arch.add_argument("--model", metavar="FILE.py:NAME",
                      help="NAME from a Python file: a stax triple (init_fn, apply_fn, kernel_fn), a "
                           "graph_ntk.engine.GNTK, or a function of no arguments returning one")
    arch.add_argument("--blocks", type=_blocks, default=None, metavar="L|A-B",
                      help="L, aggregation blocks (default 4); a range A-B writes every depth A..B, with and "
                           "without jumping knowledge, from one run into one .npz")
    arch.add_argument("--mlp-layers", type=_positive_int, default=None, help="R, ReLU layers per block (default 2)")
    arch.add_argument("--aggregation", choices=("sum", "mean"), default=None, help="neighbour scaling (default sum)")
    arch.add_argument("--no-jk", action="store_true", help="read out only the last block (no jumping knowledge)")
    arch.add_argument("--readout", choices=("sum", "mean"), default=None, help="graph readout (default sum)")
    comp = g.add_argument_group("computation")
    comp.add_argument("--kernel", choices=("ntk", "nngp"), default="ntk", help="GNTK or GNNGP (default ntk)")
    comp.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="precision (default float64)")
    comp.add_argument("--method", choices=("auto", "colour", "nodes"), default="auto",
                      help="colour-compressed engine, padded node batches, or auto (default)")
    comp.add_argument("--implementation", choices=("dense", "sparse"), default="dense",
                      help="graph batches of the node path (default dense)")
    comp.add_argument("--block-size", type=_positive_int, default=None, help="graphs per block side")
    comp.add_argument("--backend", choices=("auto", "numpy", "jax"), default="auto",
                      help="where the item engine's tiles run: numpy (CPU threads), jax (every local JAX "
                           "device), or auto: jax only when a GPU/TPU is present (default)")
    comp.add_argument("--memory-limit", type=_gigabytes, default=None, metavar="GIB",
                      help="approximate memory per block in GiB (default: 75%% of the memory available)")
    comp.add_argument("--cache-dir", type=Path, help="keep finished blocks here; a rerun resumes")
    comp.add_argument("--output", type=Path, required=True, help="where to write the matrix (.npy)")
    comp.add_argument("--no-progress", action="store_true", help="no progress bar")
    dist = g.add_argument_group("Dask (pip install 'graph_ntk[dask]'; needs --cache-dir, shared by all workers)")
    where = dist.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="run the blocks on this Dask scheduler, "
                       "e.g. tcp://10.0.0.1:8786 (started with 'dask scheduler')")
    where.add_argument("--workers", type=_positive_int, metavar="N", help="run the blocks on a local Dask "
                       "cluster of N worker processes")
    _add_debug(g)

    s = sub.add_parser("svm", help="SVM accuracy of a saved Gram matrix",
                       description="Evaluate a Gram matrix with the GNTK paper's protocol and nested CV.")
    s.add_argument("--gram", type=Path, required=True,
                   help="the .npy (or .npz, with --key) written by 'graph-ntk gram'")
    s.add_argument("--key", help="which Gram of an .npz archive (e.g. L3_jk from 'gram --blocks 1-4')")
    s.add_argument("--json", action="store_true", help="print the result as JSON (machine-readable) instead of a table")
    _add_dataset_args(s)
    s.add_argument("--grid", choices=("paper", "coarse"), default="paper",
                   help="C grid of the paper protocol: GNTK's 120 values, or 25 (default paper)")
    s.add_argument("--inner-splits", type=_inner_splits, default=5, help="inner folds of nested CV (default 5)")
    s.add_argument("--gp", action="store_true", help="also GP / kernel-regression classification (nested)")
    _add_debug(s)

    n = sub.add_parser("node", help="node classification on a Planetoid graph with a node-level GP",
                       description="GP classification of the nodes of one Planetoid graph (GCN public split) "
                                   "with the NNGP or NTK of a node-level GNN; the ridge is chosen on the "
                                   "validation nodes.")
    n.add_argument("--dataset-dir", type=Path, required=True,
                   help="folder holding <name>/ind.<name>.* (e.g. ../shared/datasets/planetoid)")
    n.add_argument("--name", required=True, help="cora, citeseer or pubmed")
    n.add_argument("--model-preset", choices=tuple(_NODE_PRESETS), default="gcn", help="network (default gcn)")
    n.add_argument("--layers", type=_positive_int, default=None,
                   help="propagation layers (default: the preset's, 2; gcnii 4)")
    n.add_argument("--kernel", choices=("nngp", "ntk"), default="nngp", help="kernel (default nngp)")
    how = n.add_mutually_exclusive_group()
    how.add_argument("--exact", action="store_true", help="exact N x N kernel (default)")
    how.add_argument("--landmarks", type=_positive_int, metavar="M", help="low-rank Nystrom kernel with M landmarks")
    n.add_argument("--landmark-method", choices=("random", "kmeans++"), default="random",
                   help="landmark choice with --landmarks (default random)")
    n.add_argument("--seed", type=int, default=0, help="landmark seed (default 0)")
    _add_debug(n)

    d = sub.add_parser("demo", help="Gram + SVM on the built-in synthetic dataset (seconds)",
                       description="Generate the synthetic demo dataset, compute its GNTK Gram matrix "
                                   "and evaluate it with both SVM protocols.")
    d.add_argument("--n-graphs", type=_positive_int, default=300, help=argparse.SUPPRESS)
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_debug(d)
    return parser


_NODE_PRESETS = {"gcn": 2, "gin": 2, "sage": 2, "gcnii": 4}  # preset -> default number of layers


def _load_dataset(args: argparse.Namespace):
    from graph_ntk.datasets import make_demo_dataset

    if args.demo:
        if args.dataset_dir is not None or args.name is not None:
            raise _UsageError("give either --demo or --dataset-dir/--name, not both")
        return make_demo_dataset(args.demo_graphs)
    if args.dataset_dir is None or args.name is None:
        raise _UsageError("give --dataset-dir and --name (or --demo)")
    return _load_from(args.dataset_dir, args.name, args)


def _load_from(root: Path, name: str, args: argparse.Namespace):
    from graph_ntk.datasets import load_gin, load_tu

    # Accept the parent of gin/ and tu/ (e.g. ../shared/datasets) as well as the format folder.
    if not (root / name).is_dir() and (root / args.format / name).is_dir():
        root = root / args.format
    loader = load_gin if args.format == "gin" else load_tu
    return loader(root, name, degree_as_tag=args.degree_as_tag)


def _load_model(spec: str) -> tuple[Any, str, str]:
    """``FILE.py:NAME`` -> (model, description, cache config); every problem is one line."""
    from graph_ntk.engine import GNTK

    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name.isidentifier():
        raise _UsageError(f"--model must be FILE.py:NAME (NAME a Python identifier), got {spec!r}")
    path = Path(path_text)
    if path.suffix != ".py":
        raise _UsageError(f"--model {spec}: {path} is not a Python file (.py)")
    if not path.is_file():
        raise FileNotFoundError(f"--model {spec}: {path}: file not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    module_spec = importlib.util.spec_from_file_location(f"_graph_ntk_model_{digest[:16]}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's file: report, never a traceback
        raise _UsageError(f"--model {spec}: running {path} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, name):
        names = sorted(k for k in vars(module) if not k.startswith("_"))
        raise _UsageError(f"--model {spec}: {path} defines no {name!r} (it defines {', '.join(names) or 'nothing'})")
    obj = getattr(module, name)

    from graph_ntk.nn import Network

    def is_model(o: Any) -> bool:
        return isinstance(o, (GNTK, Network)) or (isinstance(o, tuple) and len(o) == 3 and callable(o[2]))

    if not is_model(obj) and callable(obj):
        try:
            inspect.signature(obj).bind()
        except TypeError:
            raise _UsageError(f"--model {spec}: {name} is a function that needs arguments; give a stax triple, a "
                              f"GNTK, or a function of no arguments returning one") from None
        except ValueError:
            pass  # no signature (a builtin): just try it
        try:
            obj = obj()
        except Exception as exc:
            raise _UsageError(f"--model {spec}: calling {name}() failed: {type(exc).__name__}: {exc}") from exc
    if not is_model(obj):
        raise _UsageError(f"--model {spec}: {name} is a {type(obj).__name__}; expected a stax triple "
                          f"(init_fn, apply_fn, kernel_fn), a graph_ntk.engine.GNTK, or a function of no "
                          f"arguments returning one")
    config = f"{path.resolve()}:{name} sha256={digest}"
    return obj, _describe_model(obj, f"{spec} (sha256 {digest[:16]})"), config


def _describe_model(model: Any, fallback: str) -> str:
    """The architecture as text for the sidecar: the GNTK's fields, the layer program of a
    ``graph_ntk.nn`` description, else ``fallback`` (the model file)."""
    from graph_ntk.engine import GNTK
    from graph_ntk.program import describe

    if isinstance(model, GNTK):
        return repr(model)
    program = getattr(model, "program", None)
    return fallback if program is None else describe(program)


def _gram_model(args: argparse.Namespace) -> tuple[Any, str, str | None]:
    from graph_ntk.engine import GNTK

    flags = {"--blocks": args.blocks, "--mlp-layers": args.mlp_layers, "--aggregation": args.aggregation,
             "--readout": args.readout, "--no-jk": args.no_jk or None}
    if args.model is not None:
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            raise _UsageError(f"{', '.join(given)} describe the built-in GNTK; with --model the file describes the "
                              f"network")
        return _load_model(args.model)
    model = GNTK((args.blocks or (4, 4))[1], args.mlp_layers or 2, args.aggregation or "sum", not args.no_jk,
                 args.readout or "sum")
    return model, repr(model), None


def _cmd_gram(args: argparse.Namespace) -> int:
    from graph_ntk.engine import gram
    from graph_ntk.engine.files import check_destinations

    grid = args.blocks is not None and args.blocks[0] != args.blocks[1]
    wanted = ".npz" if grid else ".npy"
    if args.output.suffix != wanted:
        raise _UsageError(f"--output must end in {wanted}" + (" (one array per depth with --blocks A-B)" if grid else "")
                          + f", got {args.output}")
    if grid and args.model is not None:
        raise _UsageError("--blocks A-B is for the built-in GNTK, not --model")
    if (args.scheduler or args.workers) and args.cache_dir is None:
        raise _UsageError("--scheduler and --workers need --cache-dir: the Dask workers write finished blocks "
                          "there (on a cluster, a folder on a file system shared by all machines)")
    if (args.scheduler or args.workers) and importlib.util.find_spec("distributed") is None:
        raise _UsageError("--scheduler and --workers need Dask: pip install 'graph_ntk[dask]'")
    if args.test_name is not None and args.test_dataset is None:
        raise _UsageError("--test-name needs --test-dataset DIR")
    if args.test_dataset is not None and args.test_name is None and args.name is None:
        raise _UsageError("with --demo, give the test dataset's --test-name")
    model, architecture, config = _gram_model(args)
    ds = _load_dataset(args)
    test_ds = None if args.test_dataset is None else _load_from(args.test_dataset, args.test_name or args.name, args)
    # The sidecar must never be missing beside a finished output, so gram() does not write the
    # output itself: check it first, then (old output removed) sidecar, then output.
    itemsize = 8 if args.dtype == "float64" else 4
    check_destinations(args.output, args.cache_dir, len(ds) * len(test_ds or ds) * itemsize)
    start = time.perf_counter()
    # Test x train: rows are the test graphs, columns the training graphs.
    rows, cols = (ds, None) if test_ds is None else (test_ds, ds)
    with contextlib.ExitStack() as stack:
        scheduler = args.scheduler
        if args.workers:
            from distributed import LocalCluster

            # One thread per worker: the engines already use every core they get.
            cluster = stack.enter_context(LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                                       processes=True, dashboard_address=None))
            scheduler = cluster.scheduler_address
        # The training file's encoding, frozen: the test file's tags are re-coded into it by
        # raw value (each file numbers its own tags), unseen ones as --handle-unknown says.
        encoding = ds.encoding.with_unknown(args.handle_unknown) if ds.encoding.tags is not None else ds.encoding
        K = gram(model, rows, cols, encoding=encoding, get=args.kernel, dtype=args.dtype, method=args.method,
                 implementation=args.implementation.upper(), block_size=args.block_size,
                 memory_limit=args.memory_limit, cache_dir=args.cache_dir, progress=not args.no_progress,
                 config=config, scheduler=scheduler, all_depths=grid, backend=args.backend)
    if grid:  # keys L{depth}_jk / L{depth}_nojk for the requested depths
        K = {f"L{d}_{'jk' if jk else 'nojk'}": k for (d, jk), k in sorted(K.items()) if d >= args.blocks[0]}
    settings = {"get": args.kernel, "dtype": args.dtype, "method": args.method,
                "implementation": args.implementation, "format": args.format, "degree_as_tag": args.degree_as_tag}
    gram_files.write_gram(args.output, K, gram_files.sidecar_info(ds, architecture, settings, encoding, test_ds))
    what = "Gram" if test_ds is None else f"test x train kernel (rows: {test_ds.name} test graphs, columns: " \
                                          f"{ds.name} training graphs)"
    shape = next(iter(K.values())).shape if grid else K.shape
    what = f"{len(K)} Grams (depths {args.blocks[0]}-{args.blocks[1]}, with and without JK)" if grid else what
    print(f"{ds.name}: {args.kernel} {what} {shape[0]}x{shape[1]} ({args.dtype}) of {architecture} "
          f"in {time.perf_counter() - start:.1f} s -> {args.output}")
    return 0


def _folds(ds):
    from graph_ntk.evaluation import default_folds

    if ds.folds is not None:
        return ds.folds, "the dataset's 10 folds"
    return default_folds(ds.y), "10 stratified folds (seed 0): the dataset defines none"


def _cmd_svm(args: argparse.Namespace) -> int:
    from graph_ntk.evaluation import NESTED_C_GRID, PAPER_C_GRID, evaluate

    ds = _load_dataset(args)
    info = gram_files.read_sidecar(args.gram)
    if info is not None and info.get("kind", "gram") != "gram":
        raise ValueError(f"{args.gram} is a {info.get('kind')} kernel (see {gram_files.sidecar(args.gram).name}); svm "
                         f"cross-validates the square Gram of one dataset")
    K = gram_files.read_square_gram(args.gram, len(ds), info, ds, args.key)
    if info is None:  # warned only once the Gram itself passed its checks: errors stay one line
        print(f"{_PROG}: warning: no {gram_files.sidecar(args.gram).name} next to {args.gram}: cannot check that the Gram's "
              f"graph order matches {ds.name}'s (write Grams with 'graph-ntk gram')", file=sys.stderr)
    if info is not None and not args.json:
        settings = info.get("settings", {})
        text = ", ".join(f"{k}={v}" for k, v in settings.items()) if isinstance(settings, dict) else settings
        print(f"{args.gram}: {info.get('architecture', 'architecture not recorded')}; {text or 'no settings'}")
    folds, where = _folds(ds)
    protocols = ("paper", "nested", "gp") if args.gp else ("paper", "nested")
    grid = PAPER_C_GRID if args.grid == "paper" else _DEMO_C_GRID
    start = time.perf_counter()
    result = evaluate(K, ds.y, folds, name=ds.name, protocols=protocols, c_grid=grid,
                      nested_c_grid=NESTED_C_GRID, inner_splits=args.inner_splits)
    if args.json:
        print(json.dumps({**result.to_dict(), "gram": str(args.gram), "key": args.key, "graphs": len(ds),
                          "folds": where, "seconds": round(time.perf_counter() - start, 3),
                          "sidecar": info}, default=str))
        return 0
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


def _cmd_node(args: argparse.Namespace) -> int:
    from graph_ntk.datasets import load_planetoid
    from graph_ntk.models import node as presets
    from graph_ntk.node_inference import node_gp

    root = args.dataset_dir
    # Accept the parent of planetoid/ (e.g. ../shared/datasets) as well.
    if not (root / args.name).is_dir() and (root / "planetoid" / args.name.lower()).is_dir():
        root = root / "planetoid"
    data = load_planetoid(root, args.name)
    layers = args.layers or _NODE_PRESETS[args.model_preset]
    network = getattr(presets, args.model_preset)(layers)
    if args.landmarks is None:
        method, kwargs, how = "exact", {}, "exact"
    else:
        method, how = "lowrank", f"{args.landmarks} {args.landmark_method} landmarks"
        kwargs = {"num_landmarks": args.landmarks, "landmark_method": args.landmark_method, "seed": args.seed}
    start = time.perf_counter()
    res = node_gp(network, data.x, data.edge_index, data.y, data.train_idx, data.val_idx, data.test_idx,
                  data.num_classes, get=args.kernel, method=method, **kwargs)
    print(f"{data.name}: {data.num_nodes} nodes, {data.num_edges} edges, {data.num_classes} classes; split "
          f"{data.train_idx.size}/{data.val_idx.size}/{data.test_idx.size} (train/val/test); "
          f"{time.perf_counter() - start:.1f} s\n")
    print("| dataset | model | kernel | method | ridge | val acc (%) | test acc (%) | mean test variance |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {data.name} | {args.model_preset}({layers}) | {args.kernel} | {how} | {res.reg:.3g} | "
          f"{100 * res.val_accuracy:.1f} | {100 * res.test_accuracy:.1f} | {float(np.mean(res.test_variance)):.4g} |")
    return 0


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if isinstance(exc, MemoryError):  # the engine's message says what would fit: pass it on
        return f"out of memory: {message}" if message else \
            "out of memory; try a smaller --memory-limit or --block-size"
    if isinstance(exc, _INPUT_ERRORS) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``graph-ntk`` command line; returns the exit status.

    Every failure is reported as one line ``graph-ntk: error: ...`` on stderr with exit
    status 2 (bad input) or 1 (anything else); ``--debug`` re-raises it with its traceback.

    Example:
        >>> main(["demo", "--no-progress"])  # doctest: +SKIP
        0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # also for failures while parsing
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        debug = debug or bool(getattr(args, "debug", False))
        command = {"gram": _cmd_gram, "svm": _cmd_svm, "node": _cmd_node, "demo": _cmd_demo}[args.command]
        return command(args)
    except Exception as exc:  # MemoryError, IndexError, EOFError, ... included: one line, no traceback
        if debug:
            raise
        print(f"{_PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, _INPUT_ERRORS) else 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted (finished blocks stay in --cache-dir, if given)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
