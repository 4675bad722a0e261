"""Input checking shared by the dataset loaders: one-line errors and a validated bulk tokenizer.

Every problem with an input file is reported as ONE line that names the file and, where
there is one, the 1-based line number, e.g.::

    DatasetFormatError: /data/MUTAG/MUTAG.txt line 57: expected 'tag num_neighbours nbr...', got 'x y'

The loaders parse whole files with numpy (``np.fromstring`` on the raw bytes) because
the large benchmarks (COLLAB: 24.6M adjacency lines) would take minutes line by line.
The fast path is only trusted after a cheap vectorised check of the line structure;
when anything does not add up, a slow pass over the offending part of the file finds
the exact line for the error message.
"""

from __future__ import annotations

import codecs
import difflib
import lzma
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "DatasetFormatError",
    "DatasetNotFoundError",
    "Lines",
    "dataset_dir",
    "missing_file",
    "read_bytes",
    "tokenize",
]

# Longest excerpt of an offending line quoted in a message (keeps errors on one line).
_QUOTE_CHARS = 60


class DatasetWarning(UserWarning):
    """A dataset file was read with a repair the message describes (e.g. one-sided edges completed)."""


class DatasetFormatError(ValueError):
    """A malformed dataset file; ``str(err)`` is one line naming the file and line.

    Attributes:
        path: the offending file.
        line: 1-based line number, or ``None`` when the problem is the file as a whole.

    Example:
        >>> str(DatasetFormatError("MUTAG.txt", 57, "expected 2 numbers, got 'x y'"))
        "MUTAG.txt line 57: expected 2 numbers, got 'x y'"
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{path} line {line}" if line is not None else f"{path}"
        # Newlines inside the message would break the one-line promise.
        super().__init__(f"{where}: {' '.join(str(message).split())}")


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A missing dataset folder or file: a ``FileNotFoundError`` that is also a ``ValueError``.

    A wrong ``root``/``name`` is a bad argument like any other, so code that catches the
    library's bad-input errors (``ValueError``) catches this one too.

    Example:
        >>> issubclass(DatasetNotFoundError, ValueError) and issubclass(DatasetNotFoundError, FileNotFoundError)
        True
    """


def missing_file(path: str | Path, what: str) -> FileNotFoundError:
    """A one-line ``FileNotFoundError`` for a required file, saying what the file holds.

    Example:
        >>> str(missing_file("d/ind.pubmed.allx", "features of all non-test nodes"))
        'd/ind.pubmed.allx: file not found (features of all non-test nodes)'
    """
    err = DatasetNotFoundError(f"{path}: file not found ({what})")
    return err


def quote(text: str | bytes) -> str:
    """``repr`` of a line excerpt, shortened so the message stays one readable line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    if len(text) > _QUOTE_CHARS:
        text = text[: _QUOTE_CHARS - 3] + "..."
    return repr(text)


def dataset_dir(root: str | Path, name: str, *, kind: str, is_dataset: Callable[[Path], bool]) -> Path:
    """Return ``root/name`` or raise a one-line error listing the datasets that are in ``root``.

    Args:
        root: folder holding one sub-folder per dataset.
        name: the dataset (sub-folder) name.
        kind: format name for messages, e.g. ``"TU"``.
        is_dataset: tells whether a sub-folder of ``root`` holds a dataset of this format.

    Example:
        >>> dataset_dir("/nonexistent", "MUTAG", kind="TU", is_dataset=lambda p: True)
        Traceback (most recent call last):
        graph_ntk.datasets._errors.DatasetNotFoundError: dataset root /nonexistent does not exist (root= should be the folder holding one sub-folder per TU dataset)
    """
    if not isinstance(root, (str, os.PathLike)) or isinstance(root, str) and not root:
        raise TypeError(f"root must be the path of the folder holding the {kind} datasets (a str or "
                        f"pathlib.Path), got {root!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be the dataset name (a str, e.g. 'MUTAG'), got {name!r}")
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"invalid dataset name {name!r}: give the name of a sub-folder of the dataset root")
    from graph_ntk.checks import as_path

    root = as_path(root, "root")
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DatasetNotFoundError(f"dataset root {root} {what} (root= should be the folder holding one "
                                   f"sub-folder per {kind} dataset)")
    folder = root / name
    if folder.is_dir():
        return folder
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and is_dataset(p))
    msg = f"no {kind} dataset {name!r} in {root}; available: {', '.join(available) if available else 'none'}"
    # Catch the common slips: TU vs GIN spelling (IMDB-BINARY vs IMDBBINARY), case, and a
    # root that is one level too high (e.g. .../datasets instead of .../datasets/tu).
    norm = {a.replace("-", "").replace("_", "").lower(): a for a in available}
    guess = norm.get(name.replace("-", "").replace("_", "").lower())
    if guess is None:
        close = difflib.get_close_matches(name, available, n=1)
        guess = close[0] if close else None
    if guess is not None:
        msg += f"; did you mean {guess!r}?"
    else:
        # Maybe it lives in a sub-folder or a sibling folder of root (tu/ vs tu_reconstructed/).
        try:
            candidates = [p for p in root.iterdir() if p.is_dir()]
            if root.parent != root:
                candidates += [p for p in root.parent.iterdir() if p.is_dir() and p != root]
            elsewhere = sorted(str(p) for p in candidates if (p / name).is_dir() and is_dataset(p / name))
        except OSError:  # an unreadable folder nearby: the hint is optional
            elsewhere = []
        if elsewhere:
            msg += f"; it exists under {elsewhere[0]}, pass that as root"
    raise DatasetNotFoundError(msg)


def read_bytes(path: Path, what: str) -> bytes:
    """Read a whole text file as bytes (``.xz`` transparently), rejecting missing or empty files.

    Example:
        >>> read_bytes(Path("/nonexistent/X_A.txt"), "edge list")
        Traceback (most recent call last):
        graph_ntk.datasets._errors.DatasetNotFoundError: /nonexistent/X_A.txt: file not found (edge list)
    """
    try:
        if path.suffix == ".xz":
            with lzma.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise missing_file(path, what) from None
    except lzma.LZMAError as exc:
        raise DatasetFormatError(path, None, f"cannot decompress ({exc})") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if not data.strip():
        raise DatasetFormatError(path, None, f"file is empty (expected {what})")
    return data


@dataclass
class Lines:
    """Numbers of a text file, tokenised per line.

    The file's lines ``0..num_lines-1`` (line ``i`` is line ``i + 1`` in messages) hold
    ``count[i]`` numbers stored at ``values[first[i] : first[i] + count[i]]``. Trailing
    blank lines are dropped; blank lines elsewhere are rejected by :func:`tokenize`.
    """

    path: Path
    data: bytes
    values: np.ndarray
    first: np.ndarray
    count: np.ndarray
    ends: np.ndarray  # byte offset of each line's terminating newline (or end of data)

    @property
    def num_lines(self) -> int:
        return int(self.count.shape[0])

    def text(self, i: int) -> str:
        """Quoted excerpt of line ``i`` (0-based) for an error message."""
        start = int(self.ends[i - 1]) + 1 if i > 0 else 0
        return quote(self.data[start : int(self.ends[i])])

    def error(self, i: int, message: str) -> DatasetFormatError:
        """Error about line ``i`` (0-based); the message shows it 1-based."""
        return DatasetFormatError(self.path, int(i) + 1, message)

    def table(self, ncols: int | None, expected: str) -> np.ndarray:
        """All lines as a ``(num_lines, ncols)`` array; every line must have ``ncols`` numbers.

        ``ncols=None`` takes the column count of the first line.
        """
        ncols = int(self.count[0]) if ncols is None else ncols
        bad = np.flatnonzero(self.count != ncols)
        if bad.size:
            i = int(bad[0])
            raise self.error(i, f"expected {expected}, got {self.text(i)}")
        return self.values.reshape(self.num_lines, ncols)


def _parse(chunk: bytes, dtype: type) -> np.ndarray | None:
    """``np.fromstring`` on whitespace-separated numbers; ``None`` on unparseable input."""
    try:
        return np.fromstring(chunk, dtype=dtype, sep=" ")
    except ValueError:
        return None


# What np.fromstring accepts, spelled out (Python's int()/float() also allow e.g. "1_000").
_INT = re.compile(rb"[+-]?[0-9]+")
_FLOAT = re.compile(rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)", re.IGNORECASE)


def _is_number(token: bytes, dtype: type) -> bool:
    pattern = _INT if np.issubdtype(dtype, np.integer) else _FLOAT
    return pattern.fullmatch(token) is not None


def tokenize(path: Path, data: bytes, *, dtype: type = np.int64, commas: bool = False) -> Lines:
    """Split ``data`` (the contents of ``path``) into numbers per line, vectorised.

    Args:
        path: the file, for messages.
        data: its bytes, e.g. from :func:`read_bytes`.
        dtype: ``np.int64`` (tokens must be integers) or ``np.float64``.
        commas: treat ``,`` as a separator too (TU files write ``u, v``).

    Raises:
        DatasetFormatError: a blank line before the last record, or a token that is not a
            number; the message names the line and quotes it.

    Example:
        >>> lines = tokenize(Path("t.txt"), b"1, 2\\n3, 4\\n", commas=True)
        >>> lines.values.tolist(), lines.count.tolist()
        ([1, 2, 3, 4], [2, 2])
    """
    raw = data
    if commas:
        data = data.replace(b",", b" ")
    if not data:
        raise DatasetFormatError(path, None, "file is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    # Bytes <= 32 (space, tab, CR, LF, other control bytes) separate tokens; a token starts
    # where a non-separator follows a separator.
    sep = buf <= 32
    start = np.empty_like(sep)
    start[0] = not sep[0]
    np.greater(sep[:-1], sep[1:], out=start[1:])
    token_pos = np.flatnonzero(start)
    del sep, start
    if token_pos.size == 0:
        raise DatasetFormatError(path, None, "file is empty (no numbers in it)")
    ends = np.flatnonzero(buf == 10)
    if ends.size == 0 or ends[-1] != buf.size - 1:
        ends = np.append(ends, buf.size)  # last line without a final newline
    # Tokens before each line end, hence tokens per line (the searchsorted is ~1 s for COLLAB).
    upto = np.searchsorted(token_pos, ends)
    count = np.diff(upto, prepend=0)
    first = upto - count
    last = int(np.flatnonzero(count)[-1]) + 1  # the last line with a token
    count, first, ends = count[:last], first[:last], ends[:last]
    blank = np.flatnonzero(count == 0)
    if blank.size:
        # In TU files line i describes node i, so a blank line silently shifts everything.
        raise DatasetFormatError(path, int(blank[0]) + 1, "blank line inside the file (only trailing blank lines are allowed)")

    values = _parse(data, dtype)
    if values is None or values.size != token_pos.size:
        _raise_first_bad_token(path, raw, data, ends, first, count, dtype)
        # Tokens that parse one by one but not in bulk: should not happen, still be explicit.
        raise DatasetFormatError(path, None, "could not parse the numbers in this file")
    if np.issubdtype(dtype, np.integer):
        _refuse_saturated(path, raw, data, values, token_pos, ends, dtype)
    return Lines(path, raw, values, first, count, ends)


def _refuse_saturated(path: Path, raw: bytes, data: bytes, values: np.ndarray, token_pos: np.ndarray,
                      ends: np.ndarray, dtype: type) -> None:
    """The parser clips integers beyond the 64-bit range to its bounds, which would merge two
    different tags (or classes): refuse such a token, naming its line."""
    info = np.iinfo(dtype)
    for k in np.flatnonzero((values == info.max) | (values == info.min)):
        pos = int(token_pos[k])
        end = pos
        while end < len(data) and data[end] > 32:
            end += 1
        token = data[pos:end]
        if int(token) != int(values[k]):
            line = int(np.searchsorted(ends, pos))
            raise DatasetFormatError(path, line + 1, f"{quote(token)} is beyond the 64-bit integer range "
                                     f"({info.min}..{info.max}); renumber these values")


def _raise_first_bad_token(
    path: Path, raw: bytes, data: bytes, ends: np.ndarray, first: np.ndarray, count: np.ndarray, dtype: type
) -> None:
    """Find the first line with a token that is not a number and raise about it.

    Bisects the file in line blocks with the fast parser, then checks the bad block's
    lines one by one, so a 360 MB file with one bad token is diagnosed in seconds.
    """
    kind = "an integer" if np.issubdtype(dtype, np.integer) else "a number"
    lo, hi = 0, int(ends.size)  # the first bad line is in [lo, hi)
    while hi - lo > 64:
        mid = (lo + hi) // 2
        a = int(ends[lo - 1]) + 1 if lo > 0 else 0
        b = int(ends[mid - 1]) + 1
        parsed = _parse(data[a:b], dtype)
        expected = int(count[lo:mid].sum())
        if parsed is None or parsed.size != expected:
            hi = mid
        else:
            lo = mid
    for i in range(lo, hi):
        a = int(ends[i - 1]) + 1 if i > 0 else 0
        for token in data[a : int(ends[i])].split():
            if not _is_number(token, dtype):
                raise DatasetFormatError(
                    path, i + 1, f"{quote(token)} is not {kind} (line is {quote(raw[a : int(ends[i])])})"
                )
