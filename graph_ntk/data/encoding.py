r"""The input encoding: how raw node tags and edge labels become the kernel's input features.

A kernel value :math:`K(G, G')` must depend on :math:`G`, :math:`G'`, the model and this
encoding only, never on which other graphs share the call, the file or the cache. The
encoding is therefore *fitted once* (by a loader on a whole file, by
:class:`~graph_ntk.GraphKernelTransformer` in ``fit``, or by hand with
:meth:`InputEncoding.fit`) and then frozen: it is carried by the :class:`GraphDataset` and
by every :class:`Graph` of it, so ``gram(model, ds.graphs[:8])`` uses the same encoding as
``gram(model, ds)``.

A node whose raw tag is :math:`t` gets the one-hot row :math:`e_{c(t)} \in \{0,1\}^T`,
:math:`T` = ``num_tags``, :math:`c(t)` its column in :attr:`InputEncoding.tags`, followed
by its continuous features ``x`` (``num_features`` columns). A tag unseen at fit time is
refused (``handle_unknown='error'``) or gets the zero row (``'ignore'``, as scikit-learn's
``OneHotEncoder``). Edge labels are numbered the same way into ``Graph.edge_type``.

The kernel depends on the *set* of raw tags (through :math:`T`, e.g. a ``Dense`` layer
divides by its fan-in), not on their column order, so :attr:`InputEncoding.fingerprint`
hashes the sorted vocabulary: two files that list the same tags in another order have
the same fingerprint, and graphs from either are re-coded into one encoding before any
kernel is computed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Literal, Sequence

import numpy as np

__all__ = ["InputEncoding", "raw_value"]

HANDLE_UNKNOWN = ("error", "ignore")
TAG_SOURCES = ("labels", "degree")


def raw_value(value: Any, name: str) -> Hashable:
    """One raw tag as a plain, JSON-representable Python value: an int, a string, or a tuple
    of them (a TU row with several label columns). Floats, bools and NaN are refused, since
    ``1.0``/``1``/``True`` would silently merge.

    Example:
        >>> raw_value(np.int64(3), "tag"), raw_value("C", "tag"), raw_value(np.array([1, 2]), "tag")
        (3, 'C', (1, 2))
    """
    if isinstance(value, np.ndarray):
        value = tuple(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer or a string, got the bool {value!r}")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, tuple) and value and all(isinstance(v, (int, str, np.integer, np.str_))
                                                  and not isinstance(v, (bool, np.bool_)) for v in value):
        return tuple(raw_value(v, name) for v in value)
    hint = "; round them to integers explicitly if they are whole numbers" if isinstance(value, (float, np.floating)) else ""
    raise TypeError(f"{name} must be an integer or string tag (or a tuple of them), got {value!r} "
                    f"({type(value).__name__}){hint}")


def _sort_key(v: Hashable) -> tuple:
    # ints before strings before tuples; each group in its natural order.
    return (0, v, "") if isinstance(v, int) else (1, 0, v) if isinstance(v, str) else (2, 0, json.dumps(v))


def _vocabulary(values: Iterable[Any] | None, name: str) -> tuple[Hashable, ...] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of raw values, got {type(values).__name__}")
    out = tuple(raw_value(v, f"{name}[{i}]") for i, v in enumerate(values))
    if len(set(out)) != len(out):
        seen: set = set()
        dup = next(v for v in out if v in seen or seen.add(v))  # type: ignore[func-returns-value]
        raise ValueError(f"{name} lists {dup!r} twice; every raw value needs one column")
    return out


@dataclass(frozen=True)
class InputEncoding:
    r"""Raw node tags, edge labels and continuous attributes -> the kernel's input features.

    Args:
        tags: the raw node-tag vocabulary; ``tags[c]`` is the tag of one-hot column ``c``.
            ``None`` when the graphs carry no discrete tags.
        edge_labels: the raw edge-label vocabulary; ``edge_labels[t]`` is edge type ``t``.
        num_features: the width of the continuous node features ``x`` (``None``: no ``x``).
        tag_source: ``'labels'`` (the file's node labels) or ``'degree'`` (node degrees, as
            GIN/GNTK do for the social datasets): recorded so that a test file is tagged
            the same way as its training file.
        handle_unknown: what a tag unseen at fit time becomes: ``'error'`` (refuse the
            graph) or ``'ignore'`` (the zero one-hot row).

    Example:
        >>> enc = InputEncoding.fit([["C", "O"], ["C", "N"]])
        >>> enc.tags, enc.num_tags, enc.encode_tags(["N", "C"]).tolist()
        (('C', 'N', 'O'), 3, [1, 0])
    """

    tags: tuple[Hashable, ...] | None = None
    edge_labels: tuple[Hashable, ...] | None = None
    num_features: int | None = None
    tag_source: Literal["labels", "degree"] = "labels"
    handle_unknown: Literal["error", "ignore"] = "error"
    _tag_index: dict = field(init=False, repr=False, compare=False)
    _edge_index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from graph_ntk.checks import as_count

        object.__setattr__(self, "tags", _vocabulary(self.tags, "tags"))
        object.__setattr__(self, "edge_labels", _vocabulary(self.edge_labels, "edge_labels"))
        if self.tags is not None and not self.tags:
            raise ValueError("tags is empty: give at least one raw tag, or tags=None for graphs without tags")
        if self.num_features is not None:
            object.__setattr__(self, "num_features", as_count(self.num_features, "num_features"))
        for name, value, allowed in (("tag_source", self.tag_source, TAG_SOURCES),
                                     ("handle_unknown", self.handle_unknown, HANDLE_UNKNOWN)):
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        object.__setattr__(self, "_tag_index", {v: i for i, v in enumerate(self.tags or ())})
        object.__setattr__(self, "_edge_index", {v: i for i, v in enumerate(self.edge_labels or ())})

    def __repr__(self) -> str:
        def short(vocab: tuple | None) -> str:
            if vocab is None:
                return "None"
            head = ", ".join(repr(v) for v in vocab[:6])
            return f"({head}{', ...' if len(vocab) > 6 else ''})" + (f" [{len(vocab)}]" if len(vocab) > 6 else "")

        extra = "" if self.tag_source == "labels" else ", tag_source='degree'"
        extra += "" if self.handle_unknown == "error" else f", handle_unknown={self.handle_unknown!r}"
        return (f"InputEncoding(tags={short(self.tags)}, edge_labels={short(self.edge_labels)}, "
                f"num_features={self.num_features}{extra})")

    # ------------------------------------------------------------------ construction
    @classmethod
    def fit(cls, node_tags: Iterable[Sequence[Any]] | None = None, *, edge_labels: Iterable[Sequence[Any]] | None = None,
            num_features: int | None = None, tag_source: Literal["labels", "degree"] = "labels",
            handle_unknown: Literal["error", "ignore"] = "error") -> "InputEncoding":
        """The encoding of every raw value that occurs: ``node_tags`` and ``edge_labels`` are
        per-graph sequences of raw values (ints or strings); the vocabularies come out
        sorted, so the result does not depend on the order of the graphs.

        Example:
            >>> InputEncoding.fit([[3, 1], [1, 7]]).tags
            (1, 3, 7)
        """
        def vocab(groups: Any, name: str) -> tuple | None:
            if groups is None:
                return None
            if isinstance(groups, (str, bytes)) or not hasattr(groups, "__iter__"):
                raise TypeError(f"{name} must be a sequence with one sequence of raw values per graph, "
                                f"got {type(groups).__name__}")
            seen: set = set()
            for i, group in enumerate(groups):
                if isinstance(group, (str, bytes)) or not hasattr(group, "__iter__"):
                    raise TypeError(f"{name}[{i}] must be the sequence of one graph's raw values, got {group!r}")
                # Fast path (one call per graph, not per node) for homogeneous arrays only: a list
                # mixing 1 and "C" would become the strings "1" and "C" in an array.
                if isinstance(group, np.ndarray) and group.ndim == 1 and group.dtype.kind in "iuU":
                    seen.update(raw_value(v, f"{name}[{i}]") for v in np.unique(group))
                else:
                    seen.update(raw_value(v, f"{name}[{i}]") for v in group)
            return tuple(sorted(seen, key=_sort_key))

        return cls(tags=vocab(node_tags, "node_tags"), edge_labels=vocab(edge_labels, "edge_labels"),
                   num_features=num_features, tag_source=tag_source, handle_unknown=handle_unknown)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputEncoding":
        """The inverse of :meth:`to_dict` (JSON data only: nothing is executed or unpickled)."""
        if not isinstance(d, dict):
            raise TypeError(f"an input encoding record must be a JSON object, got {type(d).__name__}")

        def values(key: str) -> tuple | None:
            v = d.get(key)
            if v is not None and not isinstance(v, list):
                raise TypeError(f"an input encoding record's {key!r} must be a list, got {type(v).__name__}")
            return None if v is None else tuple(tuple(x) if isinstance(x, list) else x for x in v)

        return cls(tags=values("tags"), edge_labels=values("edge_labels"), num_features=d.get("num_features"),
                   tag_source=d.get("tag_source", "labels"), handle_unknown=d.get("handle_unknown", "error"))

    def with_unknown(self, handle_unknown: Literal["error", "ignore"]) -> "InputEncoding":
        """The same vocabulary with another unknown-tag policy."""
        return InputEncoding(self.tags, self.edge_labels, self.num_features, self.tag_source, handle_unknown)

    # ------------------------------------------------------------------ properties
    @property
    def num_tags(self) -> int | None:
        """Width of the one-hot part (``None`` without discrete tags)."""
        return None if self.tags is None else len(self.tags)

    @property
    def num_edge_types(self) -> int | None:
        """Number of edge types (``None`` without edge labels)."""
        return None if self.edge_labels is None else len(self.edge_labels)

    @property
    def input_dim(self) -> int:
        """Width of a node's input feature row: one-hot tags, then ``x``."""
        return (self.num_tags or 0) + (self.num_features or 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record (for sidecars and cache keys); :meth:`from_dict` reads it back."""
        return {"tags": None if self.tags is None else list(self.tags),
                "edge_labels": None if self.edge_labels is None else list(self.edge_labels),
                "num_features": self.num_features, "tag_source": self.tag_source,
                "handle_unknown": self.handle_unknown}

    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the kernel depends on: the *sorted* vocabularies, the feature width,
        the tag source and the unknown policy (column order does not change any kernel)."""
        d = self.to_dict()
        for key in ("tags", "edge_labels"):
            if d[key] is not None:
                d[key] = sorted(d[key], key=lambda v: _sort_key(tuple(v) if isinstance(v, list) else v))
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def same_kernel(self, other: "InputEncoding | None") -> bool:
        """Whether graphs encoded by ``self`` and by ``other`` get the same kernels."""
        return other is not None and (other is self or other.fingerprint == self.fingerprint)

    def same_codes(self, other: "InputEncoding | None") -> bool:
        """Whether ``other`` numbers every tag and edge label exactly as ``self`` does."""
        return other is self or (other is not None and other.tags == self.tags
                                 and other.edge_labels == self.edge_labels)

    # ------------------------------------------------------------------ encoding
    def _encode(self, raw: Any, index: dict, vocab: tuple | None, what: str, name: str,
                allow_unknown: bool) -> np.ndarray:
        if vocab is None:
            raise ValueError(f"{name}: this input encoding has no {what} vocabulary (it was fitted on graphs "
                             f"without {what}s)")
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
            raise TypeError(f"{name} must be a sequence of raw {what}s (one per node or arc), got {raw!r}")
        if isinstance(raw, np.ndarray) and raw.ndim == 1 and raw.dtype.kind in "iuU":
            uniq, inverse = np.unique(raw, return_inverse=True)
            table = np.array([index.get(raw_value(v, name), -1) for v in uniq], dtype=np.int64)
            codes = table[inverse.reshape(-1)] if raw.size else np.zeros(0, np.int64)
        else:
            codes = np.array([index.get(raw_value(v, f"{name}[{i}]"), -1) for i, v in enumerate(raw)], dtype=np.int64)
        missing = codes < 0
        if missing.any():
            first = raw[int(np.flatnonzero(missing)[0])]
            if not allow_unknown:
                raise ValueError(f"{name} holds the {what} {raw_value(first, name)!r}, which this input encoding "
                                 f"has not seen ({len(vocab)} known, fitted on the training graphs); "
                                 + ("refit the encoding on every file you need" if what != "tag" else
                                    "fit it on every file, or use handle_unknown='ignore' to give unseen tags "
                                    "the zero feature row"))
            codes[missing] = len(vocab)  # the reserved unknown code: an all-zero one-hot row
        return codes

    def encode_tags(self, raw: Any, name: str = "node tags") -> np.ndarray:
        """The one-hot columns of raw tags; an unseen tag raises (``'error'``) or gets the
        reserved code ``num_tags`` whose feature row is zero (``'ignore'``).

        Example:
            >>> InputEncoding(tags=(1, 3), handle_unknown="ignore").encode_tags([3, 9]).tolist()
            [1, 2]
        """
        return self._encode(raw, self._tag_index, self.tags, "tag", name, self.handle_unknown == "ignore")

    def encode_edges(self, raw: Any, name: str = "edge labels") -> np.ndarray:
        """The edge types of raw edge labels (an unseen label is always refused: it has no
        aggregation weight to fall back on).

        Example:
            >>> InputEncoding(edge_labels=("single", "double")).encode_edges(["double"]).tolist()
            [1]
        """
        return self._encode(raw, self._edge_index, self.edge_labels, "edge label", name, False)

    def decode_tags(self, codes: Any) -> list[Hashable]:
        """The raw tags of codes (the unknown code ``num_tags`` decodes to ``None``).

        Example:
            >>> InputEncoding(tags=("C", "O")).decode_tags([1, 0])
            ['O', 'C']
        """
        from graph_ntk.data.graph import as_integers

        vocab = self.tags or ()
        codes = as_integers(codes, "codes", "integer tag codes")
        if codes.size and (codes.min() < 0 or codes.max() > len(vocab)):
            bad = int(codes.min()) if codes.min() < 0 else int(codes.max())
            raise ValueError(f"codes holds {bad}, outside 0..{len(vocab)} (the encoding has {len(vocab)} tags)")
        return [vocab[c] if c < len(vocab) else None for c in codes.ravel().tolist()]

    def recode_table(self, source: "InputEncoding", kind: Literal["tags", "edges"]) -> np.ndarray:
        """``table[c]``: the code in ``self`` of the value that ``source`` codes as ``c``
        (vectorised re-coding of graphs from another file into this encoding)."""
        vocab = source.tags if kind == "tags" else source.edge_labels
        if vocab is None:
            raise ValueError(f"the graphs' input encoding has no {'tag' if kind == 'tags' else 'edge label'} "
                             "vocabulary, but the encoding they are compared under has one")
        encode = self.encode_tags if kind == "tags" else self.encode_edges
        table = encode(list(vocab), name="a graph's " + ("node tags" if kind == "tags" else "edge labels"))
        if kind == "tags" and source.handle_unknown == "ignore":  # source's own unknown code stays unknown
            table = np.append(table, self.num_tags)
        return table
