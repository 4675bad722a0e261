"""Load a script of ``experiments/`` as a module, for the tests (pytest puts tests/ on sys.path)."""

import importlib.util
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def load_experiment(name: str):
    """``experiments/<name>.py`` as a fresh module; its sibling scripts importable while it loads."""
    sys.path.insert(0, str(EXPERIMENTS))  # the experiments import their sibling modules
    try:
        spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(EXPERIMENTS))
