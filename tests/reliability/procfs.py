"""What a service process holds, read from /proc: resident memory, open file descriptors, threads."""

from __future__ import annotations

import os
import re
from pathlib import Path


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def open_fds(pid: int) -> int:
    """File descriptors a process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    """Threads of a process (each may hold a glibc malloc arena: a reading for RSS that moved)."""
    match = re.search(r"^Threads:\s+(\d+)$", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert match is not None
    return int(match.group(1))
