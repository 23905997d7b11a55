"""Shared libraries in an image: one copy plus links, and every dependency resolvable.

    python native_libs.py dedupe DIR...    # identical lib*.so* copies -> symlinks to one file
    python native_libs.py check DIR...     # fail if ldd finds a dependency it cannot resolve

A wheel cannot hold symlinks, so pywhispercpp's CUDA wheel carries every shared library
three times (``libggml-cuda.so``, ``.so.0``, ``.so.0.9.x``): about 200 MB of CUDA kernels
where one copy is enough. ``check`` runs in the runtime image so a library the image lacks
(``libnccl.so.2`` was one) fails the build, not the first start on a GPU host. The host's
driver library (``libcuda.so.1``) is mounted at run time by the NVIDIA container toolkit,
so it may be missing while building.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

# Provided by the host driver at run time, absent while building.
HOST_PROVIDED = ("libcuda.so.1", "libnvidia-ml.so.1")
_SHARED = re.compile(r"^lib.+\.so(\.\d+)*$")


def dedupe(root: Path) -> int:
    """Replace byte-identical ``lib*.so*`` files in each folder by links to the longest-named one."""
    saved = 0
    for folder in sorted({p.parent for p in root.rglob("lib*.so*")}):
        groups: dict[tuple[str, str], list[Path]] = {}
        for path in folder.iterdir():
            if path.is_symlink() or not path.is_file() or not _SHARED.match(path.name):
                continue
            stem = path.name.split(".so", 1)[0]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            groups.setdefault((stem, digest), []).append(path)
        for paths in groups.values():
            keep = max(paths, key=lambda p: (len(p.name), p.name))
            for path in paths:
                if path != keep:
                    saved += path.stat().st_size
                    path.unlink()
                    os.symlink(keep.name, path)
    return saved


def missing(ldd_output: str) -> list[str]:
    """Libraries ``ldd`` printed as ``not found``, less those the host driver provides."""
    found = re.findall(r"^\s*(\S+) => not found", ldd_output, flags=re.MULTILINE)
    return [name for name in found if name not in HOST_PROVIDED]


def check(root: Path) -> dict[str, list[str]]:
    """``{library: [unresolvable dependencies]}`` for every shared library under ``root``."""
    problems: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.so*")):
        if path.is_symlink() or not path.is_file() or not re.search(r"\.so(\.\d+)*$", path.name):
            continue
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        if gone := missing(result.stdout):
            problems[str(path)] = gone
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("dedupe", "check"))
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dedupe":
        saved = sum(dedupe(d) for d in args.dirs)
        print(f"replaced duplicate shared libraries by links: {saved / 1e6:.1f} MB saved")
        return 0
    problems: dict[str, list[str]] = {}
    for d in args.dirs:
        problems |= check(d)
    for library, deps in problems.items():
        print(f"{library}: cannot resolve {', '.join(deps)}", file=sys.stderr)
    if problems:
        print("install the packages that provide these libraries in the runtime image", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
