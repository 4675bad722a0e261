"""The graph-ntk command line: demo, gram -> svm round trip, bad input, and kill/resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graph_ntk.cli import main
from graph_ntk.datasets import load_gin
from graph_ntk.engine import GNTK, gram

REPO = Path(__file__).resolve().parents[1]


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
