"""Every docstring example in the package and the TU experiment runs and prints what it shows,
and every python block of the documentation site's pages (``docs/**/*.md``) runs.

A user copies these examples first, so a stale one is a bug: each module's examples are one
test here (``doctest``), and a module whose docstring cannot even be parsed fails too.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest
from experiment_modules import load_experiment

import graph_ntk

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_MODULES = sorted(m.name for m in pkgutil.walk_packages(graph_ntk.__path__, "graph_ntk."))
EXPERIMENT_MODULES = ["tu_gntk", "tu_gntk_report", "tu_gntk_replay", "tu_inputs", "score_archive"]


def _run(module) -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, module.__name__) if t.examples]
    for t in tests:
        runner.run(t, out=lambda s: sys.stdout.write(s))
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {module.__name__} failed (above)"


def test_modules_found():
    assert "graph_ntk.model_selection" in PACKAGE_MODULES and len(PACKAGE_MODULES) > 20


@pytest.mark.parametrize("name", PACKAGE_MODULES)
def test_package_examples(name):
    if name == "graph_ntk.chem":  # the optional [chem] extra: its examples parse molecules with RDKit
        pytest.importorskip("rdkit")
        pytest.importorskip("datamol")
    _run(importlib.import_module(name))


@pytest.mark.parametrize("name", EXPERIMENT_MODULES)
def test_experiment_examples(name):
    _run(load_experiment(name))


DOC_BLOCKS = [(str(p.relative_to(ROOT / "docs")), i, code) for p in sorted((ROOT / "docs").rglob("*.md"))
              for i, code in enumerate(re.findall(r"```python\n(.*?)```", p.read_text(), flags=re.S))]


def test_doc_blocks_found():
    assert any(name == "pooling.md" for name, _, _ in DOC_BLOCKS)


@pytest.mark.parametrize("name,i,code", DOC_BLOCKS, ids=[f"{n}[{i}]" for n, i, _ in DOC_BLOCKS])
def test_docs_python_blocks_run(name, i, code):
    exec(compile(code, f"docs/{name} block {i}", "exec"), {})
