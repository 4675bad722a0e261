"""Graph-level GP with uncertainty: the posterior against a direct float64 solve and NT's
``gp_inference``, the log marginal likelihood against scipy's Gaussian density, model
selection, the metrics against hand-computed values, and the boundary checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import graph_ntk as gn
import neural_tangents as nt
from graph_ntk.gp import gp_log_marginal_likelihood, gp_predict
from graph_ntk.gp_estimators import GraphGPClassifier, GraphGPRegressor
from graph_ntk.gp_metrics import calibration_curve, interval_coverage, nlpd, regression_metrics


@pytest.fixture(scope="module")
def grams():
    """A real GNTK / GNNGP Gram of 40 demo graphs (float64), split 30 / 10, and 2 targets: one in
    the span of the NTK's training columns (a GP can learn it), one the graph sizes."""
    ds = gn.make_demo_dataset(40, seed=1)
    ntk, nngp = gn.gram(gn.GNTK(num_blocks=2, num_mlp_layers=1), ds.graphs, get=("ntk", "nngp"), progress=False)
    sizes = np.array([g.num_nodes for g in ds.graphs], float)
    smooth = ntk[:, :6] @ np.array([1.0, -2.0, 0.5, 1.0, -1.0, 0.3]) / np.diag(ntk).mean()
    y = np.stack([smooth, sizes * (1 + ds.y)], axis=1)
    return {"ntk": ntk, "nngp": nngp}, y, np.arange(30), np.arange(30, 40)


def _direct(K, y, tr, te, reg, center):
    """The posterior by explicit inverse of K_tt + reg * mean diag * I (float64)."""
    k_tt, k_st, k_ss = K[np.ix_(tr, tr)], K[np.ix_(te, tr)], K[np.ix_(te, te)]
    A = k_tt + reg * np.trace(k_tt) / len(tr) * np.eye(len(tr))
    Ainv = np.linalg.inv(A)
    m = y[tr].mean(axis=0) if center else 0.0
    r = y[tr] - m
    return m + k_st @ Ainv @ r, np.diag(k_ss - k_st @ Ainv @ k_st.T), np.einsum("ij,ik,kj->j", r, Ainv, r) / len(tr)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_posterior_equals_direct_solve_and_neural_tangents(grams, get):
    Ks, y, tr, te = grams
    K = Ks[get]
    reg = 1e-3
    p = gp_predict(K[np.ix_(tr, tr)], K[np.ix_(te, tr)], np.diag(K)[te], y[tr], reg, center=False, amplitude=1.0)
    mean, var, _ = _direct(K, y, tr, te, reg, center=False)
    scale = np.abs(mean).max()
    np.testing.assert_allclose(p.mean, mean, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(p.latent_var, np.repeat(var[:, None], 2, 1), rtol=0, atol=1e-10 * np.diag(K).max())
    predict_fn = nt.predict.gp_inference(K[np.ix_(tr, tr)], y[tr], diag_reg=reg)
    ref = predict_fn("nngp", K[np.ix_(te, tr)], K[np.ix_(te, te)])
    np.testing.assert_allclose(p.mean, np.asarray(ref.mean), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(p.latent_var[:, 0], np.diag(np.asarray(ref.covariance)), rtol=0,
                               atol=1e-10 * np.diag(K).max())
    # Centred, ML amplitude: mean m + K A^-1 (y - m), variances s^2 (latent) and s^2 reg kbar (noise).
    q = gp_predict(K[np.ix_(tr, tr)], K[np.ix_(te, tr)], np.diag(K)[te], y[tr], reg)
    mean_c, var_c, amp = _direct(K, y, tr, te, reg, center=True)
    np.testing.assert_allclose(q.mean, mean_c, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(q.latent_var, var_c[:, None] * amp, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(q.noise_var, amp * reg * np.trace(K[np.ix_(tr, tr)]) / len(tr), rtol=1e-10)
    # One output at a time gives the same numbers (outputs are independent), as 1-D arrays.
    one = gp_predict(K[np.ix_(tr, tr)], K[np.ix_(te, tr)], np.diag(K)[te], y[tr, 1], reg)
    np.testing.assert_allclose(one.var, q.var[:, 1], rtol=1e-12)
    assert one.mean.shape == (10,)


@pytest.mark.usefixtures("x64")
def test_log_marginal_likelihood_equals_gaussian_density(grams):
    Ks, y, tr, _ = grams
    K = Ks["nngp"][np.ix_(tr, tr)]
    kbar = np.trace(K) / len(tr)
    for reg in (1e-4, 0.1):
        for amp in (0.7, 2.0):
            cov = amp * (K + reg * kbar * np.eye(len(tr)))
            ref = [scipy.stats.multivariate_normal(y[tr, j].mean() * np.ones(len(tr)), cov).logpdf(y[tr, j])
                   for j in range(2)]
            np.testing.assert_allclose(gp_log_marginal_likelihood(K, y[tr], reg, amplitude=amp), ref, rtol=1e-10)
        # The ML amplitude maximises the likelihood: no amplitude nearby does better, and the grid
        # path (eigendecomposition) equals the Cholesky path.
        ml = gp_log_marginal_likelihood(K, y[tr], reg)
        for f in (0.9, 1.1):
            amp = np.array([_direct(Ks["nngp"], y, tr, tr, reg, True)[2]]) * f
            assert (gp_log_marginal_likelihood(K, y[tr], reg, amplitude=amp[0]) < ml).all()
        np.testing.assert_allclose(gp_log_marginal_likelihood(K, y[tr], np.array([reg, 1.0]))[0], ml, rtol=1e-9)


@pytest.mark.usefixtures("x64")
def test_regressor_selects_by_lml_and_cv(grams):
    Ks, y, tr, te = grams
    regs = [1e-6, 1e-3, 0.1, 1.0]
    fit = {k: K[np.ix_(tr, tr)] for k, K in Ks.items()}
    gp = GraphGPRegressor(regs=regs).fit(fit, y[tr])
    lml = {(k, r): gp_log_marginal_likelihood(fit[k], y[tr], r).sum() for k in Ks for r in regs}
    assert (gp.kernel_, gp.reg_) == max(lml, key=lml.get)
    assert gp.scores_[(gp.kernel_, gp.reg_)] == pytest.approx(gp.log_marginal_likelihood_)
    pred = gp.predict({k: K[np.ix_(te, tr)] for k, K in Ks.items()}, {k: np.diag(K)[te] for k, K in Ks.items()})
    K = Ks[gp.kernel_]
    ref = gp_predict(K[np.ix_(tr, tr)], K[np.ix_(te, tr)], np.diag(K)[te], y[tr], gp.reg_)
    np.testing.assert_array_equal(pred.mean, ref.mean)
    np.testing.assert_array_equal(pred.var, ref.var)
    cv = GraphGPRegressor(regs=regs, selection="cv", cv=3).fit(fit, y[tr])
    assert cv.kernel_ in Ks and cv.reg_ in regs and len(cv.scores_) == 2 * len(regs)
    with pytest.raises(KeyError, match="selected kernel"):
        gp.predict({"other": K[np.ix_(te, tr)]}, {"other": np.diag(K)[te]})
    with pytest.raises(TypeError, match="mapping"):
        gp.predict(K[np.ix_(te, tr)], np.diag(K)[te])
    # On a target the kernel can represent (zero mean) the GP is accurate and its 95 % intervals cover.
    one = GraphGPRegressor(center=False).fit(Ks["ntk"][np.ix_(tr, tr)], y[tr, 0])
    p = one.predict(Ks["ntk"][np.ix_(te, tr)], np.diag(Ks["ntk"])[te])
    m = regression_metrics(y[te, 0], p.mean, p.var)
    assert m["r2"] > 0.9 and m["coverage95"] >= 0.7


def test_classifier_probabilities():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=60) > 0, "pos", "neg")
    K = X @ X.T + 1.0
    clf = GraphGPClassifier(regs=[1e-3, 0.1, 1.0]).fit(K[:40, :40], y[:40])
    proba = clf.predict_proba(K[40:, :40], np.diag(K)[40:])
    assert proba.shape == (20, 2) and np.allclose(proba.sum(axis=1), 1)
    assert (clf.classes_[proba.argmax(axis=1)] == clf.predict(K[40:, :40], np.diag(K)[40:])).all()
    assert np.mean(clf.predict(K[40:, :40], np.diag(K)[40:]) == y[40:]) > 0.8
    # The quadrature equals the closed form for two classes: P(f_a > f_b) = Phi((mu_a - mu_b) / sqrt(va + vb)).
    mean, var = np.array([[0.3, -0.2]]), np.array([[0.5, 2.0]])
    np.testing.assert_allclose(GraphGPClassifier._proba(mean, var)[0, 0], scipy.stats.norm.cdf(0.5 / np.sqrt(2.5)),
                               rtol=1e-10)
    cv = GraphGPClassifier(regs=[1e-3, 0.1], selection="cv", cv=3, cv_scoring="log_loss").fit(K[:40, :40], y[:40])
    assert cv.reg_ in (1e-3, 0.1)
    with pytest.raises(ValueError, match="single class"):
        GraphGPClassifier().fit(K[:5, :5], ["a"] * 5)


def test_metrics_by_hand():
    y, mu, var = np.array([0.0, 2.0, -1.0, 4.0]), np.array([0.5, 2.0, 0.0, 1.0]), np.array([1.0, 4.0, 0.25, 1.0])
    m = regression_metrics(y, mu, var)
    assert m["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 1 + 9) / 4))
    assert m["mae"] == pytest.approx((0.5 + 0 + 1 + 3) / 4)
    assert m["r2"] == pytest.approx(1 - 10.25 / np.sum((y - y.mean()) ** 2))
    assert m["nlpd"] == pytest.approx(-np.mean(scipy.stats.norm(mu, np.sqrt(var)).logpdf(y)))
    # |y - mu| / sigma = 0.5, 0, 2, 3: inside the 95 % interval (z 1.96) for the first two only.
    assert m["coverage95"] == 0.5
    lv, cov = calibration_curve(y, mu, var, [0.2, 0.5, 0.99])
    # covered at level p iff 2 Phi(z) - 1 <= p: z=0 always, z=0.5 (0.383) from 0.5 on, z=2 (0.954) at 0.99.
    assert cov.tolist() == [0.25, 0.5, 0.75]
    assert nlpd([1.0], [1.0], [1.0]) == pytest.approx(0.5 * np.log(2 * np.pi))


@pytest.mark.parametrize("call,match", [
    (lambda: gp_predict(np.eye(2), np.ones((1, 2)), [1.0], [1.0, np.nan], 0.1), "y_train contains NaN"),
    (lambda: gp_predict(np.eye(2), np.ones((1, 2)), [1.0], ["a", "b"], 0.1), "real numbers"),
    (lambda: gp_predict(np.eye(2), np.ones((1, 2)), [1.0], [1.0, 2.0, 3.0], 0.1), "2 rows"),
    (lambda: gp_predict(np.eye(2), np.ones((1, 2)), [1.0, 2.0], [1.0, 2.0], 0.1), "k_test_diag"),
    (lambda: gp_predict(np.eye(2), np.ones((1, 2)), [1.0], [1.0, 2.0], -1.0), "reg must be"),
    (lambda: gp_predict(np.eye(2), np.ones((1, 2)), [1.0], [1.0, 2.0], 0.1, amplitude="max"), "amplitude"),
    (lambda: gp_predict(np.eye(2), np.ones((1, 2)), [1.0], [1.0, 2.0], 0.1, center="yes"), "center"),
    (lambda: gp_log_marginal_likelihood(np.eye(2), [1.0, 2.0], [0.1, np.inf]), "reg must be"),
    (lambda: GraphGPRegressor(regs=[]), "regs"),
    (lambda: GraphGPRegressor(selection="aic"), "selection"),
    (lambda: GraphGPRegressor(cv=2.5), "cv must be"),
    (lambda: GraphGPRegressor(cv_scoring="accuracy"), "cv_scoring"),
    (lambda: GraphGPRegressor(seed=0.5), "seed"),
    (lambda: GraphGPRegressor().fit({}, [1.0]), "empty mapping"),
    (lambda: GraphGPRegressor().fit({"a": np.eye(2), "b": np.eye(3)}, [1.0, 2.0]), "candidate Gram 'b'"),
    (lambda: GraphGPRegressor().predict(np.eye(2), [1.0, 1.0]), "not fitted"),
    (lambda: GraphGPRegressor(regs=[0.0]).fit(np.zeros((3, 3)), [1.0, 2.0, 3.0]), "singular"),
    (lambda: regression_metrics([1.0, 2.0], [1.0], None), "same shape"),
    (lambda: nlpd([1.0], [1.0], [0.0]), "positive"),
    (lambda: interval_coverage([1.0], [1.0], [1.0], 1.0), "levels"),
])
def test_bad_arguments_name_themselves(call, match):
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        call()
