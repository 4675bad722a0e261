"""Gram matrix files of the ``graph-ntk`` CLI and their JSON sidecars.

A Gram written by ``graph-ntk gram`` comes with ``<output>.json``: the dataset's graph order
fingerprint (so that ``svm`` lines labels up with rows), the architecture, the settings and
the matrix's SHA-256. The sidecar is written before the matrix appears, so a matrix never
lacks its own sidecar.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_gram", "order_fingerprint", "read_sidecar", "sidecar", "sidecar_info", "write_gram"]


def order_fingerprint(ds) -> str:
    """Hash of the graph order by (nodes, arcs): the same for GIN and TU files that list the
    same graphs in the same order (both loaders drop duplicate arcs), different when a format
    orders them otherwise."""
    sizes = [(g.num_nodes, g.num_edges) for g in ds.graphs]
    return hashlib.sha256(json.dumps(sizes).encode()).hexdigest()


def sidecar(gram_path: Path) -> Path:
    return gram_path.with_name(gram_path.name + ".json")


def sidecar_info(args: argparse.Namespace, ds, architecture: str, test_ds=None) -> dict[str, Any]:
    """What `graph-ntk svm` needs to trust a Gram file: the graph order it was computed in
    (to line labels up with rows), and how (architecture and settings, printed by svm)."""
    info: dict[str, Any] = {
        "kind": "gram" if test_ds is None else "test x train",
        "dataset": ds.name, "graphs": len(ds), "order_fingerprint": order_fingerprint(ds),
        "architecture": architecture,
        "settings": {"get": args.kernel, "dtype": args.dtype, "method": args.method,
                     "implementation": args.implementation, "format": args.format,
                     "degree_as_tag": args.degree_as_tag},
    }
    if test_ds is not None:  # rows are the test graphs, columns the training graphs
        info.update({"test_dataset": test_ds.name, "test_graphs": len(test_ds),
                     "testorder_fingerprint": order_fingerprint(test_ds)})
    return info


def write_gram(path: Path, K: np.ndarray | dict[str, np.ndarray], info: dict) -> None:
    """Write ``K`` (``.npy``, or a dict of arrays as ``.npz``) to ``path`` with its sidecar
    ``path.json`` (lets `graph-ntk svm` check that its labels are in the Gram's graph order,
    and the matrix by its SHA-256) such that a kill at any moment never leaves ``path``
    without its own sidecar: first the old matrix goes, then the sidecar appears, then the
    matrix (each write atomic)."""
    from graph_ntk.engine.files import _write_atomic, save_npy_atomic

    arrays = K if isinstance(K, dict) else {"": K}
    arrays = {key: np.ascontiguousarray(a) for key, a in arrays.items()}
    first = next(iter(arrays.values()))
    digest = hashlib.sha256(b"".join(a.data for a in arrays.values())).hexdigest()
    info = {**info, "dtype": first.dtype.str, "shape": list(first.shape), "sha256": digest}
    if isinstance(K, dict):
        info["keys"] = list(arrays)
    path.unlink(missing_ok=True)
    text = json.dumps(info).encode()
    _write_atomic(sidecar(path), lambda f: f.write(text))
    if isinstance(K, dict):
        _write_atomic(path, lambda f: np.savez(f, **arrays))
    else:
        save_npy_atomic(path, first)


def read_sidecar(gram_path: Path) -> dict[str, Any] | None:
    """The sidecar's content, or None when there is none."""
    path = sidecar(gram_path)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: corrupt sidecar, not JSON ({exc}); delete it or rerun 'graph-ntk gram'") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: corrupt sidecar, expected a JSON object, got {type(info).__name__}")
    return info


def load_gram(path: Path, n: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (Gram matrix written by 'graph-ntk gram')")
    try:
        K = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty or truncated file
        raise ValueError(f"{path}: not a readable .npy array ({exc or type(exc).__name__})") from None
    if not isinstance(K, np.ndarray) or K.shape != (n, n):
        shape = getattr(K, "shape", "an archive")
        raise ValueError(f"{path}: expected a {n}x{n} Gram matrix for this dataset, got {shape}")
    if not np.issubdtype(K.dtype, np.number) or np.issubdtype(K.dtype, np.complexfloating):
        raise ValueError(f"{path}: expected a real-valued Gram matrix, got dtype {K.dtype}")
    from graph_ntk.evaluation import check_gram

    return check_gram(K, name=str(path))
