"""The Gram engine's files and memory are never silently wrong: verified cache blocks, no
stale temporaries, order sidecars, concurrent runs, destination, overflow and memory checks."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import graph_ntk.engine.jobs  # noqa: F401  (monkeypatched below)
from graph_ntk import Graph
from graph_ntk.cli import main
from graph_ntk.engine import GNTK, files, gram, memory
from graph_ntk.engine.files import CorruptBlockWarning

REPO = Path(__file__).resolve().parents[1]
MODEL = GNTK(2, 1)
KW = dict(block_size=8, progress=False)  # 24 graphs: 3 colour chunks, 6 cached blocks


def labelled_graphs(count: int = 24, seed: int = 5) -> list[Graph]:
    """Small simple undirected graphs with 3 node labels (the colour path applies)."""
    rng = np.random.default_rng(seed)
    graphs = []
    for n in rng.integers(4, 12, size=count):
        a = np.triu(rng.random((n, n)) < 0.35, 1)
        s, r = np.nonzero(a | a.T)
        graphs.append(Graph(int(n), np.stack([s, r]), node_labels=rng.integers(0, 3, size=n)))
    return graphs


@pytest.fixture(scope="module")
def demo():
    return labelled_graphs()


@pytest.fixture(scope="module")
def reference(demo):
    return gram(MODEL, demo, **KW)


@pytest.fixture
def saves(monkeypatch) -> list[str]:
    """Names of the blocks computed and saved (each computed block is saved exactly once)."""
    names: list[str] = []
    original = files.save_block

    def spy(folder, name, block):
        names.append(name)
        original(folder, name, block)

    monkeypatch.setattr(files, "save_block", spy)
    return names


def _populate(demo, cache: Path) -> Path:
    gram(MODEL, demo, cache_dir=cache, **KW)
    [folder] = [p for p in cache.iterdir() if p.is_dir()]
    assert sorted(p.stem for p in folder.glob("*.npz")) == ["a0_a0", "a0_a1", "a0_a2", "a1_a1", "a1_a2", "a2_a2"]
    return folder


def _rezip(path: Path, block: np.ndarray, meta: str) -> None:
    """Rewrite a block file with other data but its old checksum record (a valid zip)."""
    buf = io.BytesIO()
    np.savez(buf, block=block, meta=np.array(meta))
    path.write_bytes(buf.getvalue())


def _read(path: Path) -> tuple[np.ndarray, str]:
    with np.load(path) as z:
        return z["block"], str(z["meta"])


def _flip_data_byte(folder: Path) -> list[str]:
    path = folder / "a0_a1.npz"
    raw = bytearray(path.read_bytes())
    data = _read(path)[0].tobytes()
    at = raw.find(data)
    assert at > 0
    raw[at + len(data) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    return ["a0_a1"]


def _edit_data(folder: Path) -> list[str]:  # valid zip, so only the checksum can tell
    block, meta = _read(folder / "a1_a2.npz")
    block[0, 1, 1] *= 1.0000001
    _rezip(folder / "a1_a2.npz", block, meta)
    return ["a1_a2"]


def _nan(folder: Path) -> list[str]:  # NaN written with a valid checksum: still refused
    block, _ = _read(folder / "a0_a0.npz")
    block[0, 2, 3] = np.nan
    files.save_block(folder, "a0_a0", block)
    return ["a0_a0"]


def _swap(folder: Path) -> list[str]:  # same shape, each with a valid checksum of its own name
    a, b = folder / "a0_a1.npz", folder / "a0_a2.npz"
    a.rename(folder / "tmp.npz")
    b.rename(a)
    (folder / "tmp.npz").rename(b)
    return ["a0_a1", "a0_a2"]


def _float32(folder: Path) -> list[str]:
    block, _ = _read(folder / "a2_a2.npz")
    files.save_block(folder, "a2_a2", block.astype(np.float32))
    return ["a2_a2"]


def _zero_file(folder: Path) -> list[str]:
    path = folder / "a1_a1.npz"
    path.write_bytes(bytes(path.stat().st_size))
    return ["a1_a1"]


def _zero_array(folder: Path) -> list[str]:
    block, meta = _read(folder / "a1_a1.npz")
    _rezip(folder / "a1_a1.npz", np.zeros_like(block), meta)
    return ["a1_a1"]


def _empty(folder: Path) -> list[str]:
    (folder / "a0_a2.npz").write_bytes(b"")
    return ["a0_a2"]


@pytest.mark.parametrize("damage", [_flip_data_byte, _edit_data, _nan, _swap, _float32, _zero_file, _zero_array,
                                    _empty], ids=lambda f: f.__name__.strip("_"))
def test_bad_blocks_are_detected_and_recomputed(demo, reference, tmp_path, saves, damage):
    folder = _populate(demo, tmp_path)
    bad = damage(folder)
    saves.clear()
    with pytest.warns(CorruptBlockWarning) as caught:
        K = gram(MODEL, demo, cache_dir=tmp_path, **KW)
    messages = [str(w.message) for w in caught if issubclass(w.category, CorruptBlockWarning)]
    assert len(messages) == len(bad)
    for name, message in zip(sorted(bad), sorted(messages)):
        assert str(folder / f"{name}.npz") in message and "recomputing" in message
    assert sorted(saves) == sorted(bad)  # only the bad ones, each once
    np.testing.assert_array_equal(K, reference)
    saves.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptBlockWarning)
        np.testing.assert_array_equal(gram(MODEL, demo, cache_dir=tmp_path, **KW), reference)
    assert saves == []


def test_old_cache_versions_are_never_read(demo):
    assert files._CACHE_VERSION != "graph_ntk.engine/1"
    assert files.cache_key({}, demo, None) != files.cache_key({"v": 1}, demo, None)


# ----------------------------------------------------------------------------- temporaries
def _killed_while_writing(path: Path) -> None:
    """A process killed (os._exit: no cleanup at all) half-way through writing ``path``."""
    code = ("import os, sys; from graph_ntk.engine.files import _write_atomic\n"
            "_write_atomic(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), os._exit(9)))\n")
    run = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 9, run.stderr


def test_kill_during_output_write_leaves_no_temporary_after_next_run(demo, reference, tmp_path):
    out = tmp_path / "K.npy"
    _killed_while_writing(out)
    assert not out.exists() and len(list(tmp_path.glob(".K.npy.*.tmp"))) == 1  # fresh, not old
    (tmp_path / ".other.npy.x.tmp").write_bytes(b"")  # another file's: not ours to judge here
    np.testing.assert_array_equal(gram(MODEL, demo, output=out, **KW), reference)
    np.testing.assert_array_equal(np.load(out), reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.npy.x.tmp", "K.npy", "K.npy.json"]


def test_kill_during_block_write_is_cleaned_from_the_cache(demo, reference, tmp_path):
    folder = _populate(demo, tmp_path)
    _killed_while_writing(folder / "a0_a1.npz")
    assert list(folder.glob(".*.tmp"))
    np.testing.assert_array_equal(gram(MODEL, demo, cache_dir=tmp_path, **KW), reference)
    assert not list(folder.glob(".*.tmp"))


def test_a_live_writers_temporary_is_kept(tmp_path):
    live = tmp_path / ".K.npy.abc.tmp"
    with open(live, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # as _write_atomic holds it while writing
        files.save_npy_atomic(tmp_path / "K.npy", np.ones(2))
        assert live.exists()
    files.save_npy_atomic(tmp_path / "K.npy", np.ones(2))
    assert not live.exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(f, array):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        files.save_npy_atomic(tmp_path / "K.npy", np.ones(2))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- CLI sidecar
def test_cli_output_never_without_its_sidecar(tmp_path, monkeypatch, capsys):
    from test_cli import write_gin

    for n in (12, 14):
        write_gin(tmp_path / "data" / f"G{n}", labelled_graphs(n), [i % 2 for i in range(n)])
    out = tmp_path / "K.npy"
    args = ["gram", "--dataset-dir", str(tmp_path / "data"), "--blocks", "1", "--mlp-layers", "1",
            "--output", str(out), "--no-progress"]
    assert main([*args, "--name", "G12"]) == 0
    side = json.loads((tmp_path / "K.npy.json").read_text())
    K = np.load(out)
    assert side["graphs"] == 12 and side["shape"] == [12, 12]
    assert side["sha256"] == hashlib.sha256(np.ascontiguousarray(K).data).hexdigest()

    # Killed (or out of disk) while writing the new sidecar, then the new matrix: both are
    # written in full before either old file is replaced, so the old pair survives intact.
    for suffix in (".json", ".npy"):
        original = files.staged

        def killed(path, write, _suffix=suffix, _original=original):
            if str(path).endswith(_suffix):
                raise KeyboardInterrupt
            return _original(path, write)

        monkeypatch.setattr(files, "staged", killed)
        assert main([*args, "--name", "G14"]) == 130
        monkeypatch.undo()
        assert json.loads((tmp_path / "K.npy.json").read_text())["graphs"] == 12 and np.load(out).shape == (12, 12)
    # Killed between the two renames: the new matrix beside the old sidecar is refused by svm.
    real_replace, calls = os.replace, []

    def replace_then_die(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", replace_then_die)
    assert main([*args, "--name", "G14"]) == 130
    monkeypatch.undo()
    assert np.load(out).shape == (14, 14)
    assert main(["svm", "--gram", str(out), "--dataset-dir", str(tmp_path / "data"), "--name", "G14"]) != 0
    assert "SHA-256" in capsys.readouterr().err
    assert main([*args, "--name", "G14"]) == 0
    assert json.loads((tmp_path / "K.npy.json").read_text())["graphs"] == 14 and np.load(out).shape == (14, 14)
    assert not list(tmp_path.glob(".*.tmp"))
    capsys.readouterr()


def test_cli_checks_output_before_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(graph_ntk.engine.jobs, "_prepare", lambda *a, **k: pytest.fail("work started"))
    assert main(["gram", "--demo", "--demo-graphs", "6", "--output", "/proc/K.npy", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'/proc/K.npy'" in err and ".tmp" not in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- concurrency
_WORKER = """
import sys, time, types
from pathlib import Path
import numpy as np
# The colour path needs no JAX: keep these processes light (importing JAX takes seconds).
sys.modules.setdefault("graph_ntk.engine.node_path", types.SimpleNamespace(_NodeEngine=None))
from graph_ntk.engine import GNTK, files, gram
from test_engine_files import labelled_graphs
tmp, me = Path(sys.argv[1]), sys.argv[2]
original = files.save_block
def slow_save(folder, name, block):  # a slow block: the other run must not compute it too
    time.sleep(0.4)
    with open(tmp / "computed.log", "a") as f:
        f.write(f"{me} {name}\\n")
    original(folder, name, block)
files.save_block = slow_save
ds = labelled_graphs()
(tmp / f"ready{me}").touch()
while not ((tmp / "ready0").exists() and (tmp / "ready1").exists()):
    time.sleep(0.005)
np.save(tmp / f"K{me}.npy", gram(GNTK(2, 1), ds, block_size=8, cache_dir=tmp / "cache", progress=False))
"""


def test_two_concurrent_runs_compute_each_block_once(reference, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    runs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(i)], env=env,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    computed = [line.split()[1] for line in (tmp_path / "computed.log").read_text().splitlines()]
    assert sorted(computed) == ["a0_a0", "a0_a1", "a0_a2", "a1_a1", "a1_a2", "a2_a2"]
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"K{i}.npy"), reference)


def test_a_block_held_by_another_run_is_waited_for(demo, reference, tmp_path, saves):
    folder = _populate(demo, tmp_path)
    (folder / "a1_a2.npz").unlink()
    saves.clear()
    # Another process holds the block's lock, then dies without saving it: this run waits.
    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print(flush=True); time.sleep(1.5)")
    lock_path = files.BlockLock(folder, "a1_a2").path
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock_path)], stdout=subprocess.PIPE)
    holder.stdout.readline()
    start = time.perf_counter()
    np.testing.assert_array_equal(gram(MODEL, demo, cache_dir=tmp_path, **KW), reference)
    assert time.perf_counter() - start > 0.5  # it waited for the lock ...
    assert saves == ["a1_a2"]  # ... and, the holder having died without it, computed the block
    holder.wait()


# ----------------------------------------------------------------------------- destinations
def test_destination_checks_name_the_users_path(demo, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    (tmp_path / "folder.npy").mkdir()
    cases = [
        (dict(output="/proc/K.npy"), "'/proc/K.npy' cannot be written"),
        (dict(output=tmp_path / "file" / "K.npy"), "is a file, not a folder"),
        (dict(output=tmp_path / "folder.npy"), "is a folder; give a file name"),
        (dict(cache_dir=tmp_path / "file"), "cache_dir .* is a file"),
        (dict(cache_dir="/proc/cache"), "'/proc/cache' cannot be written"),
    ]
    monkeypatch.setattr(graph_ntk.engine.jobs, "_open_cache", lambda *a: pytest.fail("work started"))
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            gram(MODEL, demo, **KW, **kwargs)
        message = str(info.value)
        assert str(next(iter(kwargs.values()))) in message and ".tmp" not in message and "\n" not in message

    class Full:
        free = 1000

    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: Full)
    with pytest.raises(ValueError, match=r"output .*K\.npy' and cache_dir .* need about .* disk space"):
        gram(MODEL, demo, output=tmp_path / "K.npy", cache_dir=tmp_path / "c", **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.npy"]


def test_missing_output_folders_are_created(demo, reference, tmp_path):
    out = tmp_path / "new" / "deeper" / "K.npy"
    np.testing.assert_array_equal(gram(MODEL, demo, output=out, **KW), reference)
    np.testing.assert_array_equal(np.load(out), reference)


# ----------------------------------------------------------------------------- overflow
def test_overflow_is_a_clear_error(tmp_path):
    leaves = 3000
    arcs = np.array([np.r_[np.zeros(leaves, int), np.arange(1, leaves + 1)],
                     np.r_[np.arange(1, leaves + 1), np.zeros(leaves, int)]])
    star = Graph(leaves + 1, arcs, node_labels=np.zeros(leaves + 1, int))
    with pytest.raises(ValueError, match=r"not finite .* float32.*dtype='float64', mean aggregation.*fewer blocks"):
        gram(GNTK(num_blocks=10), [star, star], dtype="float32", output=tmp_path / "K.npy",
             cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "K.npy").exists() and not list((tmp_path / "c").glob("*/*.npz"))  # nothing kept
    with pytest.raises(ValueError) as info:
        memory.check_finite(np.array([np.nan]), "the ntk Gram matrix", "float64", "mean")
    assert "dtype=" not in str(info.value) and "mean aggregation" not in str(info.value)


# ----------------------------------------------------------------------------- memory
def _fake_system(root: Path, meminfo_kb: int, v2: dict | None = None, v1: dict | None = None) -> None:
    (root / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {meminfo_kb} kB\n")
    (root / "self_cgroup").write_text("0::/job\n5:memory:/job\n")
    for files_, folder in ((v2, root / "cg" / "job"), (v1, root / "cg" / "memory" / "job")):
        folder.mkdir(parents=True)
        for name, text in (files_ or {}).items():
            (folder / name).write_text(text)


@pytest.fixture
def fake_system(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_MEMINFO", tmp_path / "meminfo")
    monkeypatch.setattr(memory, "_SELF_CGROUP", tmp_path / "self_cgroup")
    monkeypatch.setattr(memory, "_CGROUP_ROOT", tmp_path / "cg")
    return tmp_path


def test_available_memory_includes_container_limits(fake_system):
    gib = 1 << 30
    _fake_system(fake_system, 8 * gib // 1024, v2={"memory.max": f"{2 * gib}", "memory.current": f"{gib + gib // 2}",
                                                    "memory.stat": f"anon 1\ninactive_file {gib // 2}\n"})
    assert memory.available_memory() == gib  # 2 GiB limit - (1.5 GiB used - 0.5 GiB reclaimable)
    assert memory.default_memory_limit() == int(0.75 * gib)


def test_available_memory_cgroup_v1_and_unlimited(fake_system):
    gib = 1 << 30
    _fake_system(fake_system, 8 * gib // 1024, v2={"memory.max": "max"},
                 v1={"memory.limit_in_bytes": f"{3 * gib}", "memory.usage_in_bytes": f"{gib}"})
    assert memory.available_memory() == 2 * gib
    (fake_system / "cg" / "memory" / "job" / "memory.limit_in_bytes").write_text("9223372036854771712")
    assert memory.available_memory() == 8 * gib  # no container limit: MemAvailable


def test_memory_limit_above_the_machine_is_refused(demo):
    have = memory.available_memory()
    with pytest.raises(ValueError, match=r"memory_limit=\d+ bytes .* more than this machine has available"):
        gram(MODEL, demo, memory_limit=4 * have, **KW)
    assert 0 < memory.default_memory_limit() <= have


def test_impossible_plan_is_refused_before_any_work(monkeypatch):
    import graph_ntk.engine.node_path as node_path

    monkeypatch.setattr(node_path._NodeEngine, "__init__", lambda *a, **k: pytest.fail("work started"))
    ring = np.array([np.arange(100), (np.arange(100) + 1) % 100])
    big = Graph(100, np.c_[ring, ring[::-1]], node_labels=np.zeros(100, int))
    needed64 = 16 * 8 * 100 * 100  # _ARRAYS_PER_BLOCK arrays of 100 x 100 nodes
    with pytest.raises(MemoryError) as info:
        gram(MODEL, [big, big], method="nodes", memory_limit=needed64 * 3 // 4, progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith("one node-path block (1x1 graphs of up to 100 nodes")
    assert f"memory_limit={needed64 * 3 // 4} bytes" in message
    assert "dtype='float32'" in message and "method='colour'" in message
    assert re.search(r"more than about \d+ nodes", message)
    with pytest.raises(MemoryError, match="one line"):
        memory.check_fits(2, 1, "x", "one line")


# ----------------------------------------------------------------------- lock take-over
_HOLD = ("import os, signal, sys, time, pathlib\n"
         "from graph_ntk.engine.files import BlockLock\n"
         "lock = BlockLock(pathlib.Path(sys.argv[1]), 'a0_a0')\n"
         "assert lock.acquire(wait=False)\n"
         "print('held', flush=True)\n"
         "if sys.argv[2] == 'stop':\n"
         "    os.kill(os.getpid(), signal.SIGSTOP)\n"
         "time.sleep(60)\n")


@pytest.mark.parametrize("mode", ["stop", "sleep"])
def test_lock_wait_names_its_holder_and_never_hangs(tmp_path, mode):
    """A waiter says whose lock it waits on, and takes the block over from a stopped holder
    at once, or from a live one after the timeout, instead of waiting forever."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path), mode], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        time.sleep(0.3)  # let a stopping holder stop
        start = time.monotonic()
        with pytest.warns(files.LockWaitWarning, match=f"pid {holder.pid}"):
            taken = files.BlockLock(tmp_path, "a0_a0").acquire(wait=True, timeout=3.0)
        waited = time.monotonic() - start
        assert taken is False  # not held: the caller computes the block itself
        assert waited < 2.0 if mode == "stop" else 2.9 < waited < 20
    finally:
        holder.kill()
        holder.wait()
    assert files.BlockLock(tmp_path, "a0_a0").acquire(wait=True, timeout=3.0) is True  # freed with its process
