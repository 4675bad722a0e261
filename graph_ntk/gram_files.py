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


def sidecar_info(ds, architecture: str, settings: dict[str, Any], encoding=None, test_ds=None) -> dict[str, Any]:
    """What `graph-ntk svm` needs to trust a Gram file: the graph order it was computed in
    (to line labels up with rows), the input encoding (so that a Gram is never evaluated
    against differently encoded graphs), and how (architecture and settings, printed by svm)."""
    enc = ds.encoding if encoding is None else encoding
    info: dict[str, Any] = {
        "kind": "gram" if test_ds is None else "test x train",
        "dataset": ds.name, "graphs": len(ds), "order_fingerprint": order_fingerprint(ds),
        "architecture": architecture,
        "settings": dict(settings),
        "encoding": enc.to_dict(), "encoding_fingerprint": enc.fingerprint,
    }
    if test_ds is not None:  # rows are the test graphs, columns the training graphs
        info.update({"test_dataset": test_ds.name, "test_graphs": len(test_ds),
                     "testorder_fingerprint": order_fingerprint(test_ds)})
    return info


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' bytes, in order (what the sidecar records)."""
    h = hashlib.sha256()
    for a in arrays.values():
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def verify(path: Path, K: np.ndarray, info: dict[str, Any], ds) -> None:
    """Refuse a Gram file its sidecar does not vouch for: another matrix than the one written
    (SHA-256), another graph order, or another input encoding than ``ds`` as loaded now."""
    name = sidecar(path).name
    recorded = info.get("sha256")
    if recorded is not None and recorded != digest({"": K}):
        raise ValueError(f"{path} is not the matrix its sidecar {name} describes (SHA-256 differs): the file was "
                         "replaced or damaged after 'graph-ntk gram' wrote it; recompute it")
    if info.get("order_fingerprint") != order_fingerprint(ds):
        raise ValueError(f"{path} was computed for graphs in another order than {ds.name} as loaded here "
                         f"(see {name}); use the same --dataset-dir and --format as for 'graph-ntk gram'")
    recorded_enc = info.get("encoding_fingerprint")
    if recorded_enc is not None and ds.encoding is not None and not _same_encoding(info.get("encoding"), ds.encoding):
        raise ValueError(f"{path} was computed under another input encoding than {ds.name} as loaded here (node "
                         f"tags or edge labels differ, see {name}); load it with the same options "
                         "(e.g. --degree-as-tag) as for 'graph-ntk gram'")


def _same_encoding(record: Any, enc) -> bool:
    from graph_ntk.data.encoding import InputEncoding

    try:
        stored = InputEncoding.from_dict(record)
    except (TypeError, ValueError):
        return False
    # The unknown-tag policy only matters for test files; the training graphs' vocabulary must match.
    return stored.with_unknown(enc.handle_unknown).fingerprint == enc.fingerprint


def write_gram(path: Path, K: np.ndarray | dict[str, np.ndarray], info: dict) -> None:
    """Write ``K`` (``.npy``, or a dict of arrays as ``.npz``) to ``path`` with its sidecar
    ``path.json`` (lets `graph-ntk svm` check that its labels are in the Gram's graph order,
    and the matrix by its SHA-256) such that a kill at any moment never leaves ``path``
    without its own sidecar: first the old matrix goes, then the sidecar appears, then the
    matrix (each write atomic)."""
    from graph_ntk.engine.files import staged

    arrays = K if isinstance(K, dict) else {"": K}
    arrays = {key: np.ascontiguousarray(a) for key, a in arrays.items()}
    first = next(iter(arrays.values()))
    info = {**info, "dtype": first.dtype.str, "shape": list(first.shape), "sha256": digest(arrays)}
    if isinstance(K, dict):
        info["keys"] = list(arrays)
    text = json.dumps(info).encode()
    # Both new files are written in full (as temporaries) before either old one is replaced,
    # so a full disk or a kill leaves the previous output and its sidecar untouched. The two
    # renames are not one atomic step: in between, the sidecar's SHA-256 no longer matches
    # the matrix, and `svm` refuses the pair rather than trusting it.
    with staged(sidecar(path), lambda f: f.write(text)) as commit_sidecar, \
            staged(path, (lambda f: np.savez(f, **arrays)) if isinstance(K, dict)
                   else (lambda f: np.save(f, first, allow_pickle=False))) as commit_matrix:
        commit_matrix()
        commit_sidecar()


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


def load_gram(path: Path, n: int, info: dict[str, Any] | None = None, ds=None) -> np.ndarray:
    """The ``n x n`` Gram in ``path``, checked; with its sidecar ``info`` (and the dataset
    ``ds`` as loaded now), also verified by :func:`verify` before any conversion."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (Gram matrix written by 'graph-ntk gram')")
    try:
        K = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty or truncated file
        raise ValueError(f"{path}: not a readable .npy array ({exc or type(exc).__name__})") from None
    if isinstance(K, np.ndarray) and info is not None and ds is not None:
        verify(path, K, info, ds)
    if not isinstance(K, np.ndarray) or K.shape != (n, n):
        shape = getattr(K, "shape", "an archive")
        raise ValueError(f"{path}: expected a {n}x{n} Gram matrix for this dataset, got {shape}")
    if not np.issubdtype(K.dtype, np.number) or np.issubdtype(K.dtype, np.complexfloating):
        raise ValueError(f"{path}: expected a real-valued Gram matrix, got dtype {K.dtype}")
    from graph_ntk.evaluation import check_gram

    return check_gram(K, name=str(path))
