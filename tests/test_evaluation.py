"""graph_ntk.evaluation: SVM protocols, GP classification, and the scikit-learn transformer."""

from __future__ import annotations

import neural_tangents as nt
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from graph_ntk.datasets import make_demo_dataset
from graph_ntk.transformer import GraphKernelTransformer
from graph_ntk.evaluation import (
    EvaluationResult,
    ProtocolResult,
    check_gram,
    cosine_normalize,
    default_folds,
    evaluate,
    gp_nested_cv,
    svm_nested_cv,
    svm_paper_protocol,
)
from graph_ntk.engine import GNTK, gram
from graph_ntk.gp import gp_posterior_mean

GRID = np.logspace(-2, 4, 7)


@pytest.fixture(scope="module")
def demo():
    ds = make_demo_dataset(120, seed=1)
    return ds, gram(GNTK(2, 2), ds, progress=False)


def test_protocols_on_demo_are_well_above_chance(demo):
    ds, K = demo
    result = evaluate(K, ds.y, ds.folds, name="demo", c_grid=GRID, nested_c_grid=GRID, inner_splits=3)
    assert [r.protocol for r in result.results] == ["paper SVM (raw)", "paper SVM (cosine)", "nested SVM"]
    for r in result.results:
        assert 0.6 < r.mean <= 1.0 and 0 <= r.std < 0.2, r  # four classes: chance is 0.25
        assert len(r.fold_accuracies) == len(ds.folds)
    # Choosing C on the test folds can only be at least as good as the nested choice.
    best_paper = max(result["paper SVM (raw)"].mean, result["paper SVM (cosine)"].mean)
    assert best_paper >= result["nested SVM"].mean - 1e-12
    table = result.to_markdown()
    assert table.splitlines()[0] == "| dataset | protocol | accuracy (%) | selected |"
    assert f"| demo | nested SVM | {100 * result['nested SVM'].mean:.1f} ± " in table


def test_paper_protocol_is_gridsearch_on_the_given_folds(demo):
    """Same numbers as GNTK's search.py: GridSearchCV over C on the fixed folds, best mean test score."""
    ds, K = demo
    [raw] = svm_paper_protocol(K, ds.y, ds.folds, c_grid=GRID, normalizations=("raw",))
    search = GridSearchCV(SVC(kernel="precomputed", max_iter=500_000), {"C": GRID}, cv=list(ds.folds))
    search.fit(K / K.min(), ds.y)
    assert raw.mean == pytest.approx(search.best_score_, abs=1e-12)
    assert raw.selected == [{"C": pytest.approx(search.best_params_["C"])}]


def test_nested_cv_never_looks_at_test_labels(demo):
    ds, K = demo
    train, test = ds.folds[0]
    y_bad = ds.y.copy()
    y_bad[test] = (y_bad[test] + 1) % 4  # every test label wrong
    clean = svm_nested_cv(K, ds.y, [(train, test)], c_grid=GRID, inner_splits=3)
    broken = svm_nested_cv(K, y_bad, [(train, test)], c_grid=GRID, inner_splits=3)
    assert clean.selected == broken.selected
    assert broken.mean == pytest.approx(0.0, abs=0.1)  # a classifier this good now scores ~0


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_gp_scores_match_neural_tangents(demo):
    ds, K = demo
    train, test = ds.folds[0]
    targets = np.eye(4)[ds.y]
    regs = np.array([1e-4, 1e-1])
    k_tt, k_st = K[np.ix_(train, train)], K[np.ix_(test, train)]
    ours = gp_posterior_mean(k_tt, k_st, targets[train], regs)  # the grid path (one eigendecomposition)
    for r, reg in enumerate(regs):
        predict_fn = nt.predict.gp_inference(k_tt, targets[train], diag_reg=reg)
        ref = np.asarray(predict_fn("nngp", k_st))
        np.testing.assert_allclose(ours[r], ref, rtol=1e-7, atol=1e-9)
        # ...and the single-value (Cholesky) path, used for the outer folds.
        np.testing.assert_allclose(gp_posterior_mean(k_tt, k_st, targets[train], reg), ref, rtol=1e-7, atol=1e-9)
    result = evaluate(K, ds.y, ds.folds, protocols=("gp",), diag_regs=regs, inner_splits=3)["nested GP"]
    assert result.mean > 0.6 and {"norm", "diag_reg"} == set(result.selected[0])


def test_cosine_normalize():
    K = np.array([[4.0, 2.0, 1.0], [2.0, 9.0, 3.0], [1.0, 3.0, 1.0]])
    C = cosine_normalize(K)
    np.testing.assert_allclose(np.diag(C), 1.0)
    assert C[0, 1] == pytest.approx(2.0 / 6.0)
    rect = cosine_normalize(K[:1, 1:], np.array([4.0]), np.array([9.0, 1.0]))
    np.testing.assert_allclose(rect, C[:1, 1:])
    with pytest.raises(ValueError, match="diag1 and diag2"):
        cosine_normalize(K[:2])
    with pytest.raises(ValueError, match="positive self-kernels"):
        cosine_normalize(-K)


def test_input_errors(demo):
    ds, K = demo
    with pytest.raises(ValueError, match="square"):
        svm_nested_cv(K[:5], ds.y)
    with pytest.raises(ValueError, match="one label per row"):
        svm_paper_protocol(K, ds.y[:-1])
    bad = K.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        svm_paper_protocol(bad, ds.y)
    with pytest.raises(ValueError, match="normalizations"):
        svm_paper_protocol(K, ds.y, ds.folds, normalizations=("l2",))
    with pytest.raises(ValueError, match="protocols"):
        evaluate(K, ds.y, protocols=("loo",))
    with pytest.raises(ValueError, match="outside"):
        svm_paper_protocol(K, ds.y, [(np.array([0, 1]), np.array([500]))])


def test_default_folds_when_dataset_has_none(demo):
    ds, K = demo
    folds = default_folds(ds.y, n_splits=4)
    assert len(folds) == 4 and sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(ds)))
    r = svm_nested_cv(K, ds.y, None, c_grid=[1.0, 100.0], inner_splits=2)  # 10 stratified folds
    assert len(r.fold_accuracies) == 10


def test_summary_and_markdown():
    r = ProtocolResult("paper SVM (raw)", 0.9, 0.085, np.array([0.9]), [{"C": 3.0}])
    assert r.summary() == "90.0 ± 8.5"
    assert "| MUTAG | paper SVM (raw) | 90.0 ± 8.5 | C=3 |" in EvaluationResult("MUTAG", [r]).to_markdown()
    with pytest.raises(KeyError, match="no protocol"):
        EvaluationResult("x", [r])["nested SVM"]


# ----------------------------------------------------------------------------- scikit-learn
def test_transformer_in_pipeline_and_gridsearch(demo):
    ds, K = demo
    graphs, y = list(ds.graphs), ds.y
    pipe = Pipeline([("k", GraphKernelTransformer(model=GNTK(2, 2))), ("svm", SVC(kernel="precomputed"))])
    search = GridSearchCV(pipe, {"svm__C": [1.0, 100.0], "k__normalize": [True, False]},
                          cv=StratifiedKFold(3, shuffle=True, random_state=0))
    search.fit(graphs, y)  # sklearn slices the list of graphs with _safe_indexing
    assert search.best_score_ > 0.6
    assert set(search.best_params_) == {"svm__C", "k__normalize"}

    # Held-out prediction with a plain object array of graphs.
    train, test = ds.folds[0]
    X = np.empty(len(graphs), dtype=object)
    X[:] = graphs
    fitted = clone(pipe).fit(X[train], y[train])
    assert fitted.score(X[test], y[test]) > 0.5


def test_transformer_matches_precomputed_gram(demo):
    ds, K = demo
    train, test = ds.folds[0]
    graphs = ds.graphs
    t = GraphKernelTransformer(model=GNTK(2, 2), normalize=True)
    k_train = t.fit_transform([graphs[i] for i in train])
    k_test = t.transform([graphs[i] for i in test])
    C = cosine_normalize(K)
    np.testing.assert_allclose(k_train, C[np.ix_(train, train)], rtol=1e-9)
    np.testing.assert_allclose(k_test, C[np.ix_(test, train)], rtol=1e-9)
    # fit + transform == fit_transform, and unnormalised rows are the raw Gram.
    refit = t.fit([graphs[i] for i in train])
    np.testing.assert_allclose(refit.transform([graphs[i] for i in test]), k_test, rtol=1e-9)
    raw = GraphKernelTransformer(model=GNTK(2, 2), normalize=False).fit([graphs[i] for i in train])
    np.testing.assert_allclose(raw.transform([graphs[i] for i in test]), K[np.ix_(test, train)], rtol=1e-9)


def test_transformer_errors(demo):
    ds, _ = demo
    with pytest.raises(ValueError, match="not fitted"):  # sklearn's NotFittedError
        GraphKernelTransformer().transform(ds.graphs[:2])
    with pytest.raises(TypeError, match=r"X\[0\]"):
        GraphKernelTransformer().fit([np.zeros(3)])
    with pytest.raises(ValueError, match="1-D"):
        GraphKernelTransformer().fit(np.zeros((3, 2)))


def test_transformer_follows_sklearn_conventions(demo):
    from sklearn.exceptions import NotFittedError

    ds, _ = demo
    t = GraphKernelTransformer(model=GNTK(1, 1), normalize=False)
    with pytest.raises(NotFittedError):
        t.transform(ds.graphs[:2])
    t.fit(ds.graphs[:5])
    assert not hasattr(t, "n_features_in_")  # graphs are not features
    assert t.transform(ds.graphs[:3]).shape == (3, 5)


# ----------------------------------------------------------------------------- refusals
def _small():
    y = np.arange(20) % 2
    return np.eye(20) + 1.0, y, default_folds(y, 4)


def _every_protocol(K, y, folds, **kw):
    """Each public entry point, called with the same (bad) input."""
    return [
        lambda: evaluate(K, y, folds, c_grid=[1.0], nested_c_grid=[1.0], inner_splits=2, **kw),
        lambda: svm_paper_protocol(K, y, folds, c_grid=[1.0]),
        lambda: svm_nested_cv(K, y, folds, c_grid=[1.0], inner_splits=2),
        lambda: gp_nested_cv(K, y, folds, diag_regs=[1e-3], inner_splits=2),
    ]


@pytest.mark.parametrize("case, message", [
    ("asymmetric", r"not symmetric: \|K\[3, 7\] - K\[7, 3\]\|"),
    ("nan", r"NaN or infinite entries \(first at \[2, 5\]\)"),
    ("inf", "NaN or infinite"),
    ("overlap", r"fold 1: 1 index\(es\) are in both its train and test parts \(first \d+\)"),
    ("one_class", r"fold 2: its training part has only class 0"),
    ("float_folds", r"fold 0: the train indices must be a 1-D array of integers, got dtype float64"),
    ("bool_folds", r"fold 0: the train indices must be a 1-D array of integers"),
])
def test_every_protocol_refuses_bad_grams_and_folds(case, message):
    K, y, folds = _small()
    folds = [(tr.copy(), te.copy()) for tr, te in folds]
    if case == "asymmetric":
        K[3, 7] += 1e-3
    elif case == "nan":
        K[2, 5] = np.nan
    elif case == "inf":
        K[0, 0] = np.inf
    elif case == "overlap":
        tr, te = folds[1]
        folds[1] = (tr, np.append(te, tr[0]))
    elif case == "one_class":
        tr, te = folds[2]
        folds[2] = (tr[y[tr] == 0], te)
    elif case == "float_folds":
        folds[0] = (folds[0][0].astype(float), folds[0][1])
    elif case == "bool_folds":
        mask = np.zeros(20, bool)
        mask[folds[0][0]] = True
        folds[0] = (mask, folds[0][1])
    for call in _every_protocol(K, y, folds):
        with pytest.raises(ValueError, match=message):
            call()


def test_symmetry_tolerance_is_relative():
    K, y, folds = _small()
    K = 1e6 * K
    K[3, 7] += 1e-1  # 1e-7 of max |K|: rounding, accepted
    assert check_gram(K).shape == (20, 20)
    K[3, 7] += 10.0  # 1e-5 of max |K|: refused
    with pytest.raises(ValueError, match="not symmetric"):
        check_gram(K, name="k.npy")
    with pytest.raises(ValueError, match="^k.npy is not symmetric"):
        check_gram(K, name="k.npy")
    with pytest.raises(ValueError, match="k.npy must be a square"):
        check_gram(K[:3], name="k.npy")


@pytest.mark.parametrize("inner", [1, 0, -3, 2.5, True])
def test_inner_splits_below_two_is_refused(inner):
    K, y, folds = _small()
    for call in (lambda: svm_nested_cv(K, y, folds, c_grid=[1.0], inner_splits=inner),
                 lambda: gp_nested_cv(K, y, folds, diag_regs=[1e-3], inner_splits=inner),
                 lambda: evaluate(K, y, folds, protocols=("paper", "nested"), c_grid=[1.0], inner_splits=inner)):
        # the one policy (graph_ntk.checks): a wrong type is a TypeError, a count below 2 a ValueError
        exc, pattern = (TypeError, "must be an integer") if isinstance(inner, (bool, float)) else (ValueError,
                                                                                                   "must be at least 2")
        with pytest.raises(exc, match=rf"inner_splits .*{pattern}"):
            call()


def test_empty_or_bad_c_grid_is_refused():
    K, y, folds = _small()
    for grid in ([], [[1.0, 2.0]], [0.0, 1.0], [np.nan]):
        # one policy (graph_ntk.checks.as_grid): a non-number is a TypeError, a bad value a ValueError
        with pytest.raises((ValueError, TypeError), match=r"^c_grid(\[0\])? (is empty|must be)"):
            svm_paper_protocol(K, y, folds, c_grid=grid)
        with pytest.raises((ValueError, TypeError), match=r"^c_grid(\[0\])? (is empty|must be)"):
            svm_nested_cv(K, y, folds, c_grid=grid, inner_splits=2)
    with pytest.raises(ValueError, match="^nested_c_grid is empty"):
        evaluate(K, y, folds, c_grid=[1.0], nested_c_grid=[])
    with pytest.raises(ValueError, match="^c_grid is empty"):
        evaluate(K, y, folds, c_grid=[], nested_c_grid=[1.0])
    with pytest.raises(ValueError, match="diag_regs"):
        gp_nested_cv(K, y, folds, diag_regs=[])


def test_inner_folds_too_small_names_the_fold():
    K, y, folds = _small()
    y = y.copy()
    y[[0, 2, 4, 6, 8, 10, 12, 14, 16]] = 1
    y[0] = 0  # class 0 has 2 graphs: 0 and 18
    tr, te = np.arange(1, 20), np.array([0])
    with pytest.raises(ValueError, match="fold 0: its training part has a class with 1 graph"):
        svm_nested_cv(K, y, [(tr, te)], c_grid=[1.0], inner_splits=2)


def test_folds_may_be_a_generator(demo):
    # Each protocol reads the folds again; a generator must not come back empty the second time.
    ds, K = demo
    folds = [(np.asarray(tr), np.asarray(te)) for tr, te in default_folds(ds.y, n_splits=3)]
    listed = evaluate(K, ds.y, folds, protocols=("paper", "nested"), c_grid=[1.0], nested_c_grid=[1.0],
                      inner_splits=2)
    streamed = evaluate(K, ds.y, (f for f in folds), protocols=("paper", "nested"), c_grid=[1.0],
                        nested_c_grid=[1.0], inner_splits=2)
    assert len(streamed.results) == len(listed.results) == 3
    for a, b in zip(streamed.results, listed.results):
        np.testing.assert_array_equal(a.fold_accuracies, b.fold_accuracies)
