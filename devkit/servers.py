"""Real HTTP servers for tests: an app under uvicorn on a free loopback port, or a service as its own process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(
    app: FastAPI, *, ready_path: str | None = "/readyz", timeout: float = 120.0, port: int | None = None
) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its base URL once ``ready_path`` answers 200.

    ``ready_path=None`` waits only for the socket to listen; ``port`` picks the port (default: a free one).
    """
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if ready_path is None and server.started:
                break
            with contextlib.suppress(httpx.TransportError):
                if ready_path is not None and httpx.get(base_url + ready_path, timeout=2).status_code == 200:
                    break
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {port} did not become ready")
            time.sleep(0.05)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class ServiceProcess:
    """A service's ``python -m <package>.cli serve`` as its own process, configured by environment
    variables (``<PREFIX>_<NAME>``); ``kill`` (SIGKILL), ``stop`` (SIGTERM) and ``start`` again keep the port."""

    def __init__(self, package: str, prefix: str, workdir: Path, **settings: str) -> None:
        self.package = package
        self.prefix = prefix
        self.workdir = workdir
        self.env = {**os.environ, **{f"{prefix}_{name.upper()}": value for name, value in settings.items()}}
        self.proc: subprocess.Popen[bytes] | None = None
        self._move_to(free_port())
        self._served = False  # once it has served, restarts keep the port

    def _move_to(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env[f"{self.prefix}_PORT"] = str(port)
        self.log = self.workdir / f"{self.package}-{port}.log"

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.proc is not None, f"{self.package} was never started"
        assert self.proc.poll() is None, f"{self.package} is not running"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, ready: bool = True, timeout: float = 180.0) -> None:
        """Start it; return once ``/readyz`` (or, with ``ready=False``, ``/healthz``) answers 200.

        A free port can be taken by another process between ``free_port`` and the bind: a first start
        that finds its port in use moves to another (at most twice)."""
        for attempt in range(3):
            self.launch()
            try:
                self.wait_ready(ready=ready, timeout=timeout)
            except AssertionError:
                taken = "address already in use" in self.log.read_text(errors="replace")
                if self._served or not taken or attempt == 2:
                    raise
                self._move_to(free_port())
                continue
            return

    def launch(self) -> None:
        """Start the process without waiting for it (``wait_ready`` waits): several start at once."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            # The work directory as cwd: a developer's .env in the repository must not leak in.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"{self.package}.cli", "serve"],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, *, ready: bool = True, timeout: float = 180.0) -> None:
        """Return once ``/readyz`` (or, with ``ready=False``, ``/healthz``) answers 200."""
        assert self.proc is not None, f"{self.package} was never started"
        path = "/readyz" if ready else "/healthz"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.package} exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    self._served = True
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.package}'s {path} did not answer 200 in {timeout} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no goodbye to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> bool:
        """SIGTERM; True when it exited cleanly (uvicorn re-raises the signal once it has shut down)."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30) in (0, -signal.SIGTERM)


STACK_SERVICES = ("gateway", "stt", "tts", "bridge", "conversation", "mqtt")


def stack_env(home: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a ``voicestack up`` on ``ports`` (one per ``STACK_SERVICES`` name), its files in
    ``home`` and its models from the test cache; callers add what their stack needs on top."""
    from devkit.speech import TEST_CACHE

    return {
        **os.environ,
        "GATEWAY_PORT": str(ports["gateway"]),
        "STT_PORT": str(ports["stt"]),
        "TTS_PORT": str(ports["tts"]),
        "MQTT_BRIDGE_PORT": str(ports["bridge"]),
        "CONVERSATION_PORT": str(ports["conversation"]),
        "CONVERSATION_DATABASE_URL": f"sqlite:///{home / 'conversations.sqlite3'}",
        "MQTT_BRIDGE_MQTT_URL": f"mqtt://127.0.0.1:{ports['mqtt']}",
        "MQTT_BRIDGE_OUTBOX_PATH": str(home / "outbox.sqlite3"),
        "STT_CACHE_DIR": str(TEST_CACHE / "models"),
        "TTS_CACHE_DIR": str(TEST_CACHE / "models"),
        "COLUMNS": "200",
    }
