"""The README's commands and example are real: the example runs, the test command matches CI."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_examples_run(capsys, monkeypatch, shared_dir):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) == 2, "README's python examples changed: update this test"
    monkeypatch.chdir(ROOT)  # the examples use paths relative to the project root
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "(3, 1) (3, 3) True" in out
    assert "| MUTAG | paper SVM" in out


def test_ci_runs_the_readme_test_command():
    test_command = re.search(r"# tests\n(.+)\n", README).group(1).strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
