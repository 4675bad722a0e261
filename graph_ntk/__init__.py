"""graph_ntk: exact infinite-width kernels (NNGP and NTK) of graph neural networks.

Graph layers are neural-tangents ``stax`` triples ``(init_fn, apply_fn, kernel_fn)`` that
compose with ``neural_tangents.stax`` combinators, so one description gives both a finite
network and its exact GNNGP / GNTK.

Public names are imported on first use, so ``import graph_ntk`` is fast and the data and
colour-engine paths never load JAX; neural-tangents is patched for the pinned JAX whenever
it is imported (see ``graph_ntk/_compat.py``).
"""

from __future__ import annotations

import importlib

from graph_ntk import _compat

# `typing` alone would double the import time, which every interpreter start pays once the
# wheel's graph_ntk.pth imports graph_ntk; type checkers treat this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_compat.install_import_hook()

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Graph": "graph_ntk.data",
    "GraphBatch": "graph_ntk.data",
    "GraphDataset": "graph_ntk.data",
    "InputEncoding": "graph_ntk.data",
    "fit_encoding": "graph_ntk.data",
    "dataset_from_networkx": "graph_ntk.data",
    "graph_to_networkx": "graph_ntk.data",
    "graphs_from_batch": "graph_ntk.data",
    "graphs_from_edge_index": "graph_ntk.data",
    "graphs_from_jraph": "graph_ntk.data",
    "graphs_from_pyg": "graph_ntk.data",
    "graph_from_networkx": "graph_ntk.data",
    "graph_from_scipy": "graph_ntk.data",
    "kernel_kwargs": "graph_ntk.data",
    "one_hot": "graph_ntk.data",
    "Aggregate": "graph_ntk.layers",
    "GlobalMaxPool": "graph_ntk.layers",
    "GlobalMeanPool": "graph_ntk.layers",
    "GlobalMinPool": "graph_ntk.layers",
    "GlobalSumPool": "graph_ntk.layers",
    "Scale": "graph_ntk.layers",
    "gntk": "graph_ntk.models",
    "hierarchical_gntk": "graph_ntk.models",
    "gcn": "graph_ntk.models",
    "gin": "graph_ntk.models",
    "sage": "graph_ntk.models",
    "gcnii": "graph_ntk.models",
    "node_kernel": "graph_ntk.models",
    "exact_node_kernel": "graph_ntk.kernels.node_kernel",
    "lowrank_node_kernel": "graph_ntk.kernels.lowrank",
    "node_gp": "graph_ntk.node_inference",
    "node_gp_classify": "graph_ntk.node_inference",
    "monte_carlo_kernel": "graph_ntk.monte_carlo",
    "GNTK": "graph_ntk.engine",
    "gram": "graph_ntk.engine",
    "gram_diagonal": "graph_ntk.engine",
    "wl_subtree_gram": "graph_ntk.kernels.wl_kernel",
    "GraphKernelTransformer": "graph_ntk.transformer",
    "evaluate": "graph_ntk.evaluation",
    "svm_paper_protocol": "graph_ntk.evaluation",
    "svm_nested_cv": "graph_ntk.evaluation",
    "gp_nested_cv": "graph_ntk.evaluation",
    "GPPrediction": "graph_ntk.gp",
    "gp_predict": "graph_ntk.gp",
    "gp_log_marginal_likelihood": "graph_ntk.gp",
    "GraphGPRegressor": "graph_ntk.gp_estimators",
    "GraphGPClassifier": "graph_ntk.gp_estimators",
    "regression_metrics": "graph_ntk.gp_metrics",
    "nlpd": "graph_ntk.gp_metrics",
    "interval_coverage": "graph_ntk.gp_metrics",
    "calibration_curve": "graph_ntk.gp_metrics",
    "graph_from_smiles": "graph_ntk.chem",
    "graph_from_rdkit": "graph_ntk.chem",
    "molecule_dataset": "graph_ntk.chem",
    "read_sdf": "graph_ntk.chem",
    "load_gin": "graph_ntk.datasets",
    "load_tu": "graph_ntk.datasets",
    "load_planetoid": "graph_ntk.datasets",
    "make_demo_dataset": "graph_ntk.datasets",
    "KernelEstimate": "graph_ntk.monte_carlo",
    "save_gram": "graph_ntk.gram_files",
    "load_gram": "graph_ntk.gram_files",
}
# Every pool (global, structure-only coarsening, learned) at top level, as in PyG.
_POOLS = ("StructurePool", "coarsen", "TopKPooling", "SAGPooling", "DiffPool", "MinCutPool",
          "DMoNPool", "JustBalancePool", "AsymCheegerCutPool", "LaPool", "SortPool", "GlobalAttentionPool",
          "GlobalAttnSumPool", "MemPooling")
_EXPORTS.update({name: "graph_ntk.layers.pooling" for name in _POOLS})

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name == "nn":  # the builders: `gn.nn.Dense(...)` works without importing graph_ntk.nn first
        return importlib.import_module("graph_ntk.nn")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'graph_ntk' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as err:  # the stax side is an extra: say how to install it
        raise (_compat.stax_missing(err, f"graph_ntk.{name}") or err) from err
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see every public name with its real signature
    from graph_ntk import nn as nn
    from graph_ntk.data import (
        Graph,
        GraphBatch,
        GraphDataset,
        InputEncoding,
        dataset_from_networkx,
        fit_encoding,
        graph_to_networkx,
        graphs_from_batch,
        graphs_from_edge_index,
        graphs_from_jraph,
        graphs_from_pyg,
        graph_from_networkx,
        graph_from_scipy,
        kernel_kwargs,
        one_hot,
    )
    from graph_ntk.datasets import load_gin, load_planetoid, load_tu, make_demo_dataset
    from graph_ntk.engine import GNTK, gram, gram_diagonal
    from graph_ntk.evaluation import evaluate, gp_nested_cv, svm_nested_cv, svm_paper_protocol
    from graph_ntk.kernels.lowrank import lowrank_node_kernel
    from graph_ntk.kernels.node_kernel import exact_node_kernel
    from graph_ntk.kernels.wl_kernel import wl_subtree_gram
    from graph_ntk.layers import Aggregate, GlobalMaxPool, GlobalMeanPool, GlobalMinPool, GlobalSumPool, Scale
    from graph_ntk.layers.pooling import (
        AsymCheegerCutPool,
        DiffPool,
        DMoNPool,
        GlobalAttentionPool,
        GlobalAttnSumPool,
        JustBalancePool,
        LaPool,
        MemPooling,
        MinCutPool,
        SAGPooling,
        SortPool,
        StructurePool,
        TopKPooling,
        coarsen,
    )
    from graph_ntk.models import gcn, gcnii, gin, node_kernel, sage
    from graph_ntk.models.gntk import gntk, hierarchical_gntk
    from graph_ntk.monte_carlo import KernelEstimate, monte_carlo_kernel
    from graph_ntk.node_inference import node_gp, node_gp_classify
    from graph_ntk.transformer import GraphKernelTransformer
    from graph_ntk.gp import GPPrediction, gp_log_marginal_likelihood, gp_predict
    from graph_ntk.gp_estimators import GraphGPClassifier, GraphGPRegressor
    from graph_ntk.gp_metrics import calibration_curve, interval_coverage, nlpd, regression_metrics
    from graph_ntk.chem import graph_from_rdkit, graph_from_smiles, molecule_dataset, read_sdf
    from graph_ntk.gram_files import load_gram, save_gram
