"""Gram matrix files of the ``graph-ntk`` CLI and their JSON sidecars.

A Gram written by ``graph-ntk gram`` comes with ``<output>.json``: the dataset's graph order
fingerprint (so that ``svm`` lines labels up with rows), the architecture, the settings and
the matrix's SHA-256. The sidecar is written before the matrix appears, so a matrix never
lacks its own sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from graph_ntk.engine.files import digest, order_fingerprint, read_sidecar, sidecar, versions, write_gram

__all__ = ["load_gram", "order_fingerprint", "read_sidecar", "read_square_gram", "save_gram", "sidecar", "sidecar_info",
           "versions", "write_gram"]


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
        "versions": versions(),
    }
    if test_ds is not None:  # rows are the test graphs, columns the training graphs
        info.update({"test_dataset": test_ds.name, "test_graphs": len(test_ds),
                     "testorder_fingerprint": order_fingerprint(test_ds)})
    return info


def save_gram(path: str | Path, K: np.ndarray | dict[str, np.ndarray], *, graphs=None, model: Any = None,
              settings: dict[str, Any] | None = None, encoding=None, test_graphs=None) -> Path:
    """Write ``K`` (``.npy``; a dict of named arrays as ``.npz``) and its sidecar ``path.json``
    (the library, NT and JAX versions, the model description, the input encoding, the graphs'
    order fingerprint and the matrix's SHA-256), as ``graph-ntk gram`` does: both files are
    written in full before either old one is replaced.

    ``graphs`` are the rows' (and, without ``test_graphs``, the columns') graphs: a dataset
    or a list; ``test_graphs`` makes it a test x train kernel (rows test, columns train).

    Example:
        >>> import tempfile
        >>> p = save_gram(Path(tempfile.mkdtemp()) / "K.npy", np.eye(2), settings={"get": "ntk"})
        >>> load_gram(p).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    from graph_ntk.data.encoding import InputEncoding
    from graph_ntk.data.graph import fit_encoding

    path = Path(path)
    want = ".npz" if isinstance(K, dict) else ".npy"
    if path.suffix != want:
        raise ValueError(f"path must end in {want} for {'a dict of arrays' if want == '.npz' else 'one array'}, "
                         f"got {str(path)!r}")
    train = graphs if test_graphs is None else graphs
    if train is not None:
        train_list = list(getattr(train, "graphs", train))
        enc = encoding or getattr(train, "encoding", None) or fit_encoding(train_list)
        ds = _Named(getattr(train, "name", "graphs"), train_list, enc)
        info = sidecar_info(ds, _describe(model), settings or {}, enc,
                            None if test_graphs is None else _Named(getattr(test_graphs, "name", "test"),
                                                                    list(getattr(test_graphs, "graphs",
                                                                                 test_graphs)), enc))
    else:
        enc = encoding if isinstance(encoding, InputEncoding) else None
        info = {"kind": "gram", "architecture": _describe(model), "settings": dict(settings or {}),
                "encoding": None if enc is None else enc.to_dict(),
                "encoding_fingerprint": None if enc is None else enc.fingerprint, "versions": versions()}
    write_gram(path, K, info)
    return path


class _Named:
    """The few attributes of a dataset that a sidecar records."""

    def __init__(self, name: str, graphs: list, encoding) -> None:
        self.name, self.graphs, self.encoding = name, graphs, encoding

    def __len__(self) -> int:
        return len(self.graphs)


def _describe(model: Any) -> str:
    if model is None:
        return "not recorded"
    program = getattr(model, "program", None)
    if program is not None:
        from graph_ntk.program import describe

        return describe(program)
    return repr(model)


def load_gram(path: str | Path, *, dataset=None, key: str | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """A Gram written by :func:`save_gram` or ``graph-ntk gram``, verified against its sidecar:
    the SHA-256 of the matrix, and with ``dataset`` (as loaded now) its graph order and input
    encoding. An ``.npz`` gives a dict of arrays, or the array ``key``.

    Example:
        >>> import tempfile
        >>> p = save_gram(Path(tempfile.mkdtemp()) / "K.npz", {"L1": np.eye(2), "L2": 2 * np.eye(2)})
        >>> load_gram(p, key="L2").tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    path = Path(path)
    arrays = _read_arrays(path)
    verify(path, arrays, read_sidecar(path), dataset)
    if key is not None:
        if key not in arrays:
            raise KeyError(f"{path} holds {sorted(arrays)}, not {key!r}")
        return arrays[key]
    return arrays[""] if list(arrays) == [""] else arrays


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """``{'': array}`` of a ``.npy``, or the named arrays of an ``.npz`` (never unpickled)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (a Gram matrix written by 'graph-ntk gram' or save_gram)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"": loaded}
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty or truncated file
        raise ValueError(f"{path}: not a readable .npy/.npz array ({exc or type(exc).__name__})") from None


def verify(path: Path, arrays: dict[str, np.ndarray], info: dict[str, Any] | None, ds=None) -> None:
    """Refuse a Gram file its sidecar ``info`` does not vouch for: other arrays than the ones
    written (SHA-256 over all of them), and with ``ds`` (the dataset as loaded now) another
    graph order or another input encoding."""
    if info is None:
        return
    name = sidecar(path).name
    recorded = info.get("sha256")
    if recorded is not None and recorded != digest(arrays):
        raise ValueError(f"{path} is not the matrix its sidecar {name} describes (SHA-256 differs): the file was "
                         "replaced or damaged after it was written; recompute it")
    if ds is None:
        return
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


def read_square_gram(path: Path, n: int, info: dict[str, Any] | None = None, ds=None, key: str | None = None
                     ) -> np.ndarray:
    """The ``n x n`` Gram in ``path`` (an ``.npz`` archive's array ``key``), checked; with its
    sidecar ``info`` (and the dataset ``ds`` as loaded now), verified first: SHA-256 over all
    of the file's arrays, graph order, input encoding."""
    arrays = _read_arrays(path)
    verify(path, arrays, info, ds)
    if list(arrays) != [""]:
        if key is None:
            raise ValueError(f"{path} is an archive of {len(arrays)} Grams ({', '.join(sorted(arrays)[:6])}"
                             f"{', ...' if len(arrays) > 6 else ''}): choose one with --key")
        if key not in arrays:
            raise ValueError(f"{path} has no Gram {key!r}; it holds {', '.join(sorted(arrays))}")
        K = arrays[key]
    elif key is not None:
        raise ValueError(f"--key {key} is for .npz archives; {path} holds a single Gram")
    else:
        K = arrays[""]
    if K.shape != (n, n):
        shape = getattr(K, "shape", "an archive")
        raise ValueError(f"{path}: expected a {n}x{n} Gram matrix for this dataset, got {shape}")
    if not np.issubdtype(K.dtype, np.number) or np.issubdtype(K.dtype, np.complexfloating):
        raise ValueError(f"{path}: expected a real-valued Gram matrix, got dtype {K.dtype}")
    from graph_ntk.evaluation import check_gram

    return check_gram(K, name=str(path))
