"""Calling a remote engine server: transport failures become the domain's upstream errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from voicestack_common.errors import UpstreamError, UpstreamTimeout


@contextlib.contextmanager
def upstream_errors(what: str) -> Iterator[None]:
    """Inside the block, a timeout is ``UpstreamTimeout`` and a dead connection ``upstream_unavailable``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{what} timed out") from exc
    except httpx.TransportError as exc:
        raise UpstreamError(f"{what} is unreachable: {exc}", code="upstream_unavailable") from exc
