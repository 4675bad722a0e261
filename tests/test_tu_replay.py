"""experiments/tu_gntk_replay.py: the one command that regenerates the committed TU report
replays exactly the recorded runs, in an order that rebuilds them, and each recorded
``tu_gntk.py`` command line is still accepted by the script's current parser."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from experiment_modules import EXPERIMENTS, load_experiment

replay = load_experiment("tu_gntk_replay")


def test_every_committed_command_parses_and_the_report_is_rebuilt_last():
    tu = load_experiment("tu_gntk")
    cmds = replay.recorded_commands(EXPERIMENTS / "results")
    runs = json.loads((EXPERIMENTS / "results" / "tu_gntk.json").read_text())["datasets"]
    assert len([c for c in cmds if "tu_gntk.py" in c]) == sum(1 + ("paper_command" in r) for r in runs.values())
    for cmd in cmds:
        argv = replay.as_argv(cmd)
        assert argv[0] == sys.executable
        if argv[1].endswith("tu_gntk.py"):
            args = tu.build_parser().parse_args(argv[2:])  # an unknown flag would exit here
            assert len(args.datasets) == 1
    # Per dataset, the paper protocol runs before the --nested-only stage that keeps it.
    for name, r in runs.items():
        if "paper_command" in r:
            assert cmds.index(r["paper_command"]) < cmds.index(r["command"])


def test_main_runs_the_commands_in_order_then_the_report(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda argv, cwd, check: ran.append(argv[1:]))
    replay.main(["--datasets", "COLLAB"])
    out = capsys.readouterr().out
    expected = replay.recorded_commands(EXPERIMENTS / "results", ["COLLAB"])
    assert [" ".join(a) for a in ran[:-1]] == [" ".join(replay.as_argv(c)[1:]) for c in expected]
    assert ran[-1] == ["experiments/tu_gntk.py", "--report-only"]
    assert f"[{len(ran)}/{len(ran)}]" in out


def test_dry_run_runs_nothing(monkeypatch, capsys):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("--dry-run ran a command"))
    replay.main(["--dry-run", "--datasets", "MUTAG"])
    assert "experiments/tu_gntk.py --datasets MUTAG" in capsys.readouterr().out


def test_unknown_dataset_and_scriptless_command_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="no recorded run of NOPE"):
        replay.main(["--datasets", "NOPE"])
    with pytest.raises(SystemExit, match="not found"):
        replay.recorded_commands(tmp_path)
    with pytest.raises(SystemExit, match="names no Python script"):
        replay.as_argv("nice -n 19 echo hello")
