r"""Honest model selection over many candidate kernels: repeated nested cross-validation,
with per-candidate scores that can be cached, and paired comparisons on the same folds.

The expensive part of nested cross-validation over a family of kernels is the SVM fits.
They only depend on the candidate kernel, never on the family it is judged in, so
:func:`svm_candidate_scores` computes, for ONE candidate Gram and every outer split
:math:`(r, f)` (repetition, fold) and every :math:`C` of a grid,

* ``inner[r, f, c]``: the mean accuracy over inner folds of the outer *training* part
  (the only number model selection may look at), and
* ``outer[r, f, c]``: the accuracy on the outer *test* part of an SVM trained on the
  whole outer training part,

and :func:`nested_select` then performs nested model selection for any family (a subset
of candidates) exactly, without refitting: for each outer split it picks
:math:`(k^*, c^*) = \arg\max_{k, c} \mathrm{inner}_k[r, f, c]` (ties: the earlier
candidate, then the smaller :math:`C`) and reports :math:`\mathrm{outer}_{k^*}[r, f, c^*]`.
The outer test labels enter ``outer`` only, so they cannot influence the selection.

:func:`repeated_splits` gives the outer splits (stratified, shuffled with fixed seeds),
:func:`paired_comparison` compares two methods fold by fold on the same splits.

Example:
    >>> y = np.arange(40) % 2
    >>> K = np.eye(40) + np.equal.outer(y, y)
    >>> splits = repeated_splits(y, n_repeats=2, n_splits=4, seed=0)
    >>> s = svm_candidate_scores(K, y, splits, c_grid=[1.0], inner_splits=2)
    >>> nested_select({"k": s}, [1.0]).accuracies.shape
    (2, 4)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from graph_ntk.checks import as_count
from scipy import stats
from sklearn.model_selection import StratifiedKFold

from graph_ntk.evaluation import _check, _check_inner_splits, _grid, _inner_folds, _svm_accuracies

__all__ = ["CandidateScores", "NestedResult", "ScoreCache", "gram_digest", "nested_select", "paired_comparison",
           "repeated_splits", "svm_candidate_scores"]


def repeated_splits(y: np.ndarray, n_repeats: int = 10, n_splits: int = 10,
                    seed: int = 0) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """``n_repeats`` stratified ``n_splits``-fold partitions; repetition ``r`` shuffles with
    seed ``seed + r`` (fixed, so every method sees the same outer folds).

    Example:
        >>> s = repeated_splits(np.array([0, 1] * 10), n_repeats=2, n_splits=5)
        >>> len(s), len(s[0]), sorted(np.concatenate([te for _, te in s[1]]).tolist()) == list(range(20))
        (2, 5, True)
    """
    for name, v, low in (("n_repeats", n_repeats, 1), ("n_splits", n_splits, 2)):
        as_count(v, name, minimum=low)
    y = np.asarray(y)
    return [list(StratifiedKFold(n_splits, shuffle=True, random_state=seed + r).split(np.zeros(len(y)), y))
            for r in range(n_repeats)]


@dataclass
class CandidateScores:
    """SVM scores of one candidate kernel on repeated outer splits (see the module docstring).

    Attributes:
        inner: ``(repeats, folds, len(c_grid))`` mean inner-CV accuracy on each outer training part.
        outer: same shape, outer test accuracy of the SVM trained on the outer training part.
    """

    inner: np.ndarray
    outer: np.ndarray


def svm_candidate_scores(K: np.ndarray, y: np.ndarray, splits: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]],
                         *, c_grid: Sequence[float], inner_splits: int = 5, seed: int = 0) -> CandidateScores:
    """Inner-CV and outer-test SVM accuracies of one precomputed Gram ``K`` for every
    outer split and every ``C`` (``SVC(kernel='precomputed')``, as in
    :mod:`graph_ntk.evaluation`). Inner folds: stratified, shuffled with ``seed``.

    Example:
        >>> y = np.arange(30) % 2; K = np.eye(30) + np.equal.outer(y, y)
        >>> s = svm_candidate_scores(K, y, repeated_splits(y, 1, 3), c_grid=[0.1, 1.0], inner_splits=2)
        >>> s.inner.shape, float(s.outer.min())
        ((1, 3, 2), 1.0)
    """
    c_grid = _grid(c_grid, "c_grid")
    inner_splits = _check_inner_splits(inner_splits)
    if not splits:
        raise ValueError("splits is empty: give repeated_splits(y, ...)")
    flat = [pair for rep in splits for pair in rep]
    K, y, _ = _check(K, y, flat)
    shape = (len(splits), len(splits[0]), len(c_grid))
    if any(len(rep) != shape[1] for rep in splits):
        raise ValueError("every repetition of splits must have the same number of folds")
    inner, outer = np.empty(shape), np.empty(shape)
    for r, rep in enumerate(splits):
        for f, (tr, te) in enumerate(rep):
            folds = _inner_folds(y[tr], inner_splits, seed, f)
            inner[r, f] = np.mean([_svm_accuracies(K, y, tr[a], tr[b], c_grid) for a, b in folds], axis=0)
            outer[r, f] = _svm_accuracies(K, y, tr, te, c_grid)
    return CandidateScores(inner, outer)


@dataclass
class NestedResult:
    """Nested-CV result of a family: ``accuracies[r, f]`` and the choice per outer split."""

    accuracies: np.ndarray
    selected: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        """Std over the outer folds within a repetition, averaged over repetitions (the
        usual "10-fold std"); :attr:`repeat_std` is the spread of the repetition means."""
        return float(self.accuracies.std(axis=1).mean())

    @property
    def repeat_std(self) -> float:
        return float(self.accuracies.mean(axis=1).std())


def nested_select(scores: Mapping[str, CandidateScores], c_grid: Sequence[float]) -> NestedResult:
    """Nested model selection of a family of candidates from their :class:`CandidateScores`.

    For every outer split the ``(candidate, C)`` with the best *inner* score is chosen (ties:
    the first candidate in ``scores`` order, then the smallest ``C``), and its *outer* test
    accuracy is reported. Exactly what refitting a nested CV over the family would give.

    Example:
        >>> a = CandidateScores(np.array([[[0.6, 0.7]]]), np.array([[[0.5, 0.9]]]))
        >>> b = CandidateScores(np.array([[[0.7, 0.7]]]), np.array([[[0.1, 0.2]]]))
        >>> r = nested_select({"a": a, "b": b}, [1.0, 10.0])
        >>> float(r.accuracies[0, 0]), r.selected[0][0]  # inner tie at 0.7: a (first), C = 10
        (0.9, {'kernel': 'a', 'C': 10.0})
    """
    if not scores:
        raise ValueError("scores is empty: give at least one candidate")
    names = list(scores)
    c_grid = _grid(c_grid, "c_grid")
    inner = np.stack([scores[k].inner for k in names])  # (K, R, F, C)
    outer = np.stack([scores[k].outer for k in names])
    if inner.shape[-1] != len(c_grid) or inner.shape != outer.shape:
        raise ValueError(f"scores have shape {inner.shape[1:]}, which does not match c_grid of {len(c_grid)} values")
    k, r, f, c = inner.shape
    flat = np.moveaxis(inner, 0, 2).reshape(r, f, k * c)  # candidate-major: first max = earliest candidate
    best = flat.argmax(axis=2)
    kb, cb = np.divmod(best, c)
    acc = outer[kb, np.arange(r)[:, None], np.arange(f)[None, :], cb]
    selected = [[{"kernel": names[kb[i, j]], "C": float(c_grid[cb[i, j]])} for j in range(f)] for i in range(r)]
    return NestedResult(acc, selected)


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    r"""Compare two methods evaluated on the same outer splits, ``a[r, f]`` and ``b[r, f]``.

    Returns the mean difference :math:`\bar d` of ``a - b`` (in accuracy units), the std of
    the per-repetition mean differences, wins / losses / ties over the folds, a two-sided
    sign test over the non-tied folds (:func:`scipy.stats.binomtest`) and a two-sided
    Wilcoxon signed-rank test over the per-repetition mean differences (the folds of one
    repetition share training data, so a fold-level test would overstate the evidence);
    ``p_wilcoxon`` is NaN with fewer than 2 non-zero repetition differences.

    Example:
        >>> out = paired_comparison(np.array([[0.9, 0.8]]), np.array([[0.8, 0.8]]))
        >>> round(out["mean_diff"], 3), out["wins"], out["ties"]
        (0.05, 1, 1)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must be (repeats, folds) arrays of the same shape, got {a.shape} and {b.shape}")
    d = a - b
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p_sign = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    rep = d.mean(axis=1)
    p_w = float("nan")
    if np.count_nonzero(rep) >= 2:
        p_w = float(stats.wilcoxon(rep, zero_method="wilcox").pvalue)
    return {"mean_diff": float(d.mean()), "std_diff": float(rep.std()), "wins": wins, "losses": losses,
            "ties": int(d.size - wins - losses), "p_sign": p_sign, "p_wilcoxon": p_w}


class ScoreCache:
    """Verified on-disk cache of arrays (Grams, :class:`CandidateScores`) under ``folder``,
    keyed by a JSON-able description; checksums via :mod:`graph_ntk.engine.files`, so a
    damaged file is detected (with a ``CorruptBlockWarning``) and recomputed.

    Example:
        >>> import tempfile
        >>> c = ScoreCache(tempfile.mkdtemp())
        >>> c.get({"a": 1}, (2,)) is None
        True
        >>> c.put({"a": 1}, np.ones(2)); c.get({"a": 1}, (2,)).tolist()
        [1.0, 1.0]
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(description: Any) -> str:
        return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def get(self, description: Any, shape: tuple[int, ...]) -> np.ndarray | None:
        from graph_ntk.engine.files import load_block

        return load_block(self.folder, self.key(description), shape, "float64")

    def put(self, description: Any, array: np.ndarray) -> None:
        from graph_ntk.engine.files import save_block

        save_block(self.folder, self.key(description), np.ascontiguousarray(array, dtype=np.float64))


def gram_digest(K: np.ndarray) -> str:
    """SHA-256 (first 32 hex digits) of a Gram's float64 bytes: its identity in cache keys."""
    return hashlib.sha256(np.ascontiguousarray(K, dtype=np.float64).data).hexdigest()[:32]
