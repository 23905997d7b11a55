"""How many model contexts and threads the broker runs when the settings leave it open.

The rule (documented in docs/benchmarks.md and docs/configuration.md):

* usable cores = CPUs this process may run on (its affinity mask), capped by a cgroup
  CPU quota when a container runtime set one;
* CPU: threads per context = half the cores, at least 1 and at most 4 (whisper.cpp's own
  default cap: more threads per context scale poorly), contexts = cores // threads, so that
  contexts x threads never exceeds the cores (an OpenMP team that loses a core spins);
* GPU: 4 contexts (measured on an H200: 4 contexts doubled throughput at 4-16 clients
  over one), each with the cores // 4 threads for the CPU-side work, at least 1, at most 4.
"""

from __future__ import annotations

import math
import os
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


def pool_layout(cores: int, *, workers: int = 0, threads: int = 0, gpu: bool = False) -> tuple[int, int]:
    """``(workers, threads)`` with every 0 replaced by the rule above."""
    if gpu:
        workers = workers or GPU_WORKERS
        threads = threads or min(MAX_THREADS, max(1, cores // workers))
        return workers, threads
    if not threads:
        threads = min(MAX_THREADS, max(1, cores // 2)) if not workers else min(MAX_THREADS, max(1, cores // workers))
    workers = workers or max(1, cores // threads)
    return workers, threads
