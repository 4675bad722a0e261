r"""Graph-level GP regression and classification on precomputed Grams, with model selection.

:class:`GraphGPRegressor` fits the GP of :mod:`graph_ntk.gp` (constant mean, ML amplitude per
output, noise :math:`\lambda \bar k`) to the training Gram of one kernel, or chooses among
several candidate Grams (depths, NTK vs NNGP, uniform vs degree scaling, ... e.g. the dict
``gram(..., all_depths=True)`` returns) and a grid of :math:`\lambda`:

* ``selection='lml'``: the pair :math:`(K, \lambda)` of the largest exact log marginal
  likelihood, summed over outputs (:func:`graph_ntk.gp.gp_log_marginal_likelihood`, every
  :math:`\lambda` from one eigendecomposition per candidate);
* ``selection='cv'``: the largest mean held-out log predictive density (or the smallest
  held-out squared error, ``cv_scoring='mse'``) over ``cv`` shuffled folds of the training set.

The test graphs enter only through ``predict``. :class:`GraphGPClassifier` is GP *label
regression* (the NT / GNTK-paper classifier) on one-hot targets: the class is the arg-max of
the posterior means, and ``predict_proba`` the probability that each class's latent value is the
largest under the independent Gaussian posteriors (one-dimensional Gauss–Hermite quadrature).

Example:
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(30, 3)); K = X @ X.T
    >>> y = X @ np.array([1.0, -1.0, 0.5])
    >>> gp = GraphGPRegressor(regs=[1e-6, 1e-2, 1.0]).fit({"lin": K, "lin+1": K + 1}, y)
    >>> p = gp.predict({"lin": K[:2], "lin+1": K[:2] + 1}, {"lin": np.diag(K)[:2], "lin+1": np.diag(K)[:2] + 1})
    >>> np.allclose(p.mean, y[:2], atol=1e-3), gp.reg_
    (True, 1e-06)
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping, Sequence, Self

import numpy as np
import scipy.special
from sklearn.model_selection import KFold, StratifiedKFold

from graph_ntk.gp import GPPrediction, gp_log_marginal_likelihood, gp_predict

__all__ = ["DEFAULT_REGS", "GraphGPClassifier", "GraphGPRegressor"]

#: Noise-to-signal grid :math:`\lambda` (relative to the mean training diagonal).
DEFAULT_REGS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
_SINGLE = None  # the key of a single (unnamed) Gram


def _as_grams(grams: Any, name: str) -> dict[Hashable, np.ndarray]:
    if isinstance(grams, Mapping):
        if not grams:
            raise ValueError(f"{name} is an empty mapping: give at least one candidate Gram")
        return dict(grams)
    if isinstance(grams, (str, bytes)) or grams is None:
        raise TypeError(f"{name} must be a Gram matrix (array) or a mapping name -> Gram, got {type(grams).__name__}")
    return {_SINGLE: grams}


def _pick(grams: Any, key: Hashable, name: str) -> Any:
    if key is _SINGLE:
        if isinstance(grams, Mapping):
            raise TypeError(f"the model was fitted on one Gram, so {name} must be one array, not a mapping")
        return grams
    if not isinstance(grams, Mapping):
        raise TypeError(f"the model was fitted on candidate Grams; give {name} as a mapping holding the "
                        f"selected kernel {key!r}")
    if key not in grams:
        raise KeyError(f"{name} has no entry for the selected kernel {key!r}; give the test Grams of every candidate "
                       "(or at least of the selected one, model.kernel_)")
    return grams[key]


def _check_regs(regs: Sequence[float]) -> np.ndarray:
    r = np.asarray(regs, dtype=np.float64) if not isinstance(regs, (str, bytes)) else np.array([np.nan])
    if r.ndim != 1 or not r.size or not (np.isfinite(r) & (r >= 0)).all():
        raise ValueError(f"regs must be a non-empty 1-D grid of non-negative numbers, got {regs!r}")
    return r


def _check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


class _GraphGP:
    _cv_scorings: tuple[str, ...] = ()

    def __init__(self, regs: Sequence[float] = DEFAULT_REGS, *, selection: str = "lml", cv: int = 5,
                 cv_scoring: str | None = None, center: bool = True, seed: int = 0) -> None:
        self.regs = _check_regs(regs)
        self.selection = _check_choice(selection, "selection", ("lml", "cv"))
        if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
            raise ValueError(f"cv must be an integer number of folds >= 2, got {cv!r}")
        self.cv = int(cv)
        self.cv_scoring = _check_choice(cv_scoring or self._cv_scorings[0], "cv_scoring", self._cv_scorings)
        if not isinstance(center, (bool, np.bool_)):
            raise TypeError(f"center must be True or False, got {center!r}")
        self.center = bool(center)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer (the shuffling of the inner folds), got {seed!r}")
        self.seed = int(seed)

    # targets -> (n, outputs) float matrix the GP regresses on
    def _encode(self, y: Any) -> np.ndarray:
        raise NotImplementedError

    def _cv_score(self, pred: GPPrediction, held: np.ndarray) -> float:
        raise NotImplementedError

    def _splits(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return list(KFold(self.cv, shuffle=True, random_state=self.seed).split(np.zeros(n)))

    def fit(self, k_train_train: np.ndarray | Mapping[Hashable, np.ndarray], y: Any) -> Self:
        """Select the kernel and :math:`\\lambda`, then keep the training Gram and targets.

        ``k_train_train``: one ``(n, n)`` Gram, or a mapping name -> Gram of the candidates.
        Sets ``kernel_`` (the selected name, ``None`` for one Gram), ``reg_``, ``scores_``
        (``{(name, reg): score}``, higher is better, ``-inf`` where the system is singular) and
        ``log_marginal_likelihood_`` of the selected model.
        """
        grams = _as_grams(k_train_train, "k_train_train")
        first = np.asarray(next(iter(grams.values())))
        n = first.shape[0] if first.ndim == 2 else -1
        targets = self._encode(y)
        if targets.shape[0] != n:
            raise ValueError(f"y has {targets.shape[0]} entries but the training Gram has {n} rows")
        if self.selection == "cv" and n < 2 * self.cv:
            raise ValueError(f"cv={self.cv} folds need at least {2 * self.cv} training graphs, got {n}; lower cv")
        scores: dict[tuple[Hashable, float], float] = {}
        for name, K in grams.items():
            K = np.asarray(K)
            if K.shape != (n, n):
                raise ValueError(f"candidate Gram {name!r} has shape {K.shape}, expected ({n}, {n}) like the others")
            if self.selection == "lml":
                s = gp_log_marginal_likelihood(K, targets, self.regs, center=self.center).sum(axis=1)
            else:
                s = self._cv_scores(K, targets)
            scores.update({(name, float(r)): float(v) for r, v in zip(self.regs, s)})
        (name, reg), best = max(scores.items(), key=lambda kv: kv[1])  # ties: the earlier kernel, smaller reg
        if not np.isfinite(best):
            raise ValueError("every reg left every training Gram singular (not positive definite); use larger regs")
        self.kernel_, self.reg_, self.scores_ = name, reg, scores
        self.k_train_train_ = np.asarray(grams[name], dtype=np.float64)
        self.targets_ = targets
        self.log_marginal_likelihood_ = float(gp_log_marginal_likelihood(self.k_train_train_, targets, reg,
                                                                         center=self.center).sum())
        return self

    def _cv_scores(self, K: np.ndarray, targets: np.ndarray) -> np.ndarray:
        out = np.zeros(self.regs.size)
        for a, b in self._splits(targets.shape[0]):
            for r, reg in enumerate(self.regs):
                if not np.isfinite(out[r]):
                    continue
                try:
                    pred = gp_predict(K[np.ix_(a, a)], K[np.ix_(b, a)], np.diag(K)[b], targets[a], float(reg),
                                      center=self.center)
                except ValueError:  # not positive definite at this reg: never chosen
                    out[r] = -np.inf
                    continue
                out[r] += self._cv_score(pred, targets[b]) / self.cv
        return out

    def predict_latent(self, k_test_train: np.ndarray | Mapping[Hashable, np.ndarray],
                       k_test_diag: np.ndarray | Mapping[Hashable, np.ndarray]) -> GPPrediction:
        """Posterior means, latent and noise variances of the test graphs (every output).

        ``k_test_train`` ``(n_test, n)`` and ``k_test_diag`` ``(n_test,)`` of the selected
        kernel, or mappings that hold it (the ones given for all candidates).
        """
        if not hasattr(self, "reg_"):
            raise RuntimeError("this model is not fitted yet: call fit(k_train_train, y) first")
        return gp_predict(self.k_train_train_, _pick(k_test_train, self.kernel_, "k_test_train"),
                          _pick(k_test_diag, self.kernel_, "k_test_diag"), self.targets_, self.reg_,
                          center=self.center)


class GraphGPRegressor(_GraphGP):
    r"""GP regression of graph-level targets on precomputed Grams (see the module docstring).

    Args:
        regs: grid of noise-to-signal ratios :math:`\lambda` (relative to the mean diagonal).
        selection: ``'lml'`` (exact log marginal likelihood) or ``'cv'`` (inner cross-validation).
        cv: inner folds for ``selection='cv'``.
        cv_scoring: ``'nlpd'`` (held-out log predictive density, default) or ``'mse'``.
        center: prior mean = training mean of each output (else 0).
        seed: shuffling of the inner folds.

    ``predict`` returns a :class:`graph_ntk.gp.GPPrediction` (``mean``, ``var``, ``std``,
    ``interval``) with one column per output for 2-D targets.
    """

    _cv_scorings = ("nlpd", "mse")

    def _encode(self, y: Any) -> np.ndarray:
        try:
            arr = np.asarray(y)
        except ValueError:
            raise ValueError("y must be a rectangular array of numbers, got a ragged list") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"y must hold real numbers, got dtype {arr.dtype}; convert the targets to floats first")
        if arr.ndim not in (1, 2):
            raise ValueError(f"y must be (n,) or (n, outputs), got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("y contains NaN or infinite values; drop or impute those graphs first")
        self.flat_ = arr.ndim == 1
        return arr.astype(np.float64).reshape(arr.shape[0], -1)

    def _cv_score(self, pred: GPPrediction, held: np.ndarray) -> float:
        if self.cv_scoring == "mse":
            return -float(np.mean((pred.mean - held) ** 2))
        return -float(np.mean(0.5 * np.log(2 * np.pi * pred.var) + (held - pred.mean) ** 2 / (2 * pred.var)))

    def predict(self, k_test_train: np.ndarray | Mapping[Hashable, np.ndarray],
                k_test_diag: np.ndarray | Mapping[Hashable, np.ndarray]) -> GPPrediction:
        """Posterior predictive means and variances (1-D arrays for 1-D training targets)."""
        p = self.predict_latent(k_test_train, k_test_diag)
        if self.flat_:
            return GPPrediction(p.mean[:, 0], p.latent_var[:, 0], p.noise_var[0])
        return p


class GraphGPClassifier(_GraphGP):
    r"""GP label regression on one-hot targets, with class probabilities (see the module docstring).

    Arguments as :class:`GraphGPRegressor`, except ``cv_scoring``: ``'accuracy'`` (default)
    or ``'log_loss'`` of ``predict_proba`` on the held-out folds (stratified).

    Example:
        >>> K = np.eye(20) + np.equal.outer(np.arange(20) % 2, np.arange(20) % 2)
        >>> clf = GraphGPClassifier(regs=[0.1]).fit(K, np.array(["a", "b"] * 10))
        >>> clf.predict(K[:3], np.diag(K)[:3]).tolist()
        ['a', 'b', 'a']
    """

    _cv_scorings = ("accuracy", "log_loss")
    _nodes, _weights = np.polynomial.hermite_e.hermegauss(64)  # for E_{z ~ N(0,1)}[...]

    def _encode(self, y: Any) -> np.ndarray:
        arr = np.asarray(y)
        if arr.ndim != 1:
            raise ValueError(f"y must be one class label per graph (1-D), got shape {arr.shape}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError("y contains NaN or infinite class labels")
        self.classes_, codes = np.unique(arr, return_inverse=True)
        self._codes = codes
        if self.classes_.size < 2:
            raise ValueError(f"y has a single class {self.classes_.tolist()}: classification needs at least two")
        return np.eye(self.classes_.size)[codes]

    def _splits(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        skf = StratifiedKFold(self.cv, shuffle=True, random_state=self.seed)
        return list(skf.split(np.zeros(n), self._codes))

    @classmethod
    def _proba(cls, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        r""":math:`P(c) = E_z \prod_{c' \ne c} \Phi((\mu_c + \sigma_c z - \mu_{c'}) / \sigma_{c'})`."""
        sd = np.sqrt(np.maximum(var, 1e-300))
        f = mean[:, :, None] + sd[:, :, None] * cls._nodes  # (n, C, Q): class c's latent at node z
        logcdf = scipy.special.log_ndtr((f[:, :, None, :] - mean[:, None, :, None]) / sd[:, None, :, None])
        c = mean.shape[1]
        logcdf[:, np.arange(c), np.arange(c), :] = 0.0  # the class itself
        p = np.exp(logcdf.sum(axis=2)) @ (cls._weights / cls._weights.sum())
        return p / p.sum(axis=1, keepdims=True)

    def _cv_score(self, pred: GPPrediction, held: np.ndarray) -> float:
        if self.cv_scoring == "accuracy":
            return float(np.mean(pred.mean.argmax(axis=1) == held.argmax(axis=1)))
        p = self._proba(pred.mean, pred.var)
        return float(np.mean(np.log(np.maximum((p * held).sum(axis=1), 1e-300))))

    def predict_proba(self, k_test_train: np.ndarray | Mapping[Hashable, np.ndarray],
                      k_test_diag: np.ndarray | Mapping[Hashable, np.ndarray]) -> np.ndarray:
        """``(n_test, classes)`` probabilities that each class's latent value is the largest."""
        p = self.predict_latent(k_test_train, k_test_diag)
        return self._proba(p.mean, p.var)

    def predict(self, k_test_train: np.ndarray | Mapping[Hashable, np.ndarray],
                k_test_diag: np.ndarray | Mapping[Hashable, np.ndarray]) -> np.ndarray:
        """The class of the largest posterior mean (= NT's / the GNTK paper's label regression)."""
        return self.classes_[self.predict_latent(k_test_train, k_test_diag).mean.argmax(axis=1)]
