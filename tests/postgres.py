"""A real PostgreSQL server for tests: Debian's binaries, a throwaway cluster on a free loopback port."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devkit.servers import free_port

USER = "voicestack"
START_TIMEOUT_S = 60


def bin_dir() -> Path:
    """Where Debian's ``postgresql`` package puts initdb and pg_ctl (newest version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/bootstrap.sh (Debian package postgresql)")
    return Path(found[-1]).parent


@dataclass(frozen=True)
class Postgres:
    """A running server."""

    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (asyncpg) of ``database``."""
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str) -> None:
        """Run SQL as the superuser."""
        subprocess.run(
            [
                str(bin_dir() / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )


def _as_server_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb in a temporary folder, pg_ctl start on a free loopback port, stop and delete at the end."""
    binaries = bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="voicestack-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data = folder / "data"
    port = free_port()
    try:
        subprocess.run(
            _as_server_user(
                [str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
        subprocess.run(
            _as_server_user(
                [
                    str(binaries / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(folder / "log"),
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S + 10,
        )
        server = Postgres(port, folder)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                server.psql("SELECT 1")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        if data.exists():
            subprocess.run(
                _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)
