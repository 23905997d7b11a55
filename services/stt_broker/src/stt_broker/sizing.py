"""How many model contexts and threads the broker runs when the settings leave it open.

The rule (documented in docs/benchmarks.md and docs/configuration.md):

* usable cores = CPUs this process may run on (its affinity mask), capped by a cgroup CPU quota
  when a container runtime set one;
* CPU, elastic threads (whisper.cpp with ``STT_THREADS`` unset, the default): one context per
  core, and each decode takes its threads when it starts (``elastic_threads``): all the cores
  for a lone request, at most 4 (whisper.cpp's own default cap: more scale poorly), an even
  share when others are running, never more than they leave free, at least 1. A running decode
  keeps its threads, so one arriving during a lone decode on 2 cores gets 1 (3 threads on 2 cores
  until the first ends; waiting instead would serialize two clients into one 2-thread decode at a
  time, which docs/benchmarks.md measured slower under load); the decodes after it share evenly;
* CPU, fixed threads: threads per context = half the cores, at least 1 and at most 4,
  contexts = cores // threads, so that contexts x threads never exceeds the cores (an OpenMP
  team that loses a core spins);
* GPU: 4 contexts (measured on an H200: 4 contexts doubled throughput at 4-16 clients
  over one), each with the cores // 4 threads for the CPU-side work, at least 1, at most 4.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

GPU_WORKERS = 4
MAX_THREADS = 4


def usable_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 ``cpu.max`` quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def pool_layout(
    cores: int, *, workers: int = 0, threads: int = 0, gpu: bool = False, elastic: bool = False
) -> tuple[int, int]:
    """``(workers, threads)`` with every 0 replaced by the rule above; elastic: threads is a decode's most."""
    if gpu:
        workers = workers or GPU_WORKERS
        threads = threads or min(MAX_THREADS, max(1, cores // workers))
        return workers, threads
    if elastic and not threads:
        return workers or cores, min(MAX_THREADS, cores)
    if not threads:
        threads = min(MAX_THREADS, max(1, cores // 2)) if not workers else min(MAX_THREADS, max(1, cores // workers))
    workers = workers or max(1, cores // threads)
    return workers, threads


def elastic_threads(cores: int, running: int, in_use: int) -> int:
    """Threads for a decode starting while ``running`` others hold ``in_use`` threads."""
    fair_share = cores // (running + 1)
    return max(1, min(MAX_THREADS, fair_share, cores - in_use))


class ThreadBudget:
    """The usable cores, shared by the decodes running now (of every model): each takes its threads as it starts."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self.running = 0
        self.in_use = 0
        self.observe: Callable[[int], None] | None = None
        """Called with each decode's thread count (the broker's metric)."""
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def share(self) -> Iterator[int]:
        """The threads for a decode starting now, held until the block ends."""
        with self._lock:
            threads = elastic_threads(self.cores, self.running, self.in_use)
            self.running += 1
            self.in_use += threads
        if self.observe is not None:
            self.observe(threads)
        try:
            yield threads
        finally:
            with self._lock:
                self.running -= 1
                self.in_use -= threads
