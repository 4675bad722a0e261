"""The graph-ntk command line: demo, gram -> svm round trip, bad input, and kill/resume."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from graph_ntk.cli import main
from graph_ntk.datasets import load_gin
from graph_ntk.engine import GNTK, gram

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

# A --model file as a user writes it: a stax triple from neural-tangents layers and graph_ntk's
# graph layers, a graph_ntk.gntk(...) triple behind a zero-argument function, and a GNTK.
MODEL_FILE = """
from neural_tangents import stax
import graph_ntk as gn

net = stax.serial(stax.Dense(16), gn.Aggregate("sum", add_self_loops=True), stax.Relu(), stax.Dense(16),
                  gn.GlobalSumPool())


def make():  # the 30 MUTAG training graphs of the tests use 5 node tags
    return gn.gntk(2, 1, input_dim=5)


description = gn.GNTK(num_blocks=1)
"""


def write_gin(folder: Path, graphs, y) -> None:
    """Write graphs in the GIN text format (``folder.name/folder.name.txt``, no folds)."""
    folder.mkdir(parents=True)
    lines = [str(len(graphs))]
    for g, label in zip(graphs, y):
        lines.append(f"{g.num_nodes} {label}")
        neighbours = [[] for _ in range(g.num_nodes)]
        for s, r in g.edge_index.T:
            neighbours[s].append(r)
        lines += [" ".join(map(str, [g.node_labels[v], len(nb), *nb])) for v, nb in enumerate(neighbours)]
    (folder / f"{folder.name}.txt").write_text("\n".join(lines) + "\n")


def write_planetoid(folder: Path, seed: int = 0) -> None:
    """A small Planetoid-format graph (``folder.name`` = dataset name) with the GCN split's
    shape: 540 nodes in 3 communities (edges likelier inside), noisy community features;
    nodes 0..8 train (3 per class), 9..508 validation, 510..539 test."""
    rng = np.random.default_rng(seed)
    n, classes, known = 540, 3, 510
    label = rng.permutation(np.repeat(np.arange(classes), n // classes))
    label[:9] = np.repeat(np.arange(classes), 3)
    feats = np.hstack([np.eye(classes)[label] + 0.8 * rng.normal(size=(n, classes)),
                       rng.normal(size=(n, 3))]).astype(np.float32)
    same = label[:, None] == label[None, :]
    upper = np.triu(rng.random((n, n)) < np.where(same, 0.03, 0.003), 1)
    graph = {i: [] for i in range(n)}
    for i, j in zip(*np.nonzero(upper | upper.T)):
        graph[int(i)].append(int(j))
    onehot = np.eye(classes)[label]
    folder.mkdir(parents=True)
    parts = {"x": sp.csr_matrix(feats[:9]), "y": onehot[:9], "allx": sp.csr_matrix(feats[:known]),
             "ally": onehot[:known], "tx": sp.csr_matrix(feats[known:]), "ty": onehot[known:], "graph": graph}
    for part, obj in parts.items():
        with open(folder / f"ind.{folder.name}.{part}", "wb") as f:
            pickle.dump(obj, f)
    (folder / f"ind.{folder.name}.test.index").write_text("\n".join(map(str, range(known, n))) + "\n")


def test_demo(capsys):
    assert main(["demo", "--n-graphs", "60", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| demo | paper SVM (cosine) |" in out and "| demo | nested SVM |" in out
    assert "colour engine" in out


def test_gram_then_svm(tmp_path, capsys):
    out = tmp_path / "k.npy"
    assert main(["gram", "--demo", "--demo-graphs", "50", "--blocks", "2", "--mlp-layers", "1",
                 "--aggregation", "mean", "--no-jk", "--readout", "mean", "--kernel", "nngp",
                 "--output", str(out), "--no-progress"]) == 0
    K = np.load(out)
    assert K.shape == (50, 50)
    from graph_ntk.datasets import make_demo_dataset

    expected = gram(GNTK(2, 1, "mean", False, "mean"), make_demo_dataset(50), get="nngp", progress=False)
    np.testing.assert_allclose(K, expected, rtol=1e-12)
    capsys.readouterr()
    assert main(["svm", "--gram", str(out), "--demo", "--demo-graphs", "50", "--grid", "coarse",
                 "--inner-splits", "2"]) == 0
    table = capsys.readouterr().out
    assert "| demo | paper SVM (raw) |" in table and "| demo | nested SVM |" in table


def test_gram_from_dataset_dir(shared_dir, tmp_path, capsys):
    out = tmp_path / "mutag.npy"
    # The parent of gin/ works as --dataset-dir too.
    assert main(["gram", "--dataset-dir", str(shared_dir / "datasets"), "--name", "MUTAG", "--format", "gin",
                 "--blocks", "2", "--output", str(out), "--no-progress"]) == 0
    assert np.load(out).shape == (188, 188)
    assert "MUTAG: ntk Gram 188x188" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gram", "--dataset-dir", "{shared}/datasets/gin", "--name", "MUTAGG", "--output", "{tmp}/k.npy"],
         "no GIN dataset 'MUTAGG'"),
        (["gram", "--dataset-dir", "{tmp}/nowhere", "--name", "MUTAG", "--output", "{tmp}/k.npy"], "does not exist"),
        (["gram", "--demo", "--output", "{tmp}/k.txt"], "must end in .npy"),
        (["gram", "--demo"], "--output"),
        (["gram", "--demo", "--name", "MUTAG", "--output", "{tmp}/k.npy"], "either --demo"),
        (["gram", "--name", "MUTAG", "--output", "{tmp}/k.npy"], "give --dataset-dir and --name"),
        (["gram", "--demo", "--aggregation", "max", "--output", "{tmp}/k.npy"], "invalid choice"),
        (["gram", "--demo", "--block-size", "0", "--output", "{tmp}/k.npy"], "positive integer"),
        (["svm", "--gram", "{tmp}/missing.npy", "--demo"], "file not found"),
        (["svm", "--gram", "{tmp}/small.npy", "--demo"], "expected a 300x300 Gram matrix"),
        (["svm", "--gram", "{tmp}/garbage.npy", "--demo"], "not a readable .npy"),
        ([], "required"),
        (["fly"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, shared_dir, tmp_path, capsys):
    np.save(tmp_path / "small.npy", np.eye(3))
    (tmp_path / "garbage.npy").write_text("not numpy")
    argv = [a.format(shared=shared_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("graph-ntk: error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "k.npy").exists()


def test_sigkill_then_resume(shared_dir, tmp_path):
    """Kill `graph-ntk gram` (SIGKILL) once blocks are cached; the rerun finishes the rest
    without redoing them, and the result equals an uninterrupted run."""
    mutag = load_gin(shared_dir / "datasets" / "gin", "MUTAG")
    write_gin(tmp_path / "data" / "M40", mutag.graphs[:40], mutag.y[:40])
    out, cache = tmp_path / "out" / "k.npy", tmp_path / "cache"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "graph_ntk.cli", "gram", "--dataset-dir", str(tmp_path / "data"), "--name", "M40",
           "--method", "nodes", "--block-size", "4", "--cache-dir", str(cache), "--output", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    blocks: list[Path] = []
    while not blocks and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        blocks = list(cache.glob("*/*.npz"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists() and list(out.parent.iterdir()) == []  # no partial output, no temp file
    done = {p: p.stat().st_mtime_ns for p in cache.glob("*/*.npz")}
    assert 1 <= len(done) < 55  # 40 graphs in 10 chunks of 4: 55 chunk pairs

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # finished blocks were not redone
    assert len(list(cache.glob("*/*.npz"))) == 55
    uninterrupted = gram(GNTK(), load_gin(tmp_path / "data", "M40"), method="nodes", block_size=4, progress=False)
    np.testing.assert_allclose(np.load(out), uninterrupted, rtol=1e-12)


def test_svm_refuses_a_gram_of_differently_ordered_graphs(shared_dir, tmp_path, capsys):
    # GIN and TU list MUTAG's graphs in different orders: labels would not line up with rows.
    datasets = shared_dir / "datasets"
    out = tmp_path / "k.npy"
    assert main(["gram", "--dataset-dir", str(datasets / "gin"), "--name", "MUTAG", "--blocks", "1",
                 "--output", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["svm", "--gram", str(out), "--dataset-dir", str(datasets), "--name", "MUTAG", "--format", "tu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "another order" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- any model
@pytest.fixture(scope="module")
def mutag_parts(shared_dir, tmp_path_factory):
    """30 MUTAG graphs as a training set and 10 others as a test set (GIN format)."""
    root = tmp_path_factory.mktemp("parts")
    mutag = load_gin(shared_dir / "datasets" / "gin", "MUTAG")
    # 15 + 5 graphs of each class (MUTAG lists its classes in runs).
    train = np.concatenate([np.flatnonzero(mutag.y == c)[:15] for c in np.unique(mutag.y)])
    test = np.concatenate([np.flatnonzero(mutag.y == c)[15:20] for c in np.unique(mutag.y)])
    write_gin(root / "train" / "M30", [mutag.graphs[i] for i in train], mutag.y[train])
    write_gin(root / "test" / "M30", [mutag.graphs[i] for i in test], mutag.y[test])
    (root / "model.py").write_text(MODEL_FILE)
    return root


def readme_cli():
    """README's CLI block: its ``graph-ntk`` commands (argument lists) and its model file."""
    block = re.search(r"## The main job.*?```bash\n(.*?)```", README, flags=re.S).group(1)
    model_source = re.search(r"cat > my_gnn.py <<'EOF'\n(.*?)EOF\n", block, flags=re.S).group(1)
    text = re.sub(r"cat > .*?\nEOF\n", "", block, flags=re.S).replace("\\\n", " ")
    commands = [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("graph-ntk ")]
    return commands, model_source


def _swap(argv: list[str], **values: str) -> list[str]:
    out = list(argv)
    for flag, value in values.items():
        out[out.index("--" + flag.replace("_", "-")) + 1] = value
    return out


def test_readme_cli_commands_parse_and_run(mutag_parts, shared_dir, tmp_path, capsys):
    """Every command of README's CLI section parses; --model (on 30 MUTAG graphs) and node run."""
    from graph_ntk.cli import _build_parser

    commands, model_source = readme_cli()
    by_flag = {flag: [c for c in commands if flag in c] for flag in ("--model", "--test-dataset", "node")}
    assert all(len(found) == 1 for found in by_flag.values()), by_flag
    for argv in commands:
        _build_parser().parse_args(argv)  # a renamed or removed flag fails here
    (tmp_path / "my_gnn.py").write_text(model_source)
    argv = _swap(by_flag["--model"][0], dataset_dir=str(mutag_parts / "train"), name="M30",
                 model=f"{tmp_path}/my_gnn.py:net", cache_dir=str(tmp_path / "c"), output=str(tmp_path / "k.npy"))
    assert main(argv + ["--no-progress"]) == 0
    namespace: dict = {}
    exec(model_source, namespace)
    expected = gram(namespace["net"], load_gin(mutag_parts / "train", "M30"), get="nngp", progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), expected, rtol=1e-10)
    argv = _swap(by_flag["--test-dataset"][0], dataset_dir=str(mutag_parts / "train"), name="M30",
                 test_dataset=str(mutag_parts / "test"), output=str(tmp_path / "kt.npy"))
    assert main(argv + ["--no-progress", "--blocks", "1"]) == 0 and np.load(tmp_path / "kt.npy").shape == (10, 30)
    capsys.readouterr()
    node = _swap(by_flag["node"][0], dataset_dir=str(shared_dir / "datasets" / "planetoid"))
    assert main(node) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cora |")][0]
    assert float(row.split("|")[7]) >= 80.0, row  # GCN-GP on Cora's public split: ~82%


def test_gram_with_a_model_file_then_svm(mutag_parts, tmp_path, capsys):
    root = mutag_parts
    out = tmp_path / "k.npy"
    # The node path (a raw stax triple) on the 10 graphs of the test set: jit compiles per bucket pair.
    assert main(["gram", "--dataset-dir", str(root / "test"), "--name", "M30", "--model", f"{root}/model.py:net",
                 "--kernel", "nngp", "--output", str(out), "--no-progress", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "M30: nngp Gram 10x10" in capsys.readouterr().out
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_model", root / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = gram(module.net, load_gin(root / "test", "M30"), get="nngp", progress=False)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-10)
    info = json.loads((tmp_path / "k.npy.json").read_text())
    assert info["architecture"].startswith(f"{root}/model.py:net (sha256 ")  # a raw triple: the file spec
    assert info["settings"]["get"] == "nngp" and info["graphs"] == 10
    # The cache key includes the file's SHA-256: editing the file never reuses stale blocks.
    from graph_ntk.cli import _load_model

    config = _load_model(f"{root}/model.py:net")[2]
    (tmp_path / "edited.py").write_text(MODEL_FILE + "\n# edited\n")
    assert config.endswith(f"model.py:net sha256={hashlib.sha256(MODEL_FILE.encode()).hexdigest()}")
    assert _load_model(f"{tmp_path}/edited.py:net")[2].split("sha256=")[1] != config.split("sha256=")[1]
    assert len({p.parent for p in (tmp_path / "c").glob("*/*.npz")}) == 1
    capsys.readouterr()

    # A zero-argument function returning graph_ntk.gntk(...): recorded by its layer program, and svm prints it.
    out2 = tmp_path / "k2.npy"
    assert main(["gram", "--dataset-dir", str(root / "train"), "--name", "M30", "--model", f"{root}/model.py:make",
                 "--output", str(out2), "--no-progress"]) == 0
    np.testing.assert_allclose(np.load(out2), gram(module.make(), load_gin(root / "train", "M30"), progress=False),
                               rtol=1e-10)
    capsys.readouterr()
    assert main(["svm", "--gram", str(out2), "--dataset-dir", str(root / "train"), "--name", "M30",
                 "--grid", "coarse", "--inner-splits", "2"]) == 0
    printed = capsys.readouterr().out
    # the layer program of the gntk(...) network, and the settings
    assert "Dense(512, W_std=2.23607" in printed and "Aggregate(sum, self loops)" in printed
    assert "get=ntk, dtype=float64" in printed
    assert "| M30 | nested SVM |" in printed


def test_gram_of_test_against_train(mutag_parts, tmp_path, capsys):
    root = mutag_parts
    out = tmp_path / "kt.npy"
    assert main(["gram", "--dataset-dir", str(root / "train"), "--name", "M30", "--test-dataset", str(root / "test"),
                 "--model", f"{root}/model.py:description", "--output", str(out), "--no-progress"]) == 0
    assert "test x train kernel" in capsys.readouterr().out
    train, test = load_gin(root / "train", "M30"), load_gin(root / "test", "M30")
    K = np.load(out)
    assert K.shape == (10, 30)  # rows: test graphs, columns: training graphs
    np.testing.assert_allclose(K, gram(GNTK(num_blocks=1), test, train, progress=False), rtol=1e-10)
    info = json.loads((tmp_path / "kt.npy.json").read_text())
    assert info["kind"] == "test x train" and (info["graphs"], info["test_graphs"]) == (30, 10)
    assert info["architecture"].startswith("GNTK(num_blocks=1")
    # svm refuses it in one line: it cross-validates square Grams only.
    assert main(["svm", "--gram", str(out), "--dataset-dir", str(root / "train"), "--name", "M30"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "test x train kernel" in err


def test_node_classification(tmp_path, capsys):
    from graph_ntk.datasets import load_planetoid
    from graph_ntk.models.node import sage
    from graph_ntk.node_inference import node_gp

    write_planetoid(tmp_path / "tiny")
    d = load_planetoid(tmp_path, "tiny")
    assert main(["node", "--dataset-dir", str(tmp_path), "--name", "tiny", "--model-preset", "sage",
                 "--kernel", "ntk"]) == 0
    table = capsys.readouterr().out
    res = node_gp(sage(2), d.x, d.edge_index, d.y, d.train_idx, d.val_idx, d.test_idx, d.num_classes, get="ntk")
    row = f"| tiny | sage(2) | ntk | exact | {res.reg:.3g} | {100 * res.val_accuracy:.1f} | " \
          f"{100 * res.test_accuracy:.1f} | {float(np.mean(res.test_variance)):.4g} |"
    assert row in table and "split 9/500/30" in table
    assert res.test_accuracy > 0.6  # three classes: chance is 1/3
    assert main(["node", "--dataset-dir", str(tmp_path), "--name", "tiny", "--landmarks", "40",
                 "--landmark-method", "kmeans++", "--layers", "3"]) == 0
    assert "| tiny | gcn(3) | nngp | 40 kmeans++ landmarks |" in capsys.readouterr().out


def test_debug_shows_the_traceback(tmp_path, capsys):
    argv = ["svm", "--gram", str(tmp_path / "missing.npy"), "--demo"]
    assert main(argv) == 2
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        main(argv + ["--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", *argv])


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys):
    import graph_ntk.engine

    def out_of_memory(*args, **kwargs):
        raise MemoryError("a 300x300 block needs 9.1 GiB; 4 GiB fit blocks of 128 graphs (use --block-size 128)")

    monkeypatch.setattr(graph_ntk.engine, "gram", out_of_memory)
    assert main(["demo", "--n-graphs", "20", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == ("graph-ntk: error: out of memory: a 300x300 block needs 9.1 GiB; 4 GiB fit blocks of 128 "
                   "graphs (use --block-size 128)\n")
    for exc in (IndexError("index 7 is out of bounds"), EOFError(), RuntimeError("boom")):
        def fail(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(graph_ntk.engine, "gram", fail)
        assert main(["demo", "--n-graphs", "20", "--no-progress"]) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("graph-ntk: error: ") and "Traceback" not in err
