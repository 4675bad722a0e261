"""A graph's kernel never depends on its company.

For every description below, K(G, G') is the same (to 1e-12 relative, float64) whether the
pair is computed alone, inside a subset, after shuffling, as test x train against a
separately loaded training file that numbers its tags in another order, through the
transformer (with test tags the training graphs lack), through the CLI, and from a cache.
The reference is the Gram of the whole file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import graph_ntk as gn
import graph_ntk.nn as nn
from graph_ntk.cli import main as cli_main

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RTOL = 1e-12
# A rectangular (test x train) Gram sums its item kernels in another order than a symmetric
# one; the ReLU/erf closed forms take arccos of correlations within 1e-16 of 1, which turns
# that last-bit rounding into ~1e-10 (d arccos / d rho is unbounded at rho = 1). Between the
# two paths, entries agree to this bound (the GNTK reference fixtures are checked to 1e-8).
RTOL_CROSS = 1e-9


def _close(a, b, what, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    scale = max(float(np.abs(b).max()), 1e-300)
    err = float(np.abs(a - b).max()) / scale
    assert err <= rtol, f"{what}: relative difference {err:.3g}"


def _dense_first(agg="sum", w=1.0, b=0.0):
    return nn.serial(nn.Dense(32, W_std=w, b_std=b), nn.Aggregate(agg, add_self_loops=True), nn.Relu(),
                     nn.Dense(32), nn.Aggregate(agg), nn.Erf(), nn.Dense(8), nn.GlobalSumPool())


def _jk():
    block = nn.serial(nn.Aggregate("sum", add_self_loops=True), nn.Dense(16), nn.Relu(), nn.Dense(16))
    return nn.serial(nn.Dense(16, b_std=0.1), nn.FanOut(2), nn.parallel(nn.Identity(), block), nn.FanInConcat(),
                     nn.Dense(16), nn.Relu(), nn.GlobalMeanPool())


def _hierarchy():
    then = nn.serial(nn.Aggregate("sum", add_self_loops=True), nn.Dense(16), nn.Relu(), nn.GlobalSumPool())
    return nn.serial(nn.Dense(16), nn.Aggregate("mean", add_self_loops=True), nn.Dense(16), nn.Relu(),
                     nn.Dense(16), nn.StructurePool("graclus", then))


# name -> (model, get); every one on MUTAG's discrete tags (GIN file)
TAG_MODELS = {
    "gntk": (gn.GNTK(num_blocks=2, num_mlp_layers=2), "ntk"),
    "gntk-mean-nngp": (gn.GNTK(num_blocks=2, num_mlp_layers=1, aggregation="mean"), "nngp"),
    "dense-first-sum-ntk": (_dense_first("sum"), "ntk"),
    "dense-first-gcn-nngp-bias": (_dense_first("gcn", 1.3, 0.4), "nngp"),
    "jumping-knowledge-concat": (_jk(), "ntk"),
    "pool-hierarchy": (_hierarchy(), "ntk"),
}


@pytest.fixture(scope="module")
def mutag():
    return gn.load_gin(DATA / "gin", "MUTAG")


def _write_gin(folder: Path, name: str, ds: gn.GraphDataset, index) -> None:
    """``ds.graphs[index]`` as a GIN text file (raw tags and labels), in the order given."""
    lines = [str(len(index))]
    classes = ds.meta["classes"]
    for i in index:
        g = ds.graphs[i]
        raw = ds.encoding.decode_tags(g.node_labels)
        nbrs = [[] for _ in range(g.num_nodes)]
        for s, r in g.edge_index.T:
            nbrs[s].append(int(r))
        lines.append(f"{g.num_nodes} {int(classes[ds.y[i]])}")
        lines += [" ".join(map(str, [raw[u], len(nbrs[u]), *nbrs[u]])) for u in range(g.num_nodes)]
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / f"{name}.txt").write_text("\n".join(lines) + "\n")


def _split(ds, seed=0):
    """A training file holding every tag (first tags met in another order than the whole
    file) and a test file of other graphs."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds))
    train = list(order[:24])
    have = set()
    for i in train:
        have.update(ds.graphs[i].node_labels.tolist())
    for i in order[24:]:  # make sure every tag is in the training file
        new = set(ds.graphs[i].node_labels.tolist()) - have
        if new:
            train.append(i)
            have |= new
    test = [i for i in order if i not in set(train)][:10]
    return train[::-1], test


@pytest.mark.parametrize("name", sorted(TAG_MODELS))
def test_company_invariance_on_tags(name, mutag, tmp_path):
    model, get = TAG_MODELS[name]
    rtol = RTOL_CROSS  # reference: a symmetric Gram; compared: test x train
    train, test = _split(mutag)
    picked = train + test
    full = gn.gram(model, mutag.subset(picked), get=get, progress=False)
    pos = {i: k for k, i in enumerate(picked)}

    def ref(rows, cols):
        return full[np.ix_([pos[i] for i in rows], [pos[j] for j in cols])]

    # alone, as a pair
    pair = [train[0], test[0]]
    _close(gn.gram(model, [mutag.graphs[i] for i in pair], get=get, progress=False), ref(pair, pair), "alone")
    # inside another subset, shuffled
    other = list(np.random.default_rng(1).permutation(picked)[:12])
    _close(gn.gram(model, [mutag.graphs[i] for i in other], get=get, progress=False), ref(other, other), "subset")
    # test x train against separately loaded files, numbered in their own order
    _write_gin(tmp_path / "tr", "M", mutag, train)
    _write_gin(tmp_path / "te", "M", mutag, test)
    ftrain, ftest = gn.load_gin(tmp_path / "tr", "M"), gn.load_gin(tmp_path / "te", "M")
    assert ftrain.encoding.tags != mutag.encoding.tags  # another numbering ...
    assert ftrain.encoding.fingerprint == mutag.encoding.fingerprint  # ... of the same tags
    _close(gn.gram(model, ftest, ftrain, get=get, progress=False), ref(test, train), "test x train files", rtol)
    # a block / chunk boundary inside the call
    _close(gn.gram(model, ftest, ftrain, get=get, progress=False, block_size=3), ref(test, train), "blocks", rtol)
    # through the cache: written, then read back
    for _ in range(2):
        got = gn.gram(model, ftest, ftrain, get=get, progress=False, cache_dir=tmp_path / "cache")
        _close(got, ref(test, train), "cache", rtol)


@pytest.mark.parametrize("name", ["gntk", "dense-first-sum-ntk"])
def test_transformer_keeps_training_kernel_with_unseen_test_tags(name, mutag):
    model, get = TAG_MODELS[name]
    rare = min(range(mutag.num_tags), key=lambda t: sum(t in g.node_labels for g in mutag.graphs))
    with_rare = [i for i, g in enumerate(mutag.graphs) if rare in g.node_labels]
    without = [i for i, g in enumerate(mutag.graphs) if rare not in g.node_labels][:20]
    test = with_rare[:3] + without[20:23]
    full = gn.gram(model, mutag, get=get, progress=False)
    t = gn.GraphKernelTransformer(model=model, get=get, normalize=False)
    train_graphs = [mutag.graphs[i] for i in without]
    K_train = t.fit_transform(train_graphs)
    _close(K_train, full[np.ix_(without, without)], "transformer train Gram")
    _close(t.transform([mutag.graphs[i] for i in test]), full[np.ix_(test, without)], "transformer test rows",
           RTOL_CROSS)
    # cosine: every training graph has cosine 1 with itself, whatever is transformed next
    tc = gn.GraphKernelTransformer(model=model, get=get).fit(train_graphs)
    np.testing.assert_allclose(np.diag(tc.transform(train_graphs)), 1.0, rtol=RTOL_CROSS)


def test_transformer_on_a_file_lacking_a_tag_gives_unseen_tags_the_zero_row(mutag, tmp_path):
    """Fitted on a file that lacks a tag: the training kernel is that file's own, and a test
    graph's unseen tag is the zero feature row (handle_unknown='ignore'), or refused."""
    model = _dense_first()
    rare = min(range(mutag.num_tags), key=lambda t: sum(t in g.node_labels for g in mutag.graphs))
    without = [i for i, g in enumerate(mutag.graphs) if rare not in g.node_labels][:15]
    with_rare = [i for i, g in enumerate(mutag.graphs) if rare in g.node_labels][:2]
    _write_gin(tmp_path / "tr", "M", mutag, without)
    _write_gin(tmp_path / "te", "M", mutag, with_rare + without[:2])
    ftrain, ftest = gn.load_gin(tmp_path / "tr", "M"), gn.load_gin(tmp_path / "te", "M")
    t = gn.GraphKernelTransformer(model=model, normalize=False)
    K_train = t.fit_transform(ftrain)
    rows = t.transform(ftest)
    _close(K_train, gn.gram(model, ftrain, progress=False), "train Gram = the file's own")
    _close(rows[len(with_rare):], K_train[:2], "copies of training graphs", RTOL_CROSS)
    assert np.isfinite(rows).all()
    strict = gn.GraphKernelTransformer(model=model, normalize=False, handle_unknown="error").fit(ftrain)
    with pytest.raises(ValueError, match="has not seen"):
        strict.transform(ftest)


def test_string_tags_and_continuous_features():
    rng = np.random.default_rng(3)
    atoms = np.array(["C", "N", "O", "S", "Cl"])
    raw, graphs = [], []
    for n in rng.integers(3, 9, size=14):
        a = np.triu(rng.random((n, n)) < 0.5, 1)
        s, r = np.nonzero(a | a.T)
        tags = atoms[rng.integers(0, len(atoms), size=n)]
        raw.append(tags)
        graphs.append((n, np.stack([s, r]), tags, rng.normal(size=(n, 2))))
    enc = gn.InputEncoding.fit(raw, num_features=2)
    built = [gn.Graph(n, ei, node_labels=enc.encode_tags(t), x=x, encoding=enc) for n, ei, t, x in graphs]
    ds = gn.GraphDataset("strings", built, np.arange(len(built)) % 2, encoding=enc)
    # another file: the same molecules, fitted on its own (fewer) graphs, in another order
    enc2 = gn.InputEncoding.fit(raw[::-1][:9] + [["Cl", "S", "O", "N", "C"]], num_features=2)
    built2 = [gn.Graph(n, ei, node_labels=enc2.encode_tags(t), x=x, encoding=enc2) for n, ei, t, x in graphs[:5]]
    for model, get in ((_dense_first(), "ntk"), (gn.GNTK(2, 1), "nngp")):
        full = gn.gram(model, ds, get=get, progress=False)
        _close(gn.gram(model, built2, ds, get=get, progress=False), full[:5], f"{get} strings across files",
               RTOL_CROSS)
        perm = np.random.default_rng(0).permutation(len(built))
        _close(gn.gram(model, [built[i] for i in perm], get=get, progress=False), full[np.ix_(perm, perm)],
               "shuffled")


def test_relational_models_from_tu_edge_labels(tmp_path):
    """MUTAG's bond types (TU edge labels) through relational aggregation: a subset keeps the
    file's kernel, and changed edge types are never served from the cache."""
    ds = gn.load_tu(DATA / "tu", "MUTAG")
    T = ds.encoding.num_edge_types
    model = nn.serial(nn.Dense(16), nn.Aggregate("sum", add_self_loops=True, edge_types=T), nn.Dense(16),
                      nn.Relu(), nn.Dense(16), nn.GlobalSumPool())
    idx = list(range(0, 60, 3))
    full = gn.gram(model, ds.subset(idx), progress=False)
    pair = [ds.graphs[idx[4]], ds.graphs[idx[9]]]
    _close(gn.gram(model, pair, progress=False), full[np.ix_([4, 9], [4, 9])], "relational pair")
    cached = gn.gram(model, ds.subset(idx), progress=False, cache_dir=tmp_path)
    _close(cached, full, "relational cache")
    # the same graphs with every bond single: a new result, not the cached one
    flipped = [gn.Graph(g.num_nodes, g.edge_index, node_labels=g.node_labels, edge_type=np.zeros_like(g.edge_type),
                        encoding=g.encoding) for g in ds.subset(idx).graphs]
    again = gn.gram(model, flipped, progress=False, cache_dir=tmp_path)
    assert np.abs(again - cached).max() > 1e-6 * np.abs(cached).max()
    _close(again, gn.gram(model, flipped, progress=False), "flipped types, no cache")


def test_degree_tags_across_files(tmp_path):
    """--degree-as-tag: the test file's degrees are matched to the training file's by value
    (each file's own numbering differs), so a test graph that copies a training graph gets
    that graph's kernel row."""
    imdb = gn.load_gin(DATA / "gin", "IMDBBINARY")
    train = list(range(0, 40))
    test = [3, 7, 50]  # two copies of training graphs, one other graph
    _write_gin(tmp_path / "tr", "I", imdb, train)
    _write_gin(tmp_path / "te", "I", imdb, test)
    ftrain = gn.load_gin(tmp_path / "tr", "I", degree_as_tag=True)
    ftest = gn.load_gin(tmp_path / "te", "I", degree_as_tag=True)
    model = _dense_first()
    K = gn.gram(model, ftrain, progress=False)
    enc = ftrain.encoding.with_unknown("ignore")
    rows = gn.gram(model, ftest, ftrain, encoding=enc, progress=False)
    _close(rows[:2], K[[3, 7]], "degree-tag copies", RTOL_CROSS)
    with pytest.raises(ValueError, match="has not seen"):
        gn.gram(model, gn.load_gin(DATA / "gin", "IMDBBINARY", degree_as_tag=True).subset(range(200)), ftrain,
                progress=False)


def test_cli_test_dataset_is_encoded_with_the_training_file(mutag, tmp_path, capsys):
    train, test = _split(mutag, seed=2)
    _write_gin(tmp_path / "tr", "M", mutag, train)
    _write_gin(tmp_path / "te", "M", mutag, test + train[:2])
    (tmp_path / "net.py").write_text("import graph_ntk.nn as nn\n"
                                     "net = nn.serial(nn.Dense(8), nn.Aggregate('sum', add_self_loops=True), "
                                     "nn.Relu(), nn.Dense(8), nn.GlobalSumPool())\n")
    out = tmp_path / "k.npy"
    assert cli_main(["gram", "--dataset-dir", str(tmp_path / "tr"), "--name", "M", "--test-dataset",
                     str(tmp_path / "te"), "--model", f"{tmp_path / 'net.py'}:net", "--dtype", "float64",
                     "--kernel", "ntk", "--no-progress", "--output", str(out)]) == 0
    net = nn.serial(nn.Dense(8), nn.Aggregate("sum", add_self_loops=True), nn.Relu(), nn.Dense(8),
                    nn.GlobalSumPool())
    full = gn.gram(net, mutag.subset(train + test), progress=False)
    n = len(train)
    got = np.load(out)
    _close(got[:len(test)], full[n:, :n], "CLI test x train", RTOL_CROSS)
    _close(got[len(test):], full[:2, :n], "CLI copies of training graphs", RTOL_CROSS)


def test_graphs_without_an_encoding_must_say_which():
    g = gn.Graph(2, np.array([[0, 1], [1, 0]]), node_labels=np.array([0, 3]))
    with pytest.raises(ValueError, match="num_tags"):
        gn.gram(_dense_first(), [g, g], progress=False)
    a = gn.gram(_dense_first(), [g, g], num_tags=5, progress=False)
    b = gn.gram(_dense_first(), [g], num_tags=5, progress=False)
    _close(b, a[:1, :1], "num_tags fixes the width")
    assert math.isfinite(float(a[0, 0]))
