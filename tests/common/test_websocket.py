"""The shared WebSocket edge: the refusal comes as a message then the close, slots and gauges balance."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from voicestack_common.errors import CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN, ClientError, PayloadTooLarge
from voicestack_common.websocket import ANONYMOUS, serve_websocket


class Full(ClientError):
    close_code = CLOSE_TRY_AGAIN


class Slots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, caller: str) -> None:
        if self.held >= self.limit:
            raise Full(f"{caller} holds {self.held}", code="too_many")
        self.held += 1

    def give_back(self, caller: str) -> None:
        self.held -= 1


class Count:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount


def _authenticate(websocket: WebSocket) -> str:
    key = websocket.query_params.get("key")
    if key is None:
        raise ClientError("a key is required", code="unauthorized")
    return key


def _app(slots: Slots, count: Count, seen: list[str]) -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        async def face(caller: str) -> None:
            seen.append(caller)
            text = await websocket.receive_text()
            if len(text) > 4:
                raise PayloadTooLarge("too long", code="frame_too_large")
            await websocket.send_text(f"{caller}:{text}")
            await websocket.close()

        await serve_websocket(
            websocket,
            face,
            describe=lambda error: json.dumps({"type": "error", "code": error.code}),
            authenticate=_authenticate,
            limit=slots,
            connections=count,
            subprotocol="echo" if "echo" in websocket.scope.get("subprotocols", []) else None,
        )

    @app.websocket("/open")
    async def anonymous(websocket: WebSocket) -> None:
        async def face(caller: str) -> None:
            await websocket.send_text(caller)
            await websocket.close()

        await serve_websocket(websocket, face, describe=lambda error: error.code)

    return app


def _refused(ws: WebSocketTestSession) -> tuple[str, int]:
    message = ws.receive_text()
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    return json.loads(message)["code"], closed.value.code


def test_the_edge_serves_refuses_and_balances() -> None:
    slots, count, seen = Slots(limit=1), Count(), list[str]()
    with TestClient(_app(slots, count, seen)) as client:
        with client.websocket_connect("/ws?key=k", subprotocols=["echo"]) as ws:
            assert ws.accepted_subprotocol == "echo"
            assert count.value == 1
            # a second socket of the same caller is over the limit: the reason first, then 1013
            with client.websocket_connect("/ws?key=k") as second:
                assert _refused(second) == ("too_many", CLOSE_TRY_AGAIN)
            ws.send_text("hi")
            assert ws.receive_text() == "k:hi"
        assert (slots.held, count.value) == (0, 0)

        with client.websocket_connect("/ws") as ws:
            assert _refused(ws) == ("unauthorized", CLOSE_POLICY)
        with client.websocket_connect("/ws?key=k") as ws:
            ws.send_text("far too long")
            assert _refused(ws) == ("frame_too_large", CLOSE_TOO_BIG)
        assert (slots.held, count.value, seen) == (0, 0, ["k", "k"])

        with client.websocket_connect("/open") as ws:
            assert ws.receive_text() == ANONYMOUS
