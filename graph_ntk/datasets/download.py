"""Fetch TU Dortmund datasets into a local cache (the only part of graph_ntk that uses the network)."""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

__all__ = ["TU_URL", "default_cache_dir", "download_tu"]

#: Where the TU Dortmund benchmark zips live; ``{name}`` is the dataset name.
TU_URL = "https://www.chrsmrrdr.de/graphkerneldatasets/{name}.zip"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_TIMEOUT_S = 60


def default_cache_dir() -> Path:
    """``~/.cache/graph_ntk/tu``, the default download folder."""
    return Path.home() / ".cache" / "graph_ntk" / "tu"


def _is_complete(folder: Path, name: str) -> bool:
    # The files load_tu cannot do without.
    return all(
        (folder / f"{name}_{part}.txt").is_file() or (folder / f"{name}_{part}.txt.xz").is_file()
        for part in ("A", "graph_indicator", "graph_labels")
    )


def download_tu(name: str, root: str | Path | None = None, *, url: str | None = None) -> Path:
    """Download and unpack TU dataset ``name`` unless it is already in the cache.

    The zip is streamed to a temporary file and unpacked into a temporary folder inside
    ``root``, which is then renamed to ``root/name``: an interrupted download never
    leaves a half-written dataset behind that a later call would take as cached.

    Args:
        name: TU dataset name, e.g. ``"MUTAG"`` or ``"IMDB-BINARY"``.
        root: cache folder; default ``~/.cache/graph_ntk/tu``.
        url: where to fetch the zip from; default ``TU_URL`` with ``name`` filled in
            (any ``urllib`` URL works, e.g. ``file://`` for a local mirror).

    Returns:
        The dataset folder ``root/name``; load it with ``load_tu(path.parent, name)``.

    Raises:
        ConnectionError: the download failed (offline, server down); one line saying
            how to install the dataset by hand instead.
        FileNotFoundError: the server has no dataset of that name (HTTP 404).
        ValueError: an invalid name, or a zip without the expected files.

    Example:
        >>> path = download_tu("MUTAG")  # doctest: +SKIP
        >>> ds = load_tu(path.parent, "MUTAG")  # doctest: +SKIP
    """
    if not _NAME.fullmatch(name or ""):
        raise ValueError(f"invalid TU dataset name {name!r}")
    root = Path(root).expanduser() if root is not None else default_cache_dir()
    target = root / name
    if _is_complete(target, name):
        return target  # cached: no network at all

    url = url or TU_URL.format(name=name)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        tmp = Path(tmp)
        archive = tmp / f"{name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FileNotFoundError(f"no TU dataset {name!r} at {url} (HTTP 404); check the spelling") from None
            raise ConnectionError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(
                f"cannot download {url} ({reason}); are you offline? "
                f"Unzip {name}.zip by hand so that {target}/{name}_A.txt exists"
            ) from None
        try:
            with zipfile.ZipFile(archive) as zf:
                # zipfile strips absolute paths and '..' itself; we only unpack under tmp.
                zf.extractall(tmp / "unpacked")
        except zipfile.BadZipFile:
            raise ValueError(f"{url} is not a valid zip file") from None
        # TU zips hold NAME/NAME_A.txt ...; accept files at the top level too.
        unpacked = tmp / "unpacked" / name
        if not _is_complete(unpacked, name):
            unpacked = tmp / "unpacked"
        if not _is_complete(unpacked, name):
            raise ValueError(f"{url} does not contain {name}_A.txt, {name}_graph_indicator.txt and {name}_graph_labels.txt")
        if target.exists():
            shutil.rmtree(target)  # an incomplete leftover (the complete case returned above)
        unpacked.rename(target)
    return target
