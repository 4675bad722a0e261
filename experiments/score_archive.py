"""SVM scores of the repeated nested cross-validation, kept beside the results and committed,
so that the repetitions of a long protocol accumulate across runs *and machines*.

The Gram cache (``--cache-dir``) does not travel: NCI1's and COLLAB's Grams are gigabytes
and hours of CPU. Their nested scores are a few hundred kB, and they are all the nested
protocol needs once computed: :func:`graph_ntk.model_selection.nested_select` reads every
family's selection off them exactly. A run recomputes the Grams it needs (to check them),
reads the repetitions already in the archive and computes only the missing ones.

Nothing is trusted blindly. An entry is keyed by the full description of what was scored
(candidate, form, ``C`` grid, labels, outer splits, inner folds, seed, repetition) and
carries a *fingerprint* of every Gram it was computed from (:func:`gram_fingerprint`); it
is used only when the Grams of this run have the same fingerprints within float32
rounding (two machines' float32 Grams differ in the last bits). The file carries a
checksum of its entries; a damaged file is refused with an error rather than overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "graph_ntk nested scores v1"
# Relative tolerance of a fingerprint match: far above float32 rounding (1e-7), far below the
# difference between two kernels of the grid (neighbouring depths differ by percents).
FINGERPRINT_RTOL = 1e-4


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def gram_fingerprint(K: np.ndarray, entries: int = 64) -> list[float]:
    """The trace of a Gram and its entries at ``entries`` fixed pseudo-random positions (seeded
    by its size): what identifies a Gram across machines, where bitwise digests do not.

    >>> K = np.arange(16.0).reshape(4, 4)
    >>> fp = gram_fingerprint(K, entries=3); len(fp), fp[0]
    (4, 30.0)
    >>> fp == gram_fingerprint(K.astype(np.float32), entries=3)
    True
    """
    K = np.asarray(K)
    i, j = np.random.default_rng(K.shape[0]).integers(0, K.shape[0], (2, entries))
    return [float(np.trace(K, dtype=np.float64)), *(float(v) for v in K[i, j])]


def same_fingerprint(a: list[float], b: list[float], rtol: float = FINGERPRINT_RTOL) -> bool:
    """Whether two fingerprints are of the same Gram up to rounding.

    >>> same_fingerprint([10.0, 1.0], [10.0000001, 1.0]), same_fingerprint([10.0, 1.0], [10.0, 1.01])
    (True, False)
    """
    a_, b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a_.shape == b_.shape and bool(np.allclose(a_, b_, rtol=rtol, atol=rtol * np.abs(b_).max()))


class ScoreArchive:
    """A gzipped JSON file of score arrays, each under a description and the fingerprints of
    the Grams it came from. ``put`` keeps an entry in memory; ``save`` writes the file
    atomically (a killed run leaves the previous file whole).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "TOY.json.gz"
        >>> a = ScoreArchive(path)
        >>> fp = [gram_fingerprint(np.eye(3))]
        >>> a.put({"candidate": "k", "repetition": 0}, fp, np.ones((2, 2)), 0.5, "k rep 0"); a.save()
        >>> ScoreArchive(path).get({"candidate": "k", "repetition": 0}, fp)[0].tolist()
        [[1.0, 1.0], [1.0, 1.0]]
        >>> ScoreArchive(path).get({"candidate": "k", "repetition": 0}, [gram_fingerprint(2 * np.eye(3))]) is None
        True
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._entries: dict[str, dict] = {}
        self._fingerprints: dict[str, list[float]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(gzip.decompress(self.path.read_bytes()))
            ok = doc["format"] == FORMAT and doc["checksum"] == _digest([doc["entries"], doc["fingerprints"]])
        except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{self.path} is not a readable score archive ({e}); restore it from git, or move it "
                             "away to recompute its scores") from None
        if not ok:
            raise ValueError(f"{self.path} fails its checksum (edited or damaged); restore it from git, or move it "
                             "away to recompute its scores")
        self._entries, self._fingerprints = doc["entries"], doc["fingerprints"]

    def __len__(self) -> int:
        return len(self._entries)

    def by_label(self) -> dict[str, np.ndarray]:
        """Every entry's scores under its label (for reading the archive without the Grams)."""
        return {e["label"]: np.asarray(e["scores"], dtype=np.float64) for e in self._entries.values()}

    def get(self, description: dict, fingerprints: list[list[float]]) -> tuple[np.ndarray, float] | None:
        """The scores and their SVM seconds under ``description``, if computed from Grams with
        these ``fingerprints``; else None (to be recomputed)."""
        e = self._entries.get(_digest(description))
        if e is None or len(e["grams"]) != len(fingerprints):
            return None
        if not all(same_fingerprint(self._fingerprints[g], fp) for g, fp in zip(e["grams"], fingerprints)):
            return None
        return np.asarray(e["scores"], dtype=np.float64), float(e["seconds"])

    def put(self, description: dict, fingerprints: list[list[float]], scores: np.ndarray, seconds: float,
            label: str) -> None:
        """Keep ``scores`` (any float array) under ``description``; ``label`` says in the file what they are."""
        ids = []
        for fp in fingerprints:
            ids.append(_digest(fp))
            self._fingerprints[ids[-1]] = list(map(float, fp))
        self._entries[_digest(description)] = {"label": label, "grams": ids, "seconds": round(float(seconds), 3),
                                               "scores": np.asarray(scores, dtype=np.float64).tolist()}

    def save(self) -> None:
        """Write the file (atomically), dropping fingerprints no entry refers to."""
        used = {g for e in self._entries.values() for g in e["grams"]}
        fps = {g: fp for g, fp in self._fingerprints.items() if g in used}
        doc = {"format": FORMAT, "entries": self._entries, "fingerprints": fps,
               "checksum": _digest([self._entries, fps])}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(gzip.compress(json.dumps(doc, sort_keys=True).encode(), mtime=0))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would follow the file into the commit
        os.replace(tmp, self.path)
