"""Regenerate ``experiments/results/tu_gntk.md`` (tables, plots, raw-form probes) from scratch
with one command: rerun every command recorded beside the committed results, in order.

The committed report was not produced by one invocation of ``tu_gntk.py``: each dataset ran
with its own (reduced) settings, some in two stages (the paper protocol, then more nested
repetitions with ``--nested-only``), and ``tu_raw_form.py`` probed the raw Gram form. Every
run records its command line in its results file (``results/tu_gntk.json``:
``paper_command`` and ``command`` per dataset; ``results/tu_raw_form_<dataset>.json``:
``command``). This script replays them: per dataset the paper protocol before its nested
stage, the raw-form probes after the datasets (they read the same Gram cache), and finally
``tu_gntk.py --report-only``. Grams and scores already in the cache, and nested scores in
the committed archive, are read back (verified) instead of recomputed, so an interrupted
replay resumes where it stopped.

Usage::

    nice -n 19 .venv/bin/python experiments/tu_gntk_replay.py --dry-run      # list the commands
    nice -n 19 .venv/bin/python experiments/tu_gntk_replay.py                # all (many hours cold)
    nice -n 19 .venv/bin/python experiments/tu_gntk_replay.py --datasets MUTAG PTC
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def recorded_commands(results: Path, datasets: list[str] | None = None) -> list[str]:
    """The recorded command lines under ``results``, in the order that rebuilds them.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> runs = {"A": {"command": "py tu_gntk.py --datasets A"},
        ...         "B": {"paper_command": "py tu_gntk.py --datasets B", "command": "py tu_gntk.py --datasets B --nested-only"}}
        >>> _ = (d / "tu_gntk.json").write_text(json.dumps({"datasets": runs}))
        >>> _ = (d / "tu_raw_form_B.json").write_text(json.dumps({"dataset": "B", "command": "py tu_raw_form.py --dataset B"}))
        >>> for c in recorded_commands(d): print(c)
        py tu_gntk.py --datasets A
        py tu_gntk.py --datasets B
        py tu_gntk.py --datasets B --nested-only
        py tu_raw_form.py --dataset B
        >>> recorded_commands(d, ["A"])
        ['py tu_gntk.py --datasets A']
    """
    path = results / "tu_gntk.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: nothing recorded to replay (run experiments/tu_gntk.py first)")
    runs = json.loads(path.read_text()).get("datasets", {})
    unknown = sorted(set(datasets or ()) - set(runs))
    if unknown:
        raise SystemExit(f"--datasets: no recorded run of {', '.join(unknown)} in {path} (recorded: {', '.join(runs)})")
    chosen = [d for d in runs if datasets is None or d in datasets]
    cmds = [c for d in chosen for c in (runs[d].get("paper_command"), runs[d]["command"]) if c]
    for probe in sorted(results.glob("tu_raw_form_*.json")):
        r = json.loads(probe.read_text())
        if r["dataset"] in chosen:
            cmds.append(r["command"])
    return cmds


def as_argv(command: str) -> list[str]:
    """A recorded command as the argument list to run here: the script and its arguments,
    under this interpreter (the recorded ``nice -n 19 .venv/bin/python`` prefix is dropped:
    run the replay itself under ``nice``, its children inherit that).

    Example:
        >>> as_argv("nice -n 19 .venv/bin/python experiments/tu_gntk.py --datasets 'IMDB-B'")[1:]
        ['experiments/tu_gntk.py', '--datasets', 'IMDB-B']
    """
    tokens = shlex.split(command)
    script = next((i for i, t in enumerate(tokens) if t.endswith(".py")), None)
    if script is None:
        raise SystemExit(f"recorded command names no Python script: {command!r}")
    return [sys.executable, *tokens[script:]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", help="replay only these datasets' runs (default: all recorded)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    cmds = recorded_commands(HERE / "results", args.datasets)
    report = "nice -n 19 .venv/bin/python experiments/tu_gntk.py --report-only"
    for i, cmd in enumerate([*cmds, report], 1):
        print(f"[{i}/{len(cmds) + 1}] {cmd}", flush=True)
        if not args.dry_run:
            subprocess.run(as_argv(cmd), cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
