"""Install graph_ntk every way a user would, into fresh environments, and check each one.

Routes: the README's ``uv sync --frozen`` in a copy of the checkout; ``pip install`` of the
checkout and of the built wheel into a fresh ``python -m venv``; ``uv pip install`` into a
fresh ``uv venv``; ``uv add`` into a new ``uv init`` project. Each route is installed bare,
with ``[dask]`` and with ``[stax]`` (plus neural-tangents by the README's recipe:
``--no-deps`` for pip and uv pip, the ``override-dependencies`` snippet for a uv project).
The variant ``stax-jaxmin`` (uv pip) pins JAX to the lowest version the ``[stax]`` extra
allows and also runs ``tests/test_compat.py`` there; the locked project environment (route
``readme``) has the highest.

Every environment must show:

* no distribution named ``tensorflow*``, ``tf2jax``, ``keras`` or ``tf-keras``;
* ``import graph_ntk`` works, before and after ``import neural_tangents`` where the route
  has the stax side, and without it ``gn.Aggregate`` fails with the one-line install hint;
* a MUTAG Gram (first 24 graphs) of a ``graph_ntk.nn`` description;
* with the stax side: that description's own ``kernel_fn`` on the padded batch equals it
  (float64, rtol 1e-9); with ``[dask]``: the same Gram through a local Dask cluster.

Usage: ``python scripts/check_install_routes.py [--routes pip-checkout,uv-add] [--variants
core,dask,stax] [--report FILE]``. Needs the package index (PyPI) and ``uv``; takes minutes.
Run by ``tests/test_install_routes.py`` (slow-marked).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "gin"
NT_PIN = "neural-tangents==0.6.5"
ROUTES = ("readme", "pip-checkout", "pip-wheel", "uv-pip", "uv-add")
VARIANTS = ("core", "dask", "stax", "stax-jaxmin")
# The README's snippet for uv projects (neural-tangents' metadata names TensorFlow for a module
# graph_ntk never imports).
UV_OVERRIDE = """
[tool.uv]
override-dependencies = ["tensorflow; sys_platform == 'never'", "tf2jax; sys_platform == 'never'"]
"""

# Runs inside each fresh environment (its own python, cwd outside the checkout).
CHECK = r"""
import json, subprocess, sys
from importlib import metadata

stax, dask, data = sys.argv[1] == "1", sys.argv[2] == "1", sys.argv[3]
report = {}
dists = sorted({d.metadata["Name"].lower() for d in metadata.distributions()})
report["forbidden"] = [d for d in dists if d.startswith("tensorflow") or d in ("tf2jax", "keras", "tf-keras")]
report["has_neural_tangents"] = "neural-tangents" in dists or "neural_tangents" in dists

def run(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.returncode == 0, (out.stdout + out.stderr).strip().splitlines()[-1:] 

report["import_graph_ntk"] = run("import graph_ntk")
if stax:
    report["import_nt_first"] = run("import neural_tangents; from neural_tangents import stax; import graph_ntk as gn; "
                                    "stax.serial(stax.Dense(2), gn.Aggregate('sum'))")
else:
    ok, last = run("import graph_ntk as gn; gn.Aggregate")
    report["stax_hint"] = (not ok and "pip install --no-deps neural-tangents==0.6.5" in last[0], last)

import numpy as np
import graph_ntk as gn
import graph_ntk.nn as nn

graphs = gn.load_gin(data, "MUTAG").graphs[:24]
net = nn.serial(nn.Dense(16), nn.Aggregate("sum", add_self_loops=True), nn.Relu(), nn.Dense(16), nn.Erf(),
                nn.GlobalSumPool(), nn.Dense(1))
K = gn.gram(net, graphs, num_tags=7, progress=False, dtype="float64")
report["gram"] = [list(K.shape), float(K.trace())]
if stax:
    import jax

    jax.config.update("jax_enable_x64", True)
    batch = gn.GraphBatch.from_graphs(graphs, num_tags=7)
    ntk = np.asarray(net.triple[2](batch.x, None, "ntk", **gn.kernel_kwargs(batch)))
    report["kernel_fn_equal"] = bool(np.allclose(ntk, K, rtol=1e-9, atol=0))
if dask:
    import tempfile
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster, Client(cluster) as client:
        with tempfile.TemporaryDirectory() as cache:
            Kd = gn.gram(net, graphs, num_tags=7, progress=False, dtype="float64", cache_dir=cache, scheduler=client)
    report["dask_equal"] = bool(np.allclose(Kd, K, rtol=1e-12, atol=0))
print("REPORT " + json.dumps(report))
"""


def sh(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return out.stdout


def copy_checkout(dest: Path) -> Path:
    """The working tree's tracked and not-ignored files (no .venv, no caches)."""
    files = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT).split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def uv() -> list[str]:
    return [sys.executable, "-m", "uv"]


def jax_min() -> str:
    """The lower end of the ``[stax]`` extra's JAX range, from pyproject.toml."""
    import tomllib

    stax = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["stax"]
    return next(req for req in stax if req.startswith("jax>=")).split(">=")[1].split(",")[0]


def install(route: str, variant: str, work: Path, checkout: Path, wheel: Path) -> list[str]:
    """Install and return the command that runs a Python of the new environment."""
    extra = "" if variant == "core" else f"[{variant.partition('-')[0]}]"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    if route == "readme":  # the README's first command, in a fresh copy
        project = copy_checkout(work / "project")
        sh([*uv(), "sync", "--frozen"], project, env)
        return [*uv(), "run", "--frozen", "--project", str(project), "python"]
    if route in ("pip-checkout", "pip-wheel"):
        sh([sys.executable, "-m", "venv", str(work / "venv")], work)
        py = str(work / "venv" / "bin" / "python")
        target = str(checkout) if route == "pip-checkout" else str(wheel)
        sh([py, "-m", "pip", "install", "--quiet", f"graph_ntk{extra} @ file://{target}"], work)
        if variant == "stax":
            sh([py, "-m", "pip", "install", "--quiet", "--no-deps", NT_PIN], work)
        return [py]
    if route == "uv-pip":
        sh([*uv(), "venv", "--python", sys.executable, str(work / "venv")], work, env)
        py = str(work / "venv" / "bin" / "python")
        pins = [f"{name}=={jax_min()}" for name in ("jax", "jaxlib")] + ["pytest"] if variant == "stax-jaxmin" else []
        sh([*uv(), "pip", "install", "--python", py, f"graph_ntk{extra} @ file://{checkout}", *pins], work, env)
        if variant.startswith("stax"):
            sh([*uv(), "pip", "install", "--python", py, "--no-deps", NT_PIN], work, env)
        return [py]
    if route == "uv-add":
        project = work / "userproj"
        project.mkdir()
        sh([*uv(), "init", "--bare", "--name", "userproj", "--python", sys.executable], project, env)
        packages = [f"graph_ntk{extra} @ file://{checkout}"]
        if variant == "stax":
            with open(project / "pyproject.toml", "a") as f:
                f.write(UV_OVERRIDE)
            packages.append(NT_PIN)
        sh([*uv(), "add", "--python", sys.executable, *packages], project, env)
        return [*uv(), "run", "--project", str(project), "python"]
    raise ValueError(route)


def check(route: str, variant: str, work: Path, checkout: Path, wheel: Path) -> dict:
    start = time.perf_counter()
    python = install(route, variant, work, checkout, wheel)
    stax = variant.startswith("stax") or route == "readme"
    dask = variant == "dask" or route == "readme"
    script = work / "check.py"
    script.write_text(CHECK)
    out = sh([*python, str(script), str(int(stax)), str(int(dask)), str(DATA)], work)
    report = json.loads(next(line for line in out.splitlines() if line.startswith("REPORT "))[7:])
    if variant == "stax-jaxmin":  # the compatibility shims and the stax layers on the oldest JAX
        tests = sh([*python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_compat.py",
                    "tests/test_layers.py"], checkout)
        report["jax"] = sh([*python, "-c", "import jax; print(jax.__version__)"], work).strip()
        report["tests"] = tests.strip().splitlines()[-1]
    report["seconds"] = round(time.perf_counter() - start, 1)
    checks = [not report["forbidden"], report["import_graph_ntk"][0], report["gram"][0] == [24, 24]]
    checks.append(report["import_nt_first"][0] and report["kernel_fn_equal"] if stax else report["stax_hint"][0])
    if dask:
        checks.append(report["dask_equal"])
    if variant == "stax-jaxmin":
        checks.append(report["jax"] == jax_min())
    report["ok"] = all(checks)
    return report


def markdown(results: dict) -> str:
    """One row per route: what was installed and what each check saw."""
    def mark(value: object) -> str:
        return "—" if value is None else ("yes" if value else "NO")

    rows = ["| route | result | TensorFlow / tf2jax / keras | `import graph_ntk` | neural-tangents first "
            "| stax hint (core) | MUTAG Gram | `kernel_fn` equal | Dask equal | JAX / tests | s |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            rows.append(f"| {name} | FAILED: {r['error'].splitlines()[0][:80]} |" + " |" * 9)
            continue
        rows.append(" | ".join([
            f"| {name}", "ok" if r["ok"] else "FAILED", ", ".join(r["forbidden"]) or "none",
            mark(r["import_graph_ntk"][0]), mark(r.get("import_nt_first", [None])[0]),
            mark(r.get("stax_hint", [None])[0]), "x".join(map(str, r["gram"][0])),
            mark(r.get("kernel_fn_equal")), mark(r.get("dask_equal")),
            f"{r['jax']}: {r['tests']}" if "jax" in r else "", f"{r['seconds']:.0f} |"]))
    return ("# Install routes\n\nWritten by `python3 scripts/check_install_routes.py --markdown FILE` on "
            f"{time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}: each route installed into a fresh "
            "environment from the package index.\n\n" + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--report", type=Path, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the results as a Markdown table here")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="graph_ntk_routes_") as tmp:
        checkout = copy_checkout(Path(tmp) / "checkout")
        sh([*uv(), "build", "--wheel", "--out-dir", str(Path(tmp) / "dist"), str(checkout)], Path(tmp))
        wheel = next((Path(tmp) / "dist").glob("*.whl"))
        for route in args.routes.split(","):
            variants = [v for v in args.variants.split(",") if v != "stax-jaxmin" or route == "uv-pip"]
            for variant in variants if route != "readme" else ["dev"]:
                work = Path(tmp) / f"{route}-{variant}"
                work.mkdir()
                try:
                    results[f"{route}[{variant}]"] = check(route, variant, work, checkout, wheel)
                except RuntimeError as err:
                    results[f"{route}[{variant}]"] = {"ok": False, "error": str(err)[-3000:]}
                res = results[f"{route}[{variant}]"]
                print(f"{route + '[' + variant + ']':22s} {'ok' if res['ok'] else 'FAILED'} "
                      f"{json.dumps({k: v for k, v in res.items() if k != 'ok'})}", flush=True)
                shutil.rmtree(work, ignore_errors=True)
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(results))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
