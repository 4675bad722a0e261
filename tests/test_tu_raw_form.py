"""experiments/tu_raw_form.py: the raw-vs-cosine paper-protocol experiment, on MUTAG (seconds)."""

import json

import numpy as np
import pytest
from experiment_modules import EXPERIMENTS, load_experiment

from graph_ntk.evaluation import svm_paper_protocol

def test_raw_form_experiment_matches_the_library_protocol(shared_dir, tmp_path):
    exp = load_experiment("tu_raw_form")
    T = exp.T
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    exp.main(["--dataset", "MUTAG", "--data", str(shared_dir / "datasets"), "--out", str(out), "--cache-dir",
              str(cache_dir), "--mlp-layers", "1", "--scalings", "sum", "--c-step", "40", "--refine", "2", "--jobs", "2"])
    r = json.loads((out / "tu_raw_form_MUTAG.json").read_text())
    md = (out / "tu_raw_form_MUTAG.md").read_text()
    assert not list(out.glob("*.tmp"))
    # Every NTK of the grid part (L = 1, 3; JK on and off) in both forms, and nothing else.
    assert sorted(r["kernels"]) == sorted(f"ntk L{d} R1 sum{jk}|{f}" for d in (1, 3) for jk in ("", " JK")
                                          for f in ("raw", "cos"))
    assert [f["kernel"].split("|")[1] for f in r["refined"]] == ["raw"] * 2 + ["cos"] * 2  # --refine 2
    assert "`ntk L1 R1 sum JK`" in md and "Published (Table 1): 90.0" in md
    # The same scores as the library's own paper protocol on the same Gram, folds and C values.
    folder, tag, depths = T.DATASETS["MUTAG"]
    ds = T.reference_self_loops(T.load_gin(shared_dir / "datasets" / "gin", folder, degree_as_tag=tag))
    grams = T.gntk_pass("MUTAG", ds, depths, 1, "sum", T.ScoreCache(cache_dir / "MUTAG"),
                        T.plain_key(ds, "float64"), {})
    c_grid = T.PAPER_C[::40]
    for k in ("ntk L1 R1 sum JK", "ntk L3 R1 sum"):
        raw, cos = svm_paper_protocol(grams[k], np.asarray(ds.y), ds.folds, c_grid=c_grid,
                                      normalizations=("raw", "cosine"))
        assert r["kernels"][f"{k}|raw"]["mean"] == pytest.approx(raw.mean, abs=1e-12)
        assert r["kernels"][f"{k}|cos"]["mean"] == pytest.approx(cos.mean, abs=1e-12)
        assert r["kernels"][f"{k}|raw"]["C"] == pytest.approx(raw.selected[0]["C"])
    # The refinement searches a window of the full C grid around the coarse best: never worse.
    for f in r["refined"]:
        assert f["mean"] >= f["coarse"]["mean"] and f["n_C"] > 1
    # The TU report shows the probe beside the paper-protocol table, with its command.
    report = load_experiment("tu_gntk_report")
    stored = json.loads((EXPERIMENTS / "results" / "tu_gntk.json").read_text())
    text = report.markdown(stored, T.DATASETS, [r])
    raw = report.best_refined(r, "raw")
    assert raw["mean"] == max(f["mean"] for f in r["refined"][:2])
    row = next(line for line in text.splitlines() if line.startswith("| GNTK ours, raw Gram"))
    assert row.split(" | ")[1] == f"{100 * raw['mean']:.1f} ± {100 * raw['std']:.1f} ({round(100 * raw['mean'] - 90.0, 1) + 0.0:+.1f})"
    assert f"`{r['command']}`" in text and "tu_raw_form_MUTAG.md" in text
    # Both forms: the larger of the committed (cosine/raw) MUTAG number and the probe's raw one.
    row = next(line for line in text.splitlines() if line.startswith("| GNTK ours, both forms"))
    committed = max(v["mean"] for k, v in stored["datasets"]["MUTAG"]["paper"].items() if k.startswith("ntk"))
    assert row.split(" | ")[1] == f"{round(100 * max(committed, raw['mean']) - 90.0, 1) + 0.0:+.1f}"


def test_raw_form_experiment_refuses_a_data_folder_without_datasets(tmp_path):
    exp = load_experiment("tu_raw_form")
    with pytest.raises(SystemExit):
        exp.main(["--dataset", "MUTAG", "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
