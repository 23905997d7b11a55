"""``voicestack up``: every service as a local process, supervised.

Children run in their own sessions (a terminal's Ctrl-C reaches only the
supervisor, which then stops them in reverse order) and die with the
supervisor even if it is killed outright (``PR_SET_PDEATHSIG``). Their
output is streamed line by line with a service prefix. A child that exits
on its own stops the whole stack with a non-zero exit that names it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.text import Text

# How long each service may take to answer /readyz on a first start (model preparation included).
READY_TIMEOUT_S = 300.0
# How long a service gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The stack could not start or a service died."""


@dataclass
class Service:
    """One process of the stack."""

    name: str
    argv: list[str]
    ready_url: str | None
    """Polled until 200; ``None``: ``probe`` says when it is ready."""
    port: int
    color: str
    env: dict[str, str] = field(default_factory=dict)
    probe: Callable[[], bool] | None = None
    """Readiness of a service that has no HTTP endpoint (the MQTT broker)."""
    process: subprocess.Popen[bytes] | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the supervisor dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``module`` with this interpreter (the same virtual environment)."""
    return [sys.executable, "-m", module, *args]


class Stack:
    """Starts services in order, waits for each, streams logs, stops them all."""

    def __init__(self, services: list[Service], console: Console | None = None) -> None:
        self.services = services
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._stopping = threading.Event()
        self._died: list[Service] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every service in order; each must be ready before the next starts."""
        for service in self.services:
            self._spawn(service)
            self._wait_ready(service)
            self.console.print(Text.assemble((f"{service.name:>12} ", service.color), "ready"), soft_wrap=True)

    def watch(self, poll: float = 0.2) -> int:
        """Block until Ctrl-C (exit 0) or until a service dies (exit 1)."""
        try:
            while not self._stopping.is_set():
                for service in self.services:
                    if service.process is not None and service.process.poll() is not None:
                        self._report_death(service)
                        return 1
                time.sleep(poll)
        except KeyboardInterrupt:
            self.console.print("stopping…")
        return 0

    def stop(self) -> None:
        """SIGTERM in reverse start order, SIGKILL after the grace period."""
        self._stopping.set()
        running = [s for s in reversed(self.services) if s.process and s.process.poll() is None]
        for service in running:
            assert service.process is not None
            started = time.monotonic()
            service.process.terminate()
            try:
                service.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.console.print(f"{service.name} did not stop within {STOP_GRACE_S:g} s: killed", style="bold red")
                service.process.kill()
                service.process.wait(5)
            took = time.monotonic() - started
            if took > 2:  # a slow stop is worth a line: it is what Ctrl-C waits for
                self.console.print(f"{service.name} took {took:.1f} s to stop", style="yellow")

    def _spawn(self, service: Service) -> None:
        env = {**os.environ, **service.env, "PYTHONUNBUFFERED": "1"}
        service.process = subprocess.Popen(
            service.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._pump, args=(service,), name=f"log-{service.name}", daemon=True).start()

    def _pump(self, service: Service) -> None:
        assert service.process is not None
        assert service.process.stdout is not None
        for raw in service.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            service.tail.append(line)
            with self._lock:
                # One line per record whatever the width (a pipe or a log file has none to wrap at).
                self.console.print(Text.assemble((f"{service.name:>12} | ", service.color), line), soft_wrap=True)

    def _wait_ready(self, service: Service) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert service.process is not None
            if service.process.poll() is not None:
                self._report_death(service)
                raise StackError(f"{service.name} exited with code {service.process.returncode} while starting")
            if _is_ready(service):
                return
            time.sleep(0.2)
        raise StackError(f"{service.name} was not ready after {READY_TIMEOUT_S:g} s")

    def _report_death(self, service: Service) -> None:
        assert service.process is not None
        time.sleep(0.2)  # let the log pump print the last lines
        self._died.append(service)
        reason = next((line for line in reversed(service.tail) if line.strip()), "no output")
        self.console.print(
            Text.assemble((f"{service.name} exited with code {service.process.returncode}", "bold red"), f": {reason}"),
            soft_wrap=True,
        )


def _is_ready(service: Service) -> bool:
    if service.ready_url is None:
        return service.probe() if service.probe is not None else False
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(service.ready_url, timeout=2).status_code == 200
    return False


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (e.g. from a process manager) stops the stack like Ctrl-C does."""
    raise KeyboardInterrupt


def run(services: list[Service], banner: Callable[[], None], console: Console | None = None) -> int:
    """Start, print the banner, supervise until Ctrl-C or a death; always stop everything."""
    stack = Stack(services, console)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start()
        banner()
        return stack.watch()
    except StackError as exc:
        stack.console.print(f"[bold red]error:[/bold red] {exc}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
