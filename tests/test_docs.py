"""The documentation site builds in strict mode: every page in the nav exists, every link and
every API reference (mkdocstrings, from the docstrings) resolves, the notebooks render."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    site = tmp_path / "site"
    for page in ("index.html", "engine/index.html", "api/nn/index.html", "examples/quickstart/index.html",
                 "guide/graph_classification/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    # the API reference holds every nn builder, with its example
    nn_page = (site / "api" / "nn" / "index.html").read_text()
    import graph_ntk.nn as nn

    for name in nn.__all__:
        assert f'id="graph_ntk.nn.{name}"' in nn_page, name
    assert nn_page.count("Example") >= len(nn.__all__) - 3  # all but Network, program_of and StructurePool's then
    for nb in (ROOT / "examples").glob("*.ipynb"):  # every notebook is rendered, in the nav or not
        assert (site / "examples" / nb.stem / "index.html").is_file(), nb.name
    shutil.rmtree(site)


def test_every_public_module_is_in_the_api_reference():
    import pkgutil

    import graph_ntk

    modules = sorted(m.name for m in pkgutil.walk_packages(graph_ntk.__path__, "graph_ntk.")
                     if not m.name.rpartition(".")[2].startswith("_"))
    pages = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md")).splitlines()
    missing = [m for m in modules if f"::: {m}" not in pages]
    assert not missing, f"add to a page of docs/api/: {missing}"
