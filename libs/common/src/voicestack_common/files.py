"""Model files on disk: the cache directory, a cross-process lock, atomic downloads.

Several workers or processes may start at once and all find a model missing;
whoever takes the lock prepares it, the others wait and reuse it. Files only
ever appear under their final name complete (written aside, then renamed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

Progress = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None) while a download runs."""


class DownloadError(RuntimeError):
    """A file could not be downloaded (no connection, or the server refused)."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/voicestack``, else ``~/.cache/voicestack``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voicestack"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_write(target: Path) -> Iterator[BinaryIO]:
    """Write ``target`` whole or not at all: into a file beside it, fsynced, renamed over it on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; model files are meant to be shared
        os.replace(tmp_name, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # persist the rename itself
        finally:
            os.close(dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def prepare_once(target: Path, build: Callable[[Path], object]) -> Path:
    """``target`` if it exists, else ``build(target)`` under a lock, so processes starting together build it once."""
    if target.is_file():
        return target
    with file_lock(target.with_suffix(".lock")):
        if not target.is_file():  # another process may have finished while we waited
            build(target)
    return target


def download_file(
    url: str,
    target: Path,
    *,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` into ``target`` atomically; an existing ``target`` is kept as is."""
    if target.is_file():
        return target
    try:
        with (
            httpx.Client(
                transport=transport, follow_redirects=True, timeout=httpx.Timeout(timeout, connect=10.0)
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise DownloadError(f"downloading {url} failed: HTTP {response.status_code}")
            total = int(response.headers.get("content-length", 0)) or None
            done = 0
            with atomic_write(target) as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except httpx.TransportError as exc:
        raise DownloadError(
            f"cannot download {url}: no connection to the host ({exc}); this machine seems to have no internet access"
        ) from exc
    return target
