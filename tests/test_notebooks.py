"""Every notebook in examples/ runs headless, top to bottom, within its time budget, and is
committed without outputs (the docs site and readers run them; a diff stays readable)."""

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
TIMEOUT_S = 300  # one notebook, whole run; each cell also gets this as its own limit


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear the outputs"


def _run(path: Path, shared_dir: Path, monkeypatch, quick: bool) -> None:
    monkeypatch.setenv("GRAPH_NTK_DATA", str(shared_dir / "datasets"))
    if quick:  # the notebooks read it to run on less data (fewer depths, fewer graphs)
        monkeypatch.setenv("GRAPH_NTK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   ).execute()
    assert time.perf_counter() - start < TIMEOUT_S
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_quick(path, shared_dir, monkeypatch):
    _run(path, shared_dir, monkeypatch, quick=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_full(path, shared_dir, monkeypatch):
    _run(path, shared_dir, monkeypatch, quick=False)
