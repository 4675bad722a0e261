"""What a user meets on installing: licence and metadata, a typed public API, import order,
and a one-line error naming the install command when the stax side is missing."""

import ast
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import graph_ntk

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Makes JAX and neural-tangents unimportable, as in an environment without the stax extra.
_BLOCK_STAX = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("jax", "jaxlib", "neural_tangents"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_licence_file_and_metadata_agree():
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]
    meta = metadata.metadata("graph_ntk")
    assert meta["License-Expression"] == PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= {
        url.split(",")[0] for url in meta.get_all("Project-URL")}
    cff = (ROOT / "CITATION.cff").read_text()
    assert f'version: "{graph_ntk.__version__}"' in cff and "license: Apache-2.0" in cff
    assert f"## [{graph_ntk.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_version_is_the_distribution_version():
    assert graph_ntk.__version__ == PYPROJECT["project"]["version"] == metadata.version("graph_ntk")


def test_every_public_name_is_visible_to_static_analysers():
    # `__getattr__` loads names lazily; the `if TYPE_CHECKING:` imports must name each one,
    # from the module that really defines it, so type checkers see its signature.
    tree = ast.parse((ROOT / "graph_ntk" / "__init__.py").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" and len(node.body) > 1)
    seen = {alias.asname or alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
            for alias in node.names}
    assert set(graph_ntk.__all__) <= set(seen), sorted(set(graph_ntk.__all__) - set(seen))
    assert "nn" in seen
    for name in graph_ntk.__all__:
        assert getattr(graph_ntk, name).__module__.startswith(seen[name]), name
    assert (ROOT / "graph_ntk" / "py.typed").exists()


def test_neural_tangents_may_be_imported_first():
    # graph_ntk.pth (installed with the package) imports graph_ntk at interpreter start, so
    # its import hook patches JAX before neural-tangents loads, whoever imports it first.
    out = _run("import sys, neural_tangents as nt\nfrom neural_tangents import stax\nimport graph_ntk as gn\n"
               "stax.serial(stax.Dense(2), gn.Aggregate('sum'))\n"
               "print(sorted(m for m in ('tensorflow', 'tf2jax', 'keras') if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_import_loads_only_a_few_stdlib_modules():
    # graph_ntk.pth runs `import graph_ntk` at every interpreter start, so it must stay cheap
    # (about 5 ms): nothing beyond these (no typing, no importlib.abc, no third-party module).
    code = "import sys\nbefore = set(sys.modules)\nimport graph_ntk\nprint(sorted(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    allowed = {"__future__", "graph_ntk", "graph_ntk._compat", "importlib", "importlib._bootstrap",
               "importlib._bootstrap_external", "types", "warnings"}
    assert set(ast.literal_eval(out.stdout)) <= allowed, out.stdout


def test_missing_stax_side_is_one_line_naming_the_install_command():
    code = _BLOCK_STAX + "import graph_ntk as gn, graph_ntk.nn as nn\n" + """
for get in (lambda: gn.Aggregate, lambda: nn.serial(nn.Dense(2), nn.Relu())[0]):
    try:
        get()
    except ModuleNotFoundError as err:
        print(err)
"""
    out = _run(code)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out
    for line in lines:
        assert "pip install 'graph_ntk[stax]' && pip install --no-deps neural-tangents==0.6.5" in line


def test_core_gram_runs_without_jax_and_neural_tangents(shared_dir):
    code = _BLOCK_STAX + f"""
import graph_ntk as gn, graph_ntk.nn as nn
ds = gn.load_gin({str(shared_dir / 'datasets' / 'gin')!r}, "MUTAG")
net = nn.serial(nn.Dense(8), nn.Aggregate("sum", add_self_loops=True), nn.Relu(), nn.GlobalSumPool())
print(gn.gram(net, ds.graphs[:20], progress=False).shape)
"""
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(20, 20)"
