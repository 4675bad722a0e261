"""scikit-learn conventions of GraphKernelTransformer: grids over the model's fields, each
distinct kernel computed once per fold, clone/get_params round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

import graph_ntk as gn
import graph_ntk.engine
import graph_ntk.transformer as tr

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def mutag():
    return gn.load_gin(DATA / "gin", "MUTAG")


def test_grid_over_model_fields_computes_each_kernel_once_per_fold(mutag, monkeypatch):
    tr._MEMO.clear()
    calls = {"gram": [], "diag": 0}
    real_gram, real_diag = graph_ntk.engine.gram, graph_ntk.engine.gram_diagonal

    def counted_gram(model, graphs, graphs2=None, **kw):
        calls["gram"].append((model.num_blocks, len(graphs), None if graphs2 is None else len(graphs2)))
        return real_gram(model, graphs, graphs2, **kw)

    def counted_diag(model, graphs, **kw):
        calls["diag"] += 1
        return real_diag(model, graphs, **kw)

    monkeypatch.setattr(graph_ntk.engine, "gram", counted_gram)
    monkeypatch.setattr(graph_ntk.engine, "gram_diagonal", counted_diag)
    idx = np.arange(0, 188, 3)
    X, y = [mutag.graphs[i] for i in idx], mutag.y[idx]
    pipe = Pipeline([("k", gn.GraphKernelTransformer(gn.GNTK(1, 1))), ("svm", SVC(kernel="precomputed"))])
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, {"k__model__num_blocks": [1, 2], "svm__C": [1.0, 10.0, 100.0]}, cv=cv)
    search.fit(X, y)
    assert search.best_params_["k__model__num_blocks"] in (1, 2)
    # per fold and depth: one train Gram and one test x train kernel, whatever the number of
    # C values; plus the refit on all data (train Gram only)
    squares = [c for c in calls["gram"] if c[2] is None]
    rects = [c for c in calls["gram"] if c[2] is not None]
    assert len(squares) == 2 * 3 + 1, calls["gram"]
    assert len(rects) == 2 * 3, calls["gram"]
    assert len(set(squares)) == len(squares) or len(X) in {c[1] for c in squares}


def test_params_round_trip_and_clone():
    t = gn.GraphKernelTransformer(gn.GNTK(2, 1), normalize=False)
    deep = t.get_params(deep=True)
    assert deep["model__num_blocks"] == 2 and deep["normalize"] is False
    t.set_params(model__num_blocks=3, model__aggregation="mean")
    assert t.model == gn.GNTK(3, 1, "mean")
    c = clone(t)
    assert c.model == t.model and c is not t
    with pytest.raises(TypeError, match="num_blocks must be an integer"):
        t.set_params(model__num_blocks=2.5)


# ----------------------------------------------------------------------- inputs users have
def test_foreign_graph_objects_are_converted_or_named(mutag):
    import networkx as nx

    a, b = nx.path_graph(3), nx.cycle_graph(4)
    nx.set_node_attributes(a, {0: "C", 1: "O", 2: "C"}, "atom")
    nx.set_node_attributes(b, "N", "atom")
    ds = gn.dataset_from_networkx([a, b], [0, 1], node_attr="atom")
    assert ds.encoding.tags == ("C", "N", "O")
    back = gn.graph_to_networkx(ds.graphs[0])
    assert [lab for _, lab in sorted(back.nodes(data="label"))] == ["C", "O", "C"]
    with pytest.raises(TypeError, match="dataset_from_networkx"):
        gn.graph_from_networkx(a, node_attr="atom")
    with pytest.raises(TypeError, match="graph_from_networkx"):
        gn.gram(gn.GNTK(1, 1), [a, b])

    class Data:  # PyG's attributes, no torch
        pass

    graphs = mutag.graphs[:3]
    flat_x = np.concatenate([np.eye(7)[g.node_labels] for g in graphs])
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs])
    ei = np.concatenate([g.edge_index + o for g, o in zip(graphs, offsets)], axis=1)
    batch = np.repeat(np.arange(3), [g.num_nodes for g in graphs])
    d = Data()
    d.x, d.edge_index, d.batch = flat_x, ei, batch
    with pytest.raises(TypeError, match="graphs_from_pyg"):
        gn.gram(gn.GNTK(1, 1), d)
    want = gn.gram(gn.GNTK(2, 1), graphs, progress=False)
    for given in (gn.graphs_from_pyg(d), (flat_x, ei, batch), gn.GraphBatch.from_graphs(gn.graphs_from_pyg(d))):
        np.testing.assert_allclose(gn.gram(gn.GNTK(2, 1), given, progress=False), want, rtol=1e-12)


def test_evaluate_n_jobs_gives_the_same_result(mutag):
    from graph_ntk.evaluation import evaluate

    K = gn.gram(gn.GNTK(1, 1), mutag, progress=False)
    one = evaluate(K, mutag.y, mutag.folds, nested_c_grid=[1.0, 100.0], c_grid=[1.0, 100.0], n_jobs=1)
    two = evaluate(K, mutag.y, mutag.folds, nested_c_grid=[1.0, 100.0], c_grid=[1.0, 100.0], n_jobs=2)
    assert one.to_dict() == two.to_dict()


def test_regression_protocol_on_graph_sizes(mutag):
    from graph_ntk.evaluation import evaluate

    K = gn.gram(gn.GNTK(2, 1), mutag, progress=False)
    y = np.array([g.num_nodes for g in mutag.graphs], float) + 0.25
    res = evaluate(K, y, mutag.folds, protocols=("ridge",))
    r = res["nested_kernel_ridge"]
    assert r.metric == "R2" and r.mean > 0.9 and all(c["rmse"] >= 0 for c in r.selected)
    with pytest.raises(ValueError, match="protocols=\\('ridge',\\)"):
        evaluate(K, y, mutag.folds)


def test_notebook_grade_reprs(mutag):
    import json

    from graph_ntk.evaluation import evaluate

    K = gn.gram(gn.GNTK(1, 1), mutag, progress=False)
    res = evaluate(K, mutag.y, mutag.folds, c_grid=[1.0], nested_c_grid=[1.0])
    import graph_ntk.nn as nn

    for obj in (mutag, mutag.graphs[0], mutag.encoding, gn.GNTK(), res, res["nested_svm"],
                gn.GraphBatch.from_graphs(mutag.graphs[:3]), nn.serial(nn.Dense(4), nn.Relu())):
        assert len(repr(obj)) < 1000, type(obj)
    assert len(res._repr_markdown_()) < 1000 and "<table>" in res._repr_html_()
    json.dumps(res.to_dict())
    assert res["nested SVM"] is res["nested_svm"]


# scikit-learn's estimator checks that apply to a transformer of graphs. The others feed
# numeric arrays X (shape (n, d)) or sparse matrices, which are not graphs: a precomputed-kernel
# transformer refuses them by design (check_estimators_overwrite_params,
# check_dont_overwrite_parameters, check_n_features_in_after_fitting, check_estimator_sparse_*,
# check_fit2d_*, check_transformer_general, ...). Their intent (params not overwritten by fit,
# fit is deterministic) is checked on graphs below.
APPLICABLE_CHECKS = ["check_no_attributes_set_in_init", "check_get_params_invariance", "check_set_params",
                     "check_parameters_default_constructible", "check_estimator_cloneable", "check_estimator_repr",
                     "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order"]


@pytest.mark.parametrize("check", APPLICABLE_CHECKS)
def test_sklearn_estimator_checks_that_apply(check):
    import sklearn.utils.estimator_checks as ec

    getattr(ec, check)("GraphKernelTransformer", gn.GraphKernelTransformer(gn.GNTK(1, 1)))


def test_fit_keeps_params_and_is_deterministic(mutag):
    t = gn.GraphKernelTransformer(gn.GNTK(1, 1), normalize=False)
    before = {k: v for k, v in t.get_params().items()}
    a = t.fit_transform(mutag.graphs[:10])
    assert t.get_params() == before
    tr._MEMO.clear()
    np.testing.assert_array_equal(clone(t).fit_transform(mutag.graphs[:10]), a)


def test_gram_diagonal_is_cached_like_the_blocks(mutag, tmp_path, monkeypatch):
    from graph_ntk.engine import item_path

    first = gn.gram_diagonal(gn.GNTK(2, 1), mutag, cache_dir=tmp_path)
    np.testing.assert_allclose(first, np.diag(gn.gram(gn.GNTK(2, 1), mutag, progress=False)), rtol=1e-12)
    monkeypatch.setattr(item_path.ItemEngine, "dispatch", lambda *a: pytest.fail("recomputed a cached block"))
    np.testing.assert_array_equal(gn.gram_diagonal(gn.GNTK(2, 1), mutag, cache_dir=tmp_path), first)


def test_one_progress_bar_per_job_with_stages_as_postfix(mutag, capsys):
    gn.gram(gn.GNTK(3, 1), mutag, progress=True)
    err = capsys.readouterr().err.replace("\r", "\n")
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(line.startswith("gram:") for line in lines), lines[:5]  # no per-stage bars
    assert any("stage 3/3" in line for line in lines)  # the running stage, as the bar's postfix
    assert "100%" in lines[-1]
