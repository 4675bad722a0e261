"""Tests for graph_ntk.datasets: the shipped benchmark files, malformed inputs, the demo set.

The benchmark data live outside the repository, in ``../shared/datasets`` (or wherever
``GRAPH_NTK_DATA`` points); tests that need them are skipped when it is absent. Expected
numbers come from that folder's README ("Verified counts").
"""

from __future__ import annotations

import functools
import os
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from graph_ntk.data.graph import GraphDataset
from graph_ntk.datasets import (
    DatasetFormatError,
    download_tu,
    load_gin,
    load_planetoid,
    load_tu,
    make_demo_dataset,
)

DATA = Path(os.environ.get("GRAPH_NTK_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
needs_data = pytest.mark.skipif(
    not DATA.is_dir(),
    reason=f"benchmark datasets not found at {DATA} (set GRAPH_NTK_DATA to the folder holding tu/, gin/, planetoid/)",
)


@functools.lru_cache(maxsize=None)
def tu(name: str, root: str = "tu", degree_as_tag: bool = False) -> GraphDataset:
    return load_tu(DATA / root, name, degree_as_tag=degree_as_tag)


@functools.lru_cache(maxsize=None)
def gin(name: str, root: str = "gin", degree_as_tag: bool = False) -> GraphDataset:
    return load_gin(DATA / root, name, degree_as_tag=degree_as_tag)


def stats(ds: GraphDataset) -> tuple[int, int, int, int]:
    """(graphs, nodes, undirected edges counting self-loops once, self-loops)."""
    nodes = sum(g.num_nodes for g in ds.graphs)
    arcs = sum(g.num_edges for g in ds.graphs)
    loops = sum(int(np.count_nonzero(g.edge_index[0] == g.edge_index[1])) for g in ds.graphs)
    return len(ds), nodes, (arcs + loops) // 2, loops


def raw_label_counts(ds: GraphDataset) -> dict[int, int]:
    """Graphs per raw label value (as written in the file)."""
    return {int(ds.meta["classes"][c]): int(k) for c, k in enumerate(np.bincount(ds.y))}


def arc_set(g) -> set[tuple[int, int]]:
    return set(map(tuple, g.edge_index.T.tolist()))


# ----------------------------------------------------------------------------------------
# Benchmark files: TU vs GIN, README counts
# ----------------------------------------------------------------------------------------

# (TU name, GIN name, graphs, nodes, undirected edges, TU raw label counts, label shift TU -> GIN, tags)
PAIRS = [
    ("MUTAG", "MUTAG", 188, 3371, 3721, {-1: 63, 1: 125}, None, 7),
    ("NCI1", "NCI1", 4110, 122747, 132753, {0: 2053, 1: 2057}, 0, 37),
    ("PROTEINS", "PROTEINS", 1113, 43471, 81044, {1: 663, 2: 450}, 1, 3),
    ("IMDB-BINARY", "IMDBBINARY", 1000, 19773, 96531, {0: 500, 1: 500}, 0, None),
    ("IMDB-MULTI", "IMDBMULTI", 1500, 19502, 98903, {1: 500, 2: 500, 3: 500}, 1, None),
]


@needs_data
@pytest.mark.parametrize("tu_name, gin_name, graphs, nodes, edges, labels, shift, tags", PAIRS, ids=[p[0] for p in PAIRS])
def test_tu_and_gin_agree_with_readme(tu_name, gin_name, graphs, nodes, edges, labels, shift, tags):
    a, b = tu(tu_name), gin(gin_name)
    assert stats(a) == (graphs, nodes, edges, 0)
    assert stats(b) == (graphs, nodes, edges, 0)
    assert raw_label_counts(a) == labels
    # GIN labels are TU labels minus their minimum (so MUTAG's -1/1 become 0/2).
    gin_raw = {v - min(labels): k for v, k in labels.items()}
    assert raw_label_counts(b) == gin_raw
    assert sorted(np.bincount(a.y)) == sorted(np.bincount(b.y))
    assert a.num_tags == tags
    assert b.num_tags == (tags or 1)  # the social graphs carry tag 0 everywhere
    if shift is not None:  # README: same graph order, node order and edge sets
        for g, h, ya, yb in zip(a.graphs, b.graphs, a.meta["classes"][a.y], b.meta["classes"][b.y]):
            assert g.num_nodes == h.num_nodes and ya - shift == yb
            assert arc_set(g) == arc_set(h)
    else:  # MUTAG: same graphs in another order
        key = lambda ds: sorted((g.num_nodes, g.num_edges) for g in ds.graphs)  # noqa: E731
        assert key(a) == key(b)


@needs_data
@pytest.mark.parametrize("name", ["NCI1", "PROTEINS"])
def test_node_labels_are_the_same_up_to_renaming(name):
    """TU remaps node labels in sorted order, GIN by first appearance: a bijection apart."""
    a, b = tu(name), gin(name)
    ta = np.concatenate([g.node_labels for g in a.graphs])
    tb = np.concatenate([g.node_labels for g in b.graphs])
    pairs = set(zip(ta.tolist(), tb.tolist()))
    assert len(pairs) == a.num_tags == b.num_tags
    # First appearance order: tags met in the file get 0, 1, 2, ... in turn.
    _, first = np.unique(tb, return_index=True)
    assert np.all(np.diff(first) > 0)


@needs_data
def test_ptc_versions_differ_as_documented():
    a, b = tu("PTC_MR"), gin("PTC")
    assert stats(a) == (344, 4915, 5054, 0)
    assert stats(b) == (344, 8792, 8931, 0)
    assert raw_label_counts(a) == {-1: 192, 1: 152}
    assert raw_label_counts(b) == {0: 192, 1: 152}
    assert (a.num_tags, b.num_tags) == (18, 19)
    # The 3,877 extra GIN nodes all carry raw tag 19.
    raw = np.concatenate([b.meta["tag_values"][g.node_labels] for g in b.graphs])
    assert np.count_nonzero(raw == 19) >= 8792 - 4915


@needs_data
def test_tu_imdb_duplicate_arcs_removed_and_proteins_attributes():
    assert tu("IMDB-BINARY").meta["duplicate_arcs_removed"] == 386124 - 2 * 96531
    assert tu("IMDB-MULTI").meta["duplicate_arcs_removed"] == 395612 - 2 * 98903
    p = tu("PROTEINS")
    assert all(g.x is not None and g.x.shape == (g.num_nodes, 1) for g in p.graphs)
    assert tu("MUTAG").graphs[0].x is None


@needs_data
def test_degree_as_tag_matches_networkx_and_both_formats():
    nx = pytest.importorskip("networkx")
    a = tu("IMDB-BINARY", degree_as_tag=True)
    b = gin("IMDBBINARY", degree_as_tag=True)
    assert a.num_tags == b.num_tags == len(b.meta["tag_values"])
    assert np.all(np.diff(b.meta["tag_values"]) > 0)  # remapped in increasing degree
    for g, h in zip(a.graphs, b.graphs):
        assert np.array_equal(g.node_labels, h.node_labels)
    for g in b.graphs[:100]:
        G = nx.Graph()
        G.add_nodes_from(range(g.num_nodes))
        G.add_edges_from(g.edge_index.T.tolist())
        assert b.meta["tag_values"][g.node_labels].tolist() == [G.degree[i] for i in range(g.num_nodes)]


FOLD_SIZES = {"MUTAG": 18, "PTC": 34, "NCI1": 411, "PROTEINS": 111, "IMDBBINARY": 100, "IMDBMULTI": 150}


def check_folds(ds: GraphDataset, test_size: int) -> None:
    assert ds.folds is not None and len(ds.folds) == 10
    n = len(ds)
    seen = np.zeros(n, dtype=int)
    for train, test in ds.folds:
        assert len(test) == test_size == n // 10
        assert len(np.intersect1d(train, test)) == 0
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))
        seen[test] += 1
    assert seen.max() == 1  # the ten test sets are disjoint
    assert int((seen == 0).sum()) == n % 10


@needs_data
@pytest.mark.parametrize("name", list(FOLD_SIZES))
def test_gin_folds(name):
    check_folds(gin(name), FOLD_SIZES[name])


@needs_data
def test_loading_is_fast():
    """NCI1 (4,110 graphs) in both formats, uncached: a guard against slow parsing."""
    start = time.process_time()  # CPU time: robust to a busy shared machine
    load_tu(DATA / "tu", "NCI1")
    load_gin(DATA / "gin", "NCI1")
    assert time.process_time() - start < 5.0


@needs_data
@pytest.mark.slow
def test_collab_and_reddit_both_formats():
    timings, cpu = {}, {}
    for label, loader, root, name in [
        ("tu COLLAB", load_tu, "tu_reconstructed", "COLLAB"),
        ("gin COLLAB", load_gin, "gin", "COLLAB"),
        ("tu REDDIT-BINARY", load_tu, "tu_reconstructed", "REDDIT-BINARY"),
        ("gin REDDITBINARY", load_gin, "gin_extra", "REDDITBINARY"),
    ]:
        start, start_cpu = time.perf_counter(), time.process_time()
        ds = loader(DATA / root, name)
        timings[label] = time.perf_counter() - start
        cpu[label] = time.process_time() - start_cpu
        if "COLLAB" in name:
            assert stats(ds) == (5000, 372474, 12288916, 2837)
            assert sorted(np.bincount(ds.y).tolist()) == [775, 1625, 2600]
            expected = {1: 2600, 2: 775, 3: 1625} if loader is load_tu else {0: 2600, 1: 775, 2: 1625}
        else:
            assert stats(ds) == (2000, 859254, 995508, 0)
            expected = {-1: 1000, 1: 1000} if loader is load_tu else {0: 1000, 2: 1000}
        assert raw_label_counts(ds) == expected
        if loader is load_gin:
            check_folds(ds, 500 if name == "COLLAB" else 200)
        del ds
    print("load times, wall (s):", {k: round(v, 2) for k, v in timings.items()})
    print("load times, CPU (s):", {k: round(v, 2) for k, v in cpu.items()})
    # CPU time, not wall time: a busy shared machine must not make this flaky.
    assert cpu["tu COLLAB"] < 60 and cpu["gin COLLAB"] < 60


# ----------------------------------------------------------------------------------------
# Planetoid
# ----------------------------------------------------------------------------------------

PLANETOID = [
    ("cora", 2708, 5278, 1433, 7, [351, 217, 418, 818, 426, 298, 180], 140),
    ("citeseer", 3327, 4552, 3703, 6, [249, 590, 668, 701, 596, 508], 120),
]


@needs_data
@pytest.mark.parametrize("name, nodes, edges, features, classes, counts, train", PLANETOID, ids=[p[0] for p in PLANETOID])
def test_planetoid(name, nodes, edges, features, classes, counts, train):
    d = load_planetoid(DATA / "planetoid", name)
    assert (d.num_nodes, d.num_edges, d.num_features, d.num_classes) == (nodes, edges, features, classes)
    assert d.x.shape == (nodes, features) and d.x.dtype == np.float32 and d.x.format == "csr"
    assert np.bincount(d.y[d.y >= 0]).tolist() == counts
    assert int((d.y < 0).sum()) == nodes - sum(counts)  # CiteSeer's 15 isolated test-range nodes
    assert (len(d.train_idx), len(d.val_idx), len(d.test_idx)) == (train, 500, 1000)
    assert np.array_equal(d.train_idx, np.arange(train))
    assert np.bincount(d.y[d.train_idx]).tolist() == [20] * classes
    splits = np.concatenate([d.train_idx, d.val_idx, d.test_idx])
    assert len(np.unique(splits)) == len(splits) and (d.y[splits] >= 0).all()
    ei = d.edge_index
    assert ei.dtype == np.int64 and ei.shape == (2, 2 * edges)
    assert not np.any(ei[0] == ei[1])
    arcs = set(zip(*ei.tolist()))
    assert len(arcs) == ei.shape[1]  # no duplicates
    assert arcs == {(r, s) for s, r in arcs}  # both directions


@needs_data
def test_pubmed_reports_the_missing_file():
    with pytest.raises(FileNotFoundError, match=r"ind\.pubmed\.allx") as err:
        load_planetoid(DATA / "planetoid", "pubmed")
    assert "\n" not in str(err.value) and "non-test" in str(err.value)


# ----------------------------------------------------------------------------------------
# Malformed inputs: every error is one line naming the file (and line)
# ----------------------------------------------------------------------------------------

TOY_TU = {
    "A": "1, 2\n2, 1\n3, 4\n4, 3\n4, 5\n5, 4\n",
    "graph_indicator": "1\n1\n2\n2\n2\n",
    "graph_labels": "1\n-1\n",
    "node_labels": "5\n7\n5\n9\n7\n",
}


def write_tu(root: Path, files: dict[str, str], name: str = "TOY") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for part, text in files.items():
        (folder / f"{name}_{part}.txt").write_text(text)
    return root


TOY_GIN = "2\n2 1\n0 1 1\n1 1 0\n3 0\n1 1 1\n0 2 0 2\n1 1 1\n"


def write_gin(root: Path, text: str, name: str = "TOY") -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / f"{name}.txt").write_text(text)
    return root


def one_line_error(exc_info, filename: str, line: int | None) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    assert filename in msg, msg
    if line is not None:
        assert f"line {line}:" in msg, msg
    return msg


def test_toy_tu_loads(tmp_path):
    ds = load_tu(write_tu(tmp_path, TOY_TU), "TOY")
    assert [g.num_nodes for g in ds.graphs] == [2, 3]
    assert ds.y.tolist() == [1, 0] and ds.meta["classes"].tolist() == [-1, 1]
    assert ds.graphs[1].node_labels.tolist() == [0, 2, 1] and ds.num_tags == 3
    assert ds.graphs[1].edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    # Duplicated arcs (as in the IMDB files), shuffled lines and an xz-compressed A.
    import lzma

    lines = TOY_TU["A"].splitlines()
    files = dict(TOY_TU, A="\n".join(lines[::-1] + lines) + "\n")
    write_tu(tmp_path / "dup", files)
    ds2 = load_tu(tmp_path / "dup", "TOY")
    assert ds2.meta["duplicate_arcs_removed"] == 6
    assert [g.edge_index.tolist() for g in ds2.graphs] == [g.edge_index.tolist() for g in ds.graphs]
    xz = write_tu(tmp_path / "xz", {k: v for k, v in TOY_TU.items() if k != "A"})
    with lzma.open(xz / "TOY" / "TOY_A.txt.xz", "wt") as f:
        f.write(TOY_TU["A"])
    assert load_tu(xz, "TOY").graphs[1].num_edges == 4


@pytest.mark.parametrize(
    "part, text, line, words",
    [
        ("A", "1, 2\n2, 1\n3, x\n", 3, "'x' is not an integer"),
        ("A", "1, 2\n2, 1, 3\n", 2, "two node ids"),
        ("A", "1, 2\n9, 1\n", 2, "out of range"),
        ("A", "1, 2\n2, 3\n", 2, "joins graph 1 to graph 2"),
        ("A", "1, 2\n\n2, 1\n", 2, "blank line"),
        ("graph_indicator", "1\n2\n1\n2\n2\n", 3, "decreases"),
        ("graph_indicator", "1\n1\n3\n3\n3\n", 3, "graph 2 has no nodes"),
        ("graph_indicator", "2\n2\n3\n3\n3\n", 1, "start at 1"),
        ("graph_labels", "1\n1.5\n", 2, "'1.5' is not an integer"),
        ("graph_labels", "1\n", 2, "file ends"),
        ("graph_labels", "1\n-1\n1\n", 3, "extra line"),
        ("node_labels", "5\n7\n5\n9\n", 5, "file ends after 4 lines"),
        ("node_labels", "5\n7\n5\n9\n7\n1\n", 6, "extra line"),
        ("A", "   \n\n", None, "empty"),
    ],
)
def test_tu_errors_are_one_line_with_file_and_line(tmp_path, part, text, line, words):
    root = write_tu(tmp_path, dict(TOY_TU, **{part: text}))
    with pytest.raises(DatasetFormatError) as err:
        load_tu(root, "TOY")
    assert words in one_line_error(err, f"TOY_{part}.txt", line)
    assert err.value.line == line


def test_tu_missing_files_and_unknown_names(tmp_path):
    root = write_tu(tmp_path, {k: v for k, v in TOY_TU.items() if k != "graph_labels"})
    with pytest.raises(FileNotFoundError) as err:
        load_tu(root, "TOY")
    assert "TOY_graph_labels.txt" in one_line_error(err, "TOY_graph_labels.txt", None)
    write_tu(tmp_path, TOY_TU, name="IMDB-BINARY")
    with pytest.raises(FileNotFoundError) as err:
        load_tu(root, "IMDBBINARY")
    msg = one_line_error(err, str(root), None)
    assert "available: IMDB-BINARY, TOY" in msg and "did you mean 'IMDB-BINARY'" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tu(tmp_path / "nowhere", "TOY")
    with pytest.raises(FileNotFoundError, match="pass that as root"):
        load_tu(tmp_path.parent, "TOY")


def test_toy_gin_loads(tmp_path):
    ds = load_gin(write_gin(tmp_path, TOY_GIN), "TOY")
    assert [g.num_nodes for g in ds.graphs] == [2, 3]
    # Labels and tags numbered by first appearance: raw label 1 -> 0, raw tag 0 -> 0.
    assert ds.y.tolist() == [0, 1] and ds.meta["classes"].tolist() == [1, 0]
    assert ds.graphs[1].node_labels.tolist() == [1, 0, 1] and ds.meta["tag_values"].tolist() == [0, 1]
    assert ds.graphs[1].edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert ds.folds is None  # no 10fold_idx folder
    deg = load_gin(tmp_path, "TOY", degree_as_tag=True)
    assert deg.meta["tag_values"].tolist() == [1, 2] and deg.graphs[1].node_labels.tolist() == [0, 1, 0]
    # Exact duplicate arcs are dropped.
    dup = write_gin(tmp_path / "dup", TOY_GIN.replace("0 2 0 2", "0 3 0 2 0"))
    assert load_gin(dup, "TOY").graphs[1].num_edges == 4


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("2\n2 1\n0 1 1\nx y\n3 0\n1 1 1\n0 2 0 2\n1 1 1\n", 4, "'x' is not an integer"),
        ("2\n2 1\n0 1 1\n1 1\n3 0\n1 1 1\n0 2 0 2\n1 1 1\n", 4, "expected 'tag num_neighbours nbr...'"),
        ("2\n2 1\n0 1 1\n1 1 0\n3 0\n1 1 1\n0 2 0 2 1\n1 1 1\n", 7, "with 2 neighbours (4 numbers)"),
        ("2\n2 1\n0 1 1\n1 1 0\n3 0\n1 1 1\n0 2 0 3\n1 1 1\n", 7, "neighbour index 3 out of range 0..2"),
        ("2\n2 1\n0 1 1\n1 1 0\n3 0\n1 1 1\n0 2 0 2\n", 5, "declares 3 nodes but the file ends after 2"),
        ("3\n2 1\n0 1 1\n1 1 0\n3 0\n1 1 1\n0 2 0 2\n1 1 1\n", 9, "file ends after 2 graphs"),
        ("2\n2 1\n0 1 1\n1 1 0\n3 0\n1 1 1\n0 2 0 2\n1 1 1\n1 1 1\n", 9, "extra line"),
        ("2\n2 1 7\n0 1 1\n1 1 0\n", 2, "block header"),
        ("2 1\n", 1, "number of graphs"),
        ("\n\n", None, "empty"),
    ],
)
def test_gin_errors_are_one_line_with_file_and_line(tmp_path, text, line, words):
    root = write_gin(tmp_path, text)
    with pytest.raises(DatasetFormatError) as err:
        load_gin(root, "TOY")
    assert words in one_line_error(err, "TOY.txt", line)


def test_gin_fold_errors(tmp_path):
    root = write_gin(tmp_path, TOY_GIN)
    fold_dir = root / "TOY" / "10fold_idx"
    fold_dir.mkdir()
    for k in range(1, 11):
        (fold_dir / f"train_idx-{k}.txt").write_text("0\n1\n")
        (fold_dir / f"test_idx-{k}.txt").write_text("")
    ds = load_gin(root, "TOY")
    assert len(ds.folds) == 10 and ds.folds[0][0].tolist() == [0, 1] and ds.folds[0][1].size == 0
    (fold_dir / "test_idx-3.txt").write_text("1\n2\n")
    with pytest.raises(DatasetFormatError) as err:
        load_gin(root, "TOY")
    assert "out of range 0..1" in one_line_error(err, "test_idx-3.txt", 2)
    (fold_dir / "test_idx-3.txt").write_text("1\n")
    (fold_dir / "train_idx-7.txt").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_gin(root, "TOY")
    one_line_error(err, "train_idx-7.txt", None)


def test_planetoid_errors(tmp_path):
    folder = tmp_path / "cora"
    folder.mkdir()
    for part in ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"):
        (folder / f"ind.cora.{part}").write_bytes(b"not a pickle")
    with pytest.raises(DatasetFormatError) as err:
        load_planetoid(tmp_path, "Cora")
    assert "not a readable Planetoid pickle" in one_line_error(err, "ind.cora.", None)
    (folder / "ind.cora.graph").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_planetoid(tmp_path, "cora")
    assert "adjacency" in one_line_error(err, "ind.cora.graph", None)


def test_bad_token_found_in_a_large_file(tmp_path):
    """The bisection that locates a bad token reports the right line in a long file."""
    lines = [f"{i + 1}, {i + 2}\n{i + 2}, {i + 1}\n" for i in range(0, 20000, 2)]
    text = "".join(lines).splitlines()
    text[12345] = "12346, 1e3"
    files = {
        "A": "\n".join(text) + "\n",
        "graph_indicator": "".join(f"{i // 2 + 1}\n" for i in range(20000)),
        "graph_labels": "0\n" * 10000,
    }
    with pytest.raises(DatasetFormatError) as err:
        load_tu(write_tu(tmp_path, files), "TOY")
    assert "'1e3' is not an integer" in one_line_error(err, "TOY_A.txt", 12346)


# ----------------------------------------------------------------------------------------
# Demo dataset
# ----------------------------------------------------------------------------------------


def test_demo_dataset():
    make_demo_dataset(20)  # import sklearn/networkx outside the timed call
    start = time.process_time()
    ds = make_demo_dataset()
    assert time.process_time() - start < 2.0
    assert len(ds) == 300 and ds.num_tags == 4
    sizes = [g.num_nodes for g in ds.graphs]
    assert min(sizes) < 15 and max(sizes) > 35 and len(set(sizes)) > 20
    assert sorted(Counter(ds.y.tolist())) == [0, 1, 2, 3] and min(Counter(ds.y.tolist()).values()) > 50
    assert 0 < int((ds.y != ds.meta["family"]).sum()) < 30  # some label noise, not much
    for g in ds.graphs:
        assert g.node_labels.max() < ds.num_tags
        assert arc_set(g) == {(r, s) for s, r in arc_set(g)}  # undirected
    assert len(ds.folds) == 10
    seen = np.zeros(len(ds), dtype=int)
    for train, test in ds.folds:
        assert 28 <= len(test) <= 32 and len(np.intersect1d(train, test)) == 0
        assert len(train) + len(test) == len(ds)
        assert np.bincount(ds.y[test], minlength=4).min() >= 5  # stratified
        seen[test] += 1
    assert np.all(seen == 1)  # the test sets partition the graphs


def test_demo_dataset_is_deterministic():
    a, b, c = make_demo_dataset(80, seed=3), make_demo_dataset(80, seed=3), make_demo_dataset(80, seed=4)
    assert len(a) == 80 and np.array_equal(a.y, b.y)
    for g, h in zip(a.graphs, b.graphs):
        assert np.array_equal(g.edge_index, h.edge_index) and np.array_equal(g.node_labels, h.node_labels)
    for (tr, te), (tr2, te2) in zip(a.folds, b.folds):
        assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert any(g.num_nodes != h.num_nodes for g, h in zip(a.graphs, c.graphs))
    assert make_demo_dataset(5).folds is None and len(make_demo_dataset(5)) == 5


# ----------------------------------------------------------------------------------------
# Download cache (no network)
# ----------------------------------------------------------------------------------------


def test_download_uses_cache_without_network(tmp_path, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("download_tu touched the network although the dataset is cached")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    write_tu(tmp_path, TOY_TU)
    path = download_tu("TOY", root=tmp_path)
    assert path == tmp_path / "TOY"
    assert len(load_tu(path.parent, "TOY")) == 2


def test_download_from_local_zip(tmp_path):
    """The fetch-and-unpack path, with a file:// URL instead of the TU server."""
    archive = tmp_path / "TOY.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part, text in TOY_TU.items():
            zf.writestr(f"TOY/TOY_{part}.txt", text)
    cache = tmp_path / "cache"
    path = download_tu("TOY", root=cache, url=archive.as_uri())
    assert path == cache / "TOY" and len(load_tu(cache, "TOY")) == 2
    assert [p.name for p in cache.iterdir()] == ["TOY"]  # no temporary leftovers
    with pytest.raises(ConnectionError, match="offline"):
        download_tu("OTHER", root=cache, url=(tmp_path / "missing.zip").as_uri())
    with pytest.raises(ValueError, match="invalid"):
        download_tu("../evil", root=cache)
