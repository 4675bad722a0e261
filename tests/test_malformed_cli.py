"""Malformed `graph-ntk` invocations: each ends with exactly one line `graph-ntk: error: ...`
on stderr naming the argument or file at fault, a non-zero exit status, and no traceback."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graph_ntk.cli import main
from test_cli import write_planetoid

REPO = Path(__file__).resolve().parents[1]
N = 20  # graphs of the demo set used with --demo --demo-graphs 20
DEMO = ["--demo", "--demo-graphs", str(N)]
GIN = "{shared}/datasets/gin"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every malformed file the cases below point at, made once."""
    d = tmp_path_factory.mktemp("malformed")
    good = np.eye(N) + 1.0
    np.save(d / "good.npy", good)
    asym = good.copy()
    asym[2, 5] += 0.5
    np.save(d / "asym.npy", asym)
    nan = good.copy()
    nan[1, 1] = np.nan
    np.save(d / "nan.npy", nan)
    np.save(d / "small.npy", np.eye(3))
    np.save(d / "cube.npy", np.ones((N, N, 2)))
    np.save(d / "text.npy", np.full((N, N), "a"))
    (d / "garbage.npy").write_text("not numpy")
    (d / "empty.npy").write_bytes(b"")
    for name, sidecar in {"badjson": "{not json", "listjson": "[1, 2]", "order": json.dumps({"order_fingerprint": "x"}),
                          "rect": json.dumps({"kind": "test x train"})}.items():
        np.save(d / f"{name}.npy", good)
        (d / f"{name}.npy.json").write_text(sidecar)
    (d / "binary.npy.json").write_bytes(b"\xff\xfe\x00")
    np.save(d / "binary.npy", good)
    models = {
        "syntax.py": "def broken(:\n",
        "raises.py": "raise RuntimeError('no GPU here')\n",
        "exits.py": "import sys\nsys.exit(3)\n",
        "notmodel.py": "net = 42\n",
        "needsargs.py": "def net(width):\n    return width\n",
        "callfails.py": "def net():\n    return 1 / 0\n",
        "returnsjunk.py": "def net():\n    return 'a string'\n",
        "model.txt": "net = None\n",
    }
    for name, text in models.items():
        (d / name).write_text(text)
    write_planetoid(d / "planetoid" / "tiny")
    for broken in ("noty", "badpickle"):
        shutil.copytree(d / "planetoid" / "tiny", d / "planetoid" / broken)
        for p in (d / "planetoid" / broken).iterdir():
            p.rename(p.with_name(p.name.replace("tiny", broken)))
    (d / "planetoid" / "noty" / "ind.noty.ty").unlink()
    (d / "planetoid" / "badpickle" / "ind.badpickle.x").write_bytes(pickle.dumps(object)[:5])
    return d


T = "{tmp}"
CASES = [
    # (id, argv, text the one error line must contain)
    ("no-command", [], "required"),
    ("unknown-command", ["fly"], "invalid choice"),
    ("unknown-flag", ["gram", *DEMO, "--output", f"{T}/k.npy", "--colour"], "--colour"),
    ("gram-no-output", ["gram", *DEMO], "--output"),
    ("gram-output-suffix", ["gram", *DEMO, "--output", f"{T}/k.txt"], "--output must end in .npy"),
    ("gram-missing-dataset-dir", ["gram", "--dataset-dir", f"{T}/nowhere", "--name", "MUTAG", "--output", f"{T}/k.npy"],
     "nowhere"),
    ("gram-unknown-name", ["gram", "--dataset-dir", GIN, "--name", "MUTAGG", "--output", f"{T}/k.npy"], "MUTAGG"),
    ("gram-demo-and-name", ["gram", *DEMO, "--name", "MUTAG", "--output", f"{T}/k.npy"], "--demo"),
    ("gram-name-without-dir", ["gram", "--name", "MUTAG", "--output", f"{T}/k.npy"], "--dataset-dir"),
    ("gram-blocks-zero", ["gram", *DEMO, "--blocks", "0", "--output", f"{T}/k.npy"], "--blocks"),
    ("gram-blocks-text", ["gram", *DEMO, "--blocks", "four", "--output", f"{T}/k.npy"], "--blocks"),
    ("gram-block-size-float", ["gram", *DEMO, "--block-size", "1.5", "--output", f"{T}/k.npy"], "--block-size"),
    ("gram-memory-negative", ["gram", *DEMO, "--memory-limit", "-1", "--output", f"{T}/k.npy"], "--memory-limit"),
    ("gram-memory-text", ["gram", *DEMO, "--memory-limit", "lots", "--output", f"{T}/k.npy"], "--memory-limit"),
    ("gram-demo-graphs-zero", ["gram", "--demo", "--demo-graphs", "0", "--output", f"{T}/k.npy"], "--demo-graphs"),
    ("gram-bad-kernel", ["gram", *DEMO, "--kernel", "rbf", "--output", f"{T}/k.npy"], "--kernel"),
    ("gram-bad-format", ["gram", "--dataset-dir", GIN, "--name", "MUTAG", "--format", "xml", "--output", f"{T}/k.npy"],
     "--format"),
    ("gram-bad-aggregation", ["gram", *DEMO, "--aggregation", "max", "--output", f"{T}/k.npy"], "--aggregation"),
    ("gram-test-name-alone", ["gram", *DEMO, "--test-name", "X", "--output", f"{T}/k.npy"], "--test-dataset"),
    ("gram-test-dataset-missing", ["gram", "--dataset-dir", GIN, "--name", "MUTAG", "--test-dataset", f"{T}/nowhere",
                                   "--output", f"{T}/k.npy"], "nowhere"),
    ("gram-demo-test-no-name", ["gram", *DEMO, "--test-dataset", GIN, "--output", f"{T}/k.npy"], "--test-name"),
    ("model-no-colon", ["gram", *DEMO, "--model", "model.py", "--output", f"{T}/k.npy"], "--model must be FILE.py:NAME"),
    ("model-bad-name", ["gram", *DEMO, "--model", f"{T}/notmodel.py:1net", "--output", f"{T}/k.npy"], "--model"),
    ("model-not-py", ["gram", *DEMO, "--model", f"{T}/model.txt:net", "--output", f"{T}/k.npy"], "model.txt"),
    ("model-missing-file", ["gram", *DEMO, "--model", f"{T}/absent.py:net", "--output", f"{T}/k.npy"], "absent.py"),
    ("model-syntax-error", ["gram", *DEMO, "--model", f"{T}/syntax.py:net", "--output", f"{T}/k.npy"],
     "syntax.py failed: SyntaxError"),
    ("model-raises", ["gram", *DEMO, "--model", f"{T}/raises.py:net", "--output", f"{T}/k.npy"], "no GPU here"),
    ("model-exits", ["gram", *DEMO, "--model", f"{T}/exits.py:net", "--output", f"{T}/k.npy"], "exits.py failed"),
    ("model-undefined", ["gram", *DEMO, "--model", f"{T}/notmodel.py:other", "--output", f"{T}/k.npy"],
     "defines no 'other'"),
    ("model-not-a-model", ["gram", *DEMO, "--model", f"{T}/notmodel.py:net", "--output", f"{T}/k.npy"],
     "net is a int"),
    ("model-needs-args", ["gram", *DEMO, "--model", f"{T}/needsargs.py:net", "--output", f"{T}/k.npy"],
     "needs arguments"),
    ("model-call-fails", ["gram", *DEMO, "--model", f"{T}/callfails.py:net", "--output", f"{T}/k.npy"],
     "calling net() failed: ZeroDivisionError"),
    ("model-returns-junk", ["gram", *DEMO, "--model", f"{T}/returnsjunk.py:net", "--output", f"{T}/k.npy"],
     "net is a str"),
    ("model-with-gntk-flags", ["gram", *DEMO, "--model", f"{T}/notmodel.py:net", "--blocks", "2", "--output",
                               f"{T}/k.npy"], "--blocks"),
    ("svm-no-gram", ["svm", *DEMO], "--gram"),
    ("svm-missing-gram", ["svm", "--gram", f"{T}/absent.npy", *DEMO], "absent.npy"),
    ("svm-not-numpy", ["svm", "--gram", f"{T}/garbage.npy", *DEMO], "garbage.npy"),
    ("svm-empty-file", ["svm", "--gram", f"{T}/empty.npy", *DEMO], "empty.npy"),
    ("svm-wrong-size", ["svm", "--gram", f"{T}/small.npy", *DEMO], "small.npy: expected a 20x20"),
    ("svm-3d", ["svm", "--gram", f"{T}/cube.npy", *DEMO], "cube.npy"),
    ("svm-text-dtype", ["svm", "--gram", f"{T}/text.npy", *DEMO], "text.npy: expected a real-valued"),
    ("svm-asymmetric", ["svm", "--gram", f"{T}/asym.npy", *DEMO], "asym.npy is not symmetric"),
    ("svm-nan", ["svm", "--gram", f"{T}/nan.npy", *DEMO], "nan.npy contains NaN"),
    ("svm-corrupt-sidecar", ["svm", "--gram", f"{T}/badjson.npy", *DEMO], "badjson.npy.json: corrupt sidecar"),
    ("svm-sidecar-not-object", ["svm", "--gram", f"{T}/listjson.npy", *DEMO], "listjson.npy.json"),
    ("svm-sidecar-binary", ["svm", "--gram", f"{T}/binary.npy", *DEMO], "binary.npy.json"),
    ("svm-other-order", ["svm", "--gram", f"{T}/order.npy", *DEMO], "another order"),
    ("svm-test-x-train", ["svm", "--gram", f"{T}/rect.npy", *DEMO], "rect.npy is a test x train kernel"),
    ("svm-inner-splits-one", ["svm", "--gram", f"{T}/good.npy", *DEMO, "--inner-splits", "1"], "--inner-splits"),
    ("svm-bad-grid", ["svm", "--gram", f"{T}/good.npy", *DEMO, "--grid", "fine"], "--grid"),
    ("node-no-name", ["node", "--dataset-dir", f"{T}/planetoid"], "--name"),
    ("node-missing-dir", ["node", "--dataset-dir", f"{T}/nowhere", "--name", "cora"], "nowhere"),
    ("node-unknown-name", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "pubmedd"], "pubmedd"),
    ("node-missing-file", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "noty"], "ind.noty.ty"),
    ("node-corrupt-pickle", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "badpickle"], "ind.badpickle.x"),
    ("node-exact-and-landmarks", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "tiny", "--exact",
                                  "--landmarks", "10"], "--landmarks"),
    ("node-landmarks-zero", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "tiny", "--landmarks", "0"],
     "--landmarks"),
    ("node-bad-preset", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "tiny", "--model-preset", "gat"],
     "--model-preset"),
    ("node-bad-layers", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "tiny", "--layers", "-2"], "--layers"),
    ("node-bad-seed", ["node", "--dataset-dir", f"{T}/planetoid", "--name", "tiny", "--seed", "x"], "--seed"),
]


@pytest.mark.parametrize("argv, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_invocation_is_one_line(argv, names, files, shared_dir, capsys):
    argv = [a.format(tmp=files, shared=shared_dir) for a in argv]
    before = set(files.iterdir())
    status = main(argv)
    captured = capsys.readouterr()
    assert status != 0
    assert captured.err.count("\n") == 1 and captured.err.startswith("graph-ntk: error: "), captured.err
    assert names.format(tmp=files) in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert set(files.iterdir()) == before  # nothing written (no k.npy, no sidecar)


def test_enough_cases():
    assert len(CASES) >= 30


def test_the_installed_entry_point_too(tmp_path, shared_dir):
    """The real process: one stderr line and exit status 2 for an error raised deep inside."""
    np.save(tmp_path / "asym.npy", np.triu(np.ones((188, 188))))
    argv = ["svm", "--gram", str(tmp_path / "asym.npy"), "--dataset-dir", str(shared_dir / "datasets" / "gin"),
            "--name", "MUTAG"]
    proc = subprocess.run([sys.executable, "-m", "graph_ntk.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("graph-ntk: error: ") and "asym.npy is not symmetric" in proc.stderr
