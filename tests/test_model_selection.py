"""Repeated nested CV over candidate kernels, paired comparisons and the verified score cache
(graph_ntk.model_selection), and the cache/resume logic of experiments/tu_gntk.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from experiment_modules import load_experiment
from scipy import stats

from graph_ntk.engine.files import CorruptBlockWarning, block_path
from graph_ntk.evaluation import cosine_normalize, default_folds, svm_nested_cv
from graph_ntk.model_selection import (CandidateScores, ScoreCache, nested_select, paired_comparison,
                                       repeated_splits, svm_candidate_scores)

C_GRID = [0.01, 1.0, 100.0]


def _data(n: int = 60, seed: int = 0):
    """Two noisy linear-kernel candidates on a two-class problem (one informative, one not)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 5)) + 0.8 * y[:, None]
    noise = rng.normal(size=(n, 5))
    good = cosine_normalize(x @ x.T + 5.0)
    bad = cosine_normalize(noise @ noise.T + 5.0)
    return y, {"good": good, "bad": bad}


def test_repeated_splits_are_stratified_partitions_fixed_by_seed():
    y = np.array([0] * 30 + [1] * 20)
    s = repeated_splits(y, n_repeats=3, n_splits=5, seed=7)
    for rep in s:
        tests = np.concatenate([te for _, te in rep])
        assert sorted(tests.tolist()) == list(range(50))
        for tr, te in rep:
            assert np.intersect1d(tr, te).size == 0 and (y[te] == 1).sum() == 4
    again = repeated_splits(y, n_repeats=3, n_splits=5, seed=7)
    assert all(np.array_equal(a[1], b[1]) for ra, rb in zip(s, again) for a, b in zip(ra, rb))
    assert not np.array_equal(s[0][0][1], s[1][0][1])  # repetitions reshuffle
    with pytest.raises(ValueError, match="n_splits"):
        repeated_splits(y, 2, 1)


def test_nested_select_equals_refitting_nested_cv():
    """Selection read off cached scores = svm_nested_cv refitting over the same family."""
    y, grams = _data()
    folds = default_folds(y, 4, seed=3)
    scores = {k: svm_candidate_scores(K, y, [folds], c_grid=C_GRID, inner_splits=3) for k, K in grams.items()}
    ours = nested_select(scores, C_GRID)
    ref = svm_nested_cv(grams, y, folds, c_grid=C_GRID, normalizations=("cosine",), inner_splits=3)
    np.testing.assert_array_equal(ours.accuracies[0], ref.fold_accuracies)
    assert [(s["kernel"], s["C"]) for s in ours.selected[0]] == [(s["kernel"], s["C"]) for s in ref.selected]


def test_selection_never_sees_the_test_fold_labels():
    """Scrambling the outer test labels changes only the outer accuracies, never the choice."""
    y, grams = _data(seed=1)
    tr, te = default_folds(y, 5, seed=0)[2]
    y_bad = y.copy()
    y_bad[te] = 1 - y_bad[te]
    clean = {k: svm_candidate_scores(K, y, [[(tr, te)]], c_grid=C_GRID, inner_splits=3) for k, K in grams.items()}
    dirty = {k: svm_candidate_scores(K, y_bad, [[(tr, te)]], c_grid=C_GRID, inner_splits=3) for k, K in grams.items()}
    for k in grams:
        np.testing.assert_array_equal(clean[k].inner, dirty[k].inner)
        np.testing.assert_allclose(clean[k].outer, 1.0 - dirty[k].outer)  # binary: flipped labels
    assert nested_select(clean, C_GRID).selected == nested_select(dirty, C_GRID).selected


def test_nested_select_tie_breaks_and_validates():
    inner = np.zeros((1, 2, 3))
    outer = np.arange(6, dtype=float).reshape(1, 2, 3) / 10
    r = nested_select({"a": CandidateScores(inner, outer), "b": CandidateScores(inner + 0, outer + 0.5)}, C_GRID)
    assert [s["kernel"] for s in r.selected[0]] == ["a", "a"] and r.selected[0][0]["C"] == 0.01
    np.testing.assert_allclose(r.accuracies, [[0.0, 0.3]])
    with pytest.raises(ValueError, match="c_grid"):
        nested_select({"a": CandidateScores(inner, outer)}, [1.0])
    with pytest.raises(ValueError, match="empty"):
        nested_select({}, C_GRID)


def test_paired_comparison_on_known_inputs():
    a = np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.9, 0.9, 0.9], [0.5, 0.5, 0.5, 0.5]])
    b = np.array([[0.8, 0.8, 0.6, 0.7], [0.8, 0.8, 0.8, 0.8], [0.4, 0.5, 0.5, 0.5]])
    out = paired_comparison(a, b)
    d = a - b
    assert out["mean_diff"] == pytest.approx(d.mean())
    assert out["std_diff"] == pytest.approx(d.mean(axis=1).std())
    assert (out["wins"], out["losses"], out["ties"]) == (7, 1, 4)
    assert out["p_sign"] == pytest.approx(stats.binomtest(7, 8).pvalue)
    assert out["p_wilcoxon"] == pytest.approx(stats.wilcoxon(d.mean(axis=1)).pvalue)
    assert np.isnan(paired_comparison(a[:1], b[:1])["p_wilcoxon"])
    with pytest.raises(ValueError, match="same shape"):
        paired_comparison(a, b[:2])


def test_score_cache_detects_corruption(tmp_path):
    cache = ScoreCache(tmp_path)
    arr = np.arange(12, dtype=float).reshape(3, 4)
    cache.put({"k": 1}, arr)
    np.testing.assert_array_equal(cache.get({"k": 1}, (3, 4)), arr)
    assert cache.get({"k": 2}, (3, 4)) is None
    path = block_path(tmp_path, cache.key({"k": 1}))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(CorruptBlockWarning):
        assert cache.get({"k": 1}, (3, 4)) is None


def _experiment():
    return load_experiment("tu_gntk")


def test_nested_scores_resume_from_the_archive_on_a_fresh_machine(tmp_path, monkeypatch):
    """Nested scores read back from the committed archive (no Gram cache needed) are those
    computed; a Gram that changed is rescored; a damaged archive is refused, not overwritten."""
    exp = _experiment()
    arch = load_experiment("score_archive")
    y, grams = _data(40)
    rep = repeated_splits(y, 1, 4, seed=0)[0]
    path = tmp_path / "TOY.json.gz"
    desc = {"candidate": "good|cos", "repetition": 0, "outer": 4}
    fp = [arch.gram_fingerprint(grams["good"])]
    a = arch.ScoreArchive(path)
    first, seconds = exp.nested_rep_scores(lambda: grams["good"], y, rep, np.array(C_GRID), 3, a, desc, fp)
    assert not path.exists()  # put() alone writes nothing: save() does, once per repetition
    a.save()

    def refuse(*a, **k):
        raise AssertionError("recomputed despite a valid archive")

    monkeypatch.setattr(exp, "svm_candidate_scores", refuse)
    # float32 rounding of the same Gram (another machine) still matches
    fp32 = [arch.gram_fingerprint(grams["good"].astype(np.float32))]
    again, seconds_again = exp.nested_rep_scores(lambda: grams["good"], y, rep, np.array(C_GRID), 3,
                                                 arch.ScoreArchive(path), desc, fp32)
    np.testing.assert_array_equal(first, again)
    assert seconds_again == pytest.approx(seconds, abs=1e-3)  # the cost of the first computation
    # Another Gram under the same description is not trusted.
    with pytest.raises(AssertionError, match="recomputed"):
        exp.nested_rep_scores(lambda: grams["bad"], y, rep, np.array(C_GRID), 3, arch.ScoreArchive(path), desc,
                              [arch.gram_fingerprint(grams["bad"])])
    with pytest.raises(AssertionError, match="recomputed"):  # nor another repetition
        exp.nested_rep_scores(lambda: grams["good"], y, rep, np.array(C_GRID), 3, arch.ScoreArchive(path),
                              {**desc, "repetition": 1}, fp)
    # A damaged or edited file is refused with a clear error.
    import gzip
    import json
    doc = json.loads(gzip.decompress(path.read_bytes()))
    next(iter(doc["entries"].values()))["scores"][1][0][0] = 1.0
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(ValueError, match="checksum"):
        arch.ScoreArchive(path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="not a readable score archive"):
        arch.ScoreArchive(path)


def test_experiment_families_and_sums():
    exp = _experiment()
    assert exp.family_of("ntk L3 R2 sum JK|cos", (1, 3)) == ["graph_ntk best", "GNTK"]
    assert exp.family_of("nngp L1 R2 sum|cos", (1, 3)) == ["graph_ntk best", "GNNGP"]
    assert exp.family_of("wl h2|raw", (1, 3)) == ["graph_ntk best", "WL"]
    assert exp.family_of("ntk L3 R2 sum JK + wl h3|cos", (1, 3)) == ["graph_ntk best"]
    # Moonshot parts stay out of the reference families: other depths, other inputs.
    assert exp.family_of("ntk L5 R2 sum JK|cos", (1, 3)) == ["graph_ntk best"]
    assert exp.family_of("ntk L5 R2 sum JK|cos", (5, 7)) == ["graph_ntk best", "GNTK"]
    assert exp.family_of("nngp L3 R1 sum rel JK|cos", (1, 3)) == ["graph_ntk best"]
    _, g = _data(10)
    grams = {"ntk L3 R1 sum JK": g["good"] + 1, "ntk L3 R1 sum": g["good"],
             **{f"wl h{h}": g["bad"] + 1 for h in exp.WL_H}}
    f = exp.forms(grams, ["cos", "raw"], True)
    assert "ntk L3 R1 sum JK + wl h3|cos" in f and "ntk L3 R1 sum + wl h3|cos" not in f
    assert sorted(k for k in f if "+" in k) == ["ntk L3 R1 sum JK + wl h3|cos", "ntk L3 R1 sum JK + wl h6|cos"]
    total = f["ntk L3 R1 sum JK + wl h3|cos"]()
    np.testing.assert_allclose(np.diag(total), 1.0)
    np.testing.assert_allclose(total, cosine_normalize(cosine_normalize(grams["ntk L3 R1 sum JK"])
                                                       + cosine_normalize(grams["wl h3"])), rtol=1e-14)
    # A float32 Gram (how NCI1's are held) gives the same forms as its float64 copy.
    g32 = {k: K.astype(np.float32) for k, K in grams.items()}
    g64 = {k: K.astype(np.float64) for k, K in g32.items()}
    a, b = exp.forms(g32, ["cos", "raw"], True), exp.forms(g64, ["cos", "raw"], True)
    for k in a:
        assert a[k]().dtype == np.float64
        np.testing.assert_array_equal(a[k](), b[k]())
    raw = f["wl h2|raw"]()
    assert raw.min() == 1.0 and np.allclose(raw * (grams["wl h2"].min()), grams["wl h2"])


def test_experiment_nested_grid_restriction():
    exp = _experiment()
    keep = [c for c in ("ntk L3 R1 sum JK|cos", "nngp L1 R2 sum|cos", "ntk L3 R1 mean|raw", "wl h4|cos",
                        "ntk L3 R1 sum JK + wl h3|cos", "ntk L3 R3 sum JK + wl h3|cos")
            if exp.in_grid(c, [1], ["sum"])]
    assert keep == ["ntk L3 R1 sum JK|cos", "wl h4|cos", "ntk L3 R1 sum JK + wl h3|cos"]
    assert exp.in_grid("nngp L1 R2 mean|cos", [1, 2], ["sum", "mean"])


def test_experiment_paper_search_grows_with_the_search():
    exp = _experiment()
    rng = np.random.default_rng(0)
    accs = {f"ntk L{d} R{R} {sc}{jk}|cos": rng.uniform(0.4, 0.8, (30, 10))
            for d in (1, 3) for R in (1, 2) for sc in ("sum", "mean") for jk in ("", " JK")}
    accs["wl h1|cos"] = np.ones((30, 10))  # WL is not part of the GNTK search
    rows = exp.paper_search(accs, 4)
    assert {r["C"] for r in rows} == {30, 15}
    full = {r["C"]: r["mean"] for r in rows if r["grid"] == "all"}
    assert full[30] == max(a.mean(axis=1).max() for k, a in accs.items() if k.startswith("ntk")) < 1
    assert full[15] <= full[30]
    for r in rows:  # every part is no better than the whole grid at the same C grid
        assert r["mean"] <= full[r["C"]] and r["kernels"] == (16 if r["grid"] == "all" else 4)


def _write_gin_with_folds(root: Path, name: str, n: int = 40) -> None:
    """A toy GIN-format dataset with 10 folds: class 0 cycles, class 1 paths (4-7 nodes, tags 0/1)."""
    rng = np.random.default_rng(0)
    lines = [str(n)]
    for g in range(n):
        size, label = int(rng.integers(4, 8)), g % 2
        nb = [[(v - 1) % size, (v + 1) % size] for v in range(size)]
        if label:
            nb[0].remove(size - 1), nb[size - 1].remove(0)
        lines.append(f"{size} {label}")
        lines += [" ".join(map(str, [int(rng.integers(2)), len(x), *x])) for x in nb]
    (root / name / "10fold_idx").mkdir(parents=True)
    (root / name / f"{name}.txt").write_text("\n".join(lines) + "\n")
    for k, test in enumerate(np.array_split(rng.permutation(n), 10), start=1):
        train = np.setdiff1d(np.arange(n), test)
        (root / name / "10fold_idx" / f"test_idx-{k}.txt").write_text("\n".join(map(str, test)) + "\n")
        (root / name / "10fold_idx" / f"train_idx-{k}.txt").write_text("\n".join(map(str, train)) + "\n")


def test_experiment_end_to_end_keeps_moonshot_depths_out_of_the_reference(tmp_path, monkeypatch):
    """A whole (tiny) run: GNTK/GNNGP at a moonshot depth enter graph_ntk best only, never the
    GNTK/GNNGP families or the paper table, and they show in the depth profile."""
    exp = _experiment()
    _write_gin_with_folds(tmp_path / "gin", "TOY")
    monkeypatch.setitem(exp.DATASETS, "TOY", ("TOY", False, (1,)))
    args = exp.build_parser().parse_args(
        ["--data", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
         "--mlp-layers", "1", "--scalings", "sum",
         "--paper-c-step", "40", "--paper-forms", "cos", "--nested-forms", "cos", "--repeats", "1", "--inner", "2",
         "--nested-c", "2", "--moonshot-depths", "2", "--jobs", "1"])
    r = exp.run_dataset("TOY", args)
    assert sorted(r["paper"]) == sorted([f"ntk L1 R1 sum{jk}|cos" for jk in ("", " JK")]
                                        + [f"nngp L1 R1 sum{jk}|cos" for jk in ("", " JK")]
                                        + [f"wl h{h}|cos" for h in exp.WL_H])
    n = r["nested"]
    assert n["GNTK"]["candidates"] == n["GNNGP"]["candidates"] == 2 and n["WL"]["candidates"] == 6
    # 2 depths x NTK/NNGP x JK on/off, WL, and the sums L1 JK + h1, h6 and L2 JK + h2, h6
    assert n["graph_ntk best"]["candidates"] == r["protocol"]["candidates"] == 8 + 6 + 4
    assert sorted(map(int, r["nested_by_depth"])) == [1, 2] and r["protocol"]["moonshot_depths"] == [2]
    assert r["nested_inputs"]["L 1, 2"]["candidates"] == 4
    assert 0.5 < n["GNTK"]["mean"] <= 1.0  # cycles vs paths is learnable


def test_experiment_nested_only_adds_repetitions_from_the_archive(tmp_path, monkeypatch):
    """A second run on a fresh Gram cache (another machine) with more repetitions scores only
    the new repetition, keeps the first run's paper protocol, and reproduces its repetition."""
    import json

    exp = _experiment()
    _write_gin_with_folds(tmp_path / "gin", "TOY")
    monkeypatch.setitem(exp.DATASETS, "TOY", ("TOY", False, (1,)))
    import tu_gntk_report  # as main() imports it (tu_gntk put experiments/ on the path)
    for nums in tu_gntk_report.PUBLISHED.values():  # a row of published numbers for the toy
        monkeypatch.setitem(nums, "TOY", (50.0, 1.0))
    out = tmp_path / "out"
    common = ["--datasets", "TOY", "--data", str(tmp_path), "--out", str(out), "--mlp-layers", "1", "--scalings",
              "sum", "--paper-c-step", "40", "--paper-forms", "cos", "--nested-forms", "cos", "--inner", "2",
              "--nested-c", "2", "--no-sums", "--jobs", "1"]
    with pytest.raises(SystemExit, match="run those datasets without --nested-only first"):
        exp.main(common + ["--cache-dir", str(tmp_path / "c0"), "--repeats", "1", "--nested-only"])
    exp.main(common + ["--cache-dir", str(tmp_path / "c1"), "--repeats", "1"])
    first = json.loads((out / "tu_gntk.json").read_text())["datasets"]["TOY"]
    calls = []
    real = exp.svm_candidate_scores
    monkeypatch.setattr(exp, "svm_candidate_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    exp.main(common + ["--cache-dir", str(tmp_path / "c2"), "--repeats", "2", "--nested-only"])
    second = json.loads((out / "tu_gntk.json").read_text())["datasets"]["TOY"]
    n_cands = first["protocol"]["candidates"]
    assert len(calls) == n_cands  # repetition 1 only: repetition 0 came from the archive
    assert second["paper"] == first["paper"] and second["paper_command"] == first["command"]
    assert second["protocol"]["repeats"] == 2 and second["protocol"]["paper_c"] == first["protocol"]["paper_c"]
    for fam in first["nested"]:
        assert second["nested"][fam]["accuracies"][0] == first["nested"][fam]["accuracies"][0]
        assert len(second["nested"][fam]["accuracies"]) == 2
    assert "nested CV: `" in (out / "tu_gntk.md").read_text()


def _write_tu(folder: Path, name: str, graphs, attrs) -> None:
    """A tiny TU-format dataset: ``graphs`` as (edges, labels) per graph, ``attrs`` one value per node."""
    folder.mkdir(parents=True)
    arcs, ind, labels, offset = [], [], [], 0
    for g, (edges, lab) in enumerate(graphs):
        for u, v in edges:
            arcs += [(u + offset + 1, v + offset + 1), (v + offset + 1, u + offset + 1)]
        ind += [g + 1] * len(lab)
        labels += list(lab)
        offset += len(lab)
    (folder / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in arcs))
    (folder / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in ind))
    (folder / f"{name}_graph_labels.txt").write_text("".join(f"{g % 2}\n" for g in range(len(graphs))))
    (folder / f"{name}_node_labels.txt").write_text("".join(f"{t}\n" for t in labels))
    (folder / f"{name}_node_attributes.txt").write_text("".join(f"{a}\n" for a in attrs))


def test_experiment_attribute_dataset(tmp_path):
    from graph_ntk.data import Graph, GraphDataset

    exp = _experiment()
    graphs = [([(0, 1), (1, 2)], [0, 1, 0]), ([(0, 1)], [1, 1])]
    attrs = [1.0, 2.0, 3.0, 4.0, 1000.0]  # the last one an outlier, clipped to the 99th percentile
    _write_tu(tmp_path / "toy", "toy", graphs, attrs)
    gin = GraphDataset("toy", [Graph(len(lab), np.array(e).T, node_labels=np.array(lab)) for e, lab in graphs],
                       np.array([0, 1]), num_tags=2)
    got = exp.attribute_dataset(gin, tmp_path, "toy")
    x = np.concatenate([g.x[:, 0] for g in got.graphs])
    a = np.clip(attrs, *np.percentile(attrs, [1, 99]))
    np.testing.assert_allclose(x, a / np.sqrt(np.mean(a ** 2)))
    np.testing.assert_allclose(np.mean(x ** 2), 1.0)
    assert [g.node_labels.tolist() for g in got.graphs] == [[0, 1, 0], [1, 1]]
    # A GIN file whose graphs differ from the TU file's is refused, not silently misaligned.
    swapped = GraphDataset("toy", gin.graphs[::-1], gin.y, num_tags=2)
    with pytest.raises(ValueError, match="same order"):
        exp.attribute_dataset(swapped, tmp_path, "toy")
    assert exp.family_of("ntk L3 R1 sum attr JK|cos", (1, 3)) == ["graph_ntk best"]


def test_experiment_reference_self_loops():
    """The reference's A + A^T + I counts a self-loop twice: a looped node aggregates itself
    with weight 3. For one looped node, one block and no JK the NTK is then 3^2 times that of
    the bare node (every term of the ReLU recursion is homogeneous in the input covariance)."""
    from graph_ntk.data import Graph, GraphDataset
    from graph_ntk.engine import GNTK, gram

    exp = _experiment()
    looped = Graph(1, np.array([[0], [0]]), node_labels=np.array([0]))
    bare = Graph(1, np.zeros((2, 0), dtype=int), node_labels=np.array([0]))
    ds = exp.reference_self_loops(GraphDataset("t", [looped, bare], np.array([0, 1]), num_tags=1))
    assert ds.graphs[0].edge_weight.tolist() == [2.0] and ds.graphs[1].edge_weight is None
    K = gram(GNTK(1, 1, "sum", jumping_knowledge=False), ds, progress=False)
    np.testing.assert_allclose(K[0, 0] / K[1, 1], 9.0, rtol=1e-12)
    np.testing.assert_allclose(K[0, 1] / K[1, 1], 3.0, rtol=1e-12)


def _write_tu_edge_labels(folder: Path, name: str, graphs) -> None:
    """A tiny TU dataset with edge labels: ``graphs`` as (edges, bond labels, node labels, class)."""
    folder.mkdir(parents=True, exist_ok=True)
    arcs, bonds, ind, labels, classes, offset = [], [], [], [], [], 0
    for g, (edges, bond, lab, cls) in enumerate(graphs):
        for (u, v), b in zip(edges, bond):
            arcs += [(u + offset + 1, v + offset + 1), (v + offset + 1, u + offset + 1)]
            bonds += [b, b]
        ind += [g + 1] * len(lab)
        labels += list(lab)
        classes.append(cls)
        offset += len(lab)
    (folder / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in arcs))
    (folder / f"{name}_edge_labels.txt").write_text("".join(f"{b}\n" for b in bonds))
    (folder / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in ind))
    (folder / f"{name}_graph_labels.txt").write_text("".join(f"{c}\n" for c in classes))
    (folder / f"{name}_node_labels.txt").write_text("".join(f"{t}\n" for t in labels))


def test_experiment_edge_label_dataset(tmp_path):
    """TU graphs in another order, with other tag and class numbers and without GIN's extra
    (hydrogen) nodes are matched to the GIN graphs exactly; other graphs are refused."""
    from graph_ntk.data import Graph, GraphDataset

    exp = _experiment()
    und = lambda e: np.array(e + [(v, u) for u, v in e]).T  # noqa: E731
    gin = GraphDataset("toy", [
        Graph(4, und([(0, 1), (1, 2), (2, 3)]), node_labels=np.array([0, 1, 0, 0])),
        Graph(2, und([(0, 1)]), node_labels=np.array([1, 1])),
        Graph(4, und([(0, 1), (1, 2), (2, 0), (2, 3)]), node_labels=np.array([0, 0, 1, 2])),  # node 3: hydrogen
    ], np.array([0, 1, 0]), num_tags=3, meta={"tag_values": np.array([6, 8, 19])})
    # TU: order (1, 2, 0), tags 6 -> 'C' as 3, 8 -> 'O' as 7, classes 0/1 -> 1/-1, no hydrogen
    _write_tu_edge_labels(tmp_path / "toy", "toy", [
        ([(0, 1)], [2], [7, 7], -1),
        ([(0, 1), (1, 2), (2, 0)], [1, 1, 2], [3, 3, 7], 1),
        ([(0, 1), (1, 2), (2, 3)], [0, 1, 0], [3, 7, 3, 3], 1),
    ])
    rel, ambiguous = exp.edge_label_dataset(gin, tmp_path, "toy", drop_tag_value=19)
    assert ambiguous == 0 and rel.meta["num_edge_types"] == 3 and rel.y.tolist() == [0, 1, 0]
    g0, g1, g2 = rel.graphs
    assert g0.node_labels.tolist() == [0, 1, 0, 0] and g2.node_labels.tolist() == [0, 0, 1]
    arcs = lambda g: sorted(zip(*g.edge_index.tolist(), g.edge_type.tolist()))  # noqa: E731
    assert arcs(g0) == sorted([(0, 1, 0), (1, 0, 0), (1, 2, 1), (2, 1, 1), (2, 3, 0), (3, 2, 0)])
    assert arcs(g1) == [(0, 1, 2), (1, 0, 2)]
    assert arcs(g2) == sorted([(0, 1, 1), (1, 0, 1), (1, 2, 1), (2, 1, 1), (2, 0, 2), (0, 2, 2)])
    # without removing the hydrogens the graphs differ: refused, not silently misaligned
    with pytest.raises(ValueError, match="no exact counterpart"):
        exp.edge_label_dataset(gin, tmp_path, "toy")
    # a node tag that maps to two TU labels is refused too
    _write_tu_edge_labels(tmp_path / "bad", "bad", [
        ([(0, 1)], [2], [7, 7], -1),
        ([(0, 1), (1, 2), (2, 0)], [1, 1, 2], [3, 3, 7], 1),
        ([(0, 1), (1, 2), (2, 3)], [0, 1, 0], [3, 7, 3, 9], 1),
    ])
    with pytest.raises(ValueError):
        exp.edge_label_dataset(gin, tmp_path / "bad", "bad", drop_tag_value=19)
    assert exp.family_of("ntk L1 R1 sum rel JK|cos", (1, 3)) == ["graph_ntk best"]
    assert exp.family_of("ntk L1 R1 sum rel JK + wl h1|cos", (1, 3)) == ["graph_ntk best"]


def test_committed_nested_tables_are_read_off_the_committed_scores():
    """experiments/results/nested_scores/ holds the SVM scores behind the committed nested tables:
    every family's mean, fold accuracies and paired differences follow from them exactly."""
    import json

    from experiment_modules import EXPERIMENTS

    exp, arch = _experiment(), load_experiment("score_archive")
    res = json.loads((EXPERIMENTS / "results" / "tu_gntk.json").read_text())["datasets"]
    checked = []
    for path in sorted((EXPERIMENTS / "results" / "nested_scores").glob("*.json.gz")):
        name = path.name.removesuffix(".json.gz")
        r, p = res[name], res[name]["protocol"]
        by_label = arch.ScoreArchive(path).by_label()
        scores = {}
        for k in r["nested_candidates"]:
            reps = [by_label[exp.archive_label(k, i, p["inner"], p["nested_c"], p["outer"])] for i in range(p["repeats"])]
            scores[k] = CandidateScores(np.stack([b[0] for b in reps]), np.stack([b[1] for b in reps]))
        accs = {}
        for fam, stored in r["nested"].items():
            members = {k: s for k, s in scores.items() if fam in exp.family_of(k, r["depths"])}
            got = nested_select(members, np.logspace(-2, 4, p["nested_c"]))
            assert len(members) == stored["candidates"]
            np.testing.assert_array_equal(got.accuracies, stored["accuracies"])
            assert got.mean == pytest.approx(stored["mean"], abs=1e-12)
            accs[fam] = got.accuracies
        for pair, stored in r["paired"].items():
            a, b = pair.split(" - ")
            assert paired_comparison(accs[a], accs[b])["mean_diff"] == pytest.approx(stored["mean_diff"], abs=1e-12)
        checked.append(name)
    assert {"NCI1", "COLLAB"} <= set(checked)
