"""The one WebSocket edge: accept, authenticate, hold a session slot, refuse with a reason, count.

Every WebSocket route is a thin face over ``serve_websocket``: the face says how to find its
caller, which limit to hold, what its own error message looks like and which gauge counts it;
the edge does the rest in one order. Browsers cannot read a refused handshake, so a refused
socket is accepted first, sent the reason in the face's own shape, then closed with the error's
``close_code`` (``voicestack_common.errors``: 1008 for the caller's fault, 1013 to try again,
1009 for a frame over the limit). A face raises any ``VoicestackError`` to end its socket the
same way.

``Origin`` and ``Host`` are not checked here: the gateway's ``TrustedHostMiddleware``
(``gateway/middleware.py``) refuses them at the handshake, before any route runs, for every
WebSocket at once. Services reached only from inside (the STT broker) have no such check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voicestack_common.errors import VoicestackError

# The caller of a face that authenticates nobody (a service reached only from inside).
ANONYMOUS = "anonymous"

Authenticate = Callable[[WebSocket], str]
"""The caller's id for limits and logs, or a ``VoicestackError`` (an unknown key) to refuse."""
Describe = Callable[[VoicestackError], str]
"""A refusal as the face's own ``error`` message (JSON text)."""
Face = Callable[[str], Awaitable[None]]
"""Serves one accepted, authenticated socket for this caller until it is done."""


class SessionLimit(Protocol):
    """A ceiling on sessions held at once: ``take`` raises a ``VoicestackError`` at the limit."""

    def take(self, caller: str) -> None:
        """One more session for ``caller``."""

    def give_back(self, caller: str) -> None:
        """A session of ``caller`` ended."""


class Gauge(Protocol):
    """What the edge needs of a Prometheus gauge."""

    def inc(self, amount: float = 1) -> None:
        """One more."""

    def dec(self, amount: float = 1) -> None:
        """One fewer."""


async def serve_websocket(
    websocket: WebSocket,
    face: Face,
    *,
    describe: Describe,
    authenticate: Authenticate | None = None,
    limit: SessionLimit | None = None,
    connections: Gauge | None = None,
    subprotocol: str | None = None,
) -> None:
    """Accept (with ``subprotocol``), authenticate, take a ``limit`` slot and run ``face(caller)``
    counted in ``connections``; a ``VoicestackError`` on the way (or out of the face) is refused."""
    await websocket.accept(subprotocol=subprotocol)
    try:
        caller = authenticate(websocket) if authenticate is not None else ANONYMOUS
        if limit is not None:
            limit.take(caller)
    except VoicestackError as exc:
        await refuse(websocket, exc, describe)
        return
    if connections is not None:
        connections.inc()
    try:
        await face(caller)
    except VoicestackError as exc:
        await refuse(websocket, exc, describe)
    finally:
        if connections is not None:
            connections.dec()
        if limit is not None:
            limit.give_back(caller)


async def refuse(websocket: WebSocket, error: VoicestackError, describe: Describe) -> None:
    """Tell the client why in its face's shape, then close with the error's code (a client that
    left already is no error)."""
    if WebSocketState.DISCONNECTED in (websocket.client_state, websocket.application_state):
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.send_text(describe(error))
        await websocket.close(code=error.close_code, reason=error.code[:120])
