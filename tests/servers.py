"""Real HTTP servers for tests: an app under uvicorn on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

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
