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
from graph_ntk.evaluation import (
    EvaluationResult,
    GraphKernelTransformer,
    ProtocolResult,
    _gp_scores,
    cosine_normalize,
    default_folds,
    evaluate,
    svm_nested_cv,
    svm_paper_protocol,
)
from graph_ntk.engine import GNTK, gram

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
    ours = _gp_scores(K, targets, train, test, regs)
    for r, reg in enumerate(regs):
        predict_fn = nt.predict.gp_inference(K[np.ix_(train, train)], targets[train], diag_reg=reg)
        ref = predict_fn("nngp", K[np.ix_(test, train)])
        np.testing.assert_allclose(ours[r], np.asarray(ref), rtol=1e-7, atol=1e-9)
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
    with pytest.raises(ValueError, match="not fitted"):
        GraphKernelTransformer().transform(ds.graphs[:2])
    with pytest.raises(TypeError, match=r"X\[0\]"):
        GraphKernelTransformer().fit([np.zeros(3)])
    with pytest.raises(ValueError, match="1-D"):
        GraphKernelTransformer().fit(np.zeros((3, 2)))
