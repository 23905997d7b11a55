"""What every benchmark script shares: statistics, services as processes, the results file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devkit.servers import free_port  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    """min, p50, p99, max, mean (seconds) and the sample count."""
    return {
        "min": round(min(values), 4),
        "p50": round(statistics.median(values), 4),
        "p99": round(percentile(values, 99), 4),
        "max": round(max(values), 4),
        "mean": round(statistics.fmean(values), 4),
        "n": len(values),
    }


def timed(fn: Callable[[], object], runs: int, *, warmup: bool = True) -> list[float]:
    """Wall-clock seconds of ``runs`` calls (after one untimed call, which pays for lazy set-up)."""
    if warmup:
        fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def machine() -> str:
    """What the numbers were measured on."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


@contextmanager
def service(
    module: str, port_var: str, env: dict[str, str] | None = None, *, ready: str = "/readyz", timeout: float = 120.0
) -> Iterator[str]:
    """A service as its own process (``python -m <module>.cli serve``), the way it is deployed."""
    port = free_port()
    full_env = {**os.environ, port_var: str(port), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", f"{module}.cli", "serve"],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + ready, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def emit(results: dict[str, Any], path: Path | None) -> None:
    """Print the results as JSON, and write them to ``path`` when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if path is not None:
        path.write_text(text)
