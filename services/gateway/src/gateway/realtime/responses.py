"""One Realtime response: the voice loop's reply as ``response.*`` events, cancellable at any point.

Its output is a message (added at its first words) and then the function calls the model made, each
an item of its own once the message is done (a call ends the reply: the client runs it and sends its
output for the next response).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable
from typing import TYPE_CHECKING, Any

from gateway.realtime import codecs
from gateway.realtime.items import Item, item_view
from gateway.realtime.protocol import RealtimeError, ResponseOptions, error_event, new_id
from gateway.realtime.replier import (
    OPTION_PARAMS,
    ReplyAudio,
    ReplyEvent,
    ReplyRequest,
    ReplyStream,
    ReplyText,
    ReplyToolCall,
    Turn,
)
from gateway.realtime.tools import response_tools, send_call
from voicestack_common.contracts.conversation import ToolOutput
from voicestack_common.errors import VoicestackError

if TYPE_CHECKING:
    from gateway.realtime.session import RealtimeSession

logger = logging.getLogger(__name__)

# Largest audio delta sent at once (bytes before base64): about 0.5 s of 24 kHz PCM16, as OpenAI sends.
AUDIO_DELTA_BYTES = 24_000
# Seconds a response waits for the transcripts of committed audio.
TRANSCRIPT_WAIT = 30.0


def _tokens(text: str) -> int:
    """A rough token count (about 4 characters each), for ``usage``; no tokenizer runs here."""
    return (len(text) + 3) // 4


class ResponseRun:
    """A response in flight; ``cancel`` ends it with ``status: cancelled``."""

    def __init__(
        self,
        session: RealtimeSession,
        options: ResponseOptions | None,
        waits: list[Awaitable[Any]],
        event_id: str | None = None,
    ) -> None:
        self.session = session
        self.event_id = event_id
        """The ``response.create`` that asked for it (``None``: server VAD's)."""
        self.options = options or ResponseOptions()
        config = session.config
        self.id = new_id("resp")
        self.item_id = new_id("item")
        self.modalities = self.options.modalities or config.modalities
        self.audio = "audio" in self.modalities
        self.format: codecs.RealtimeFormat = self.options.output_audio_format or config.output_audio_format
        self.voice = self.options.voice or config.voice
        self.in_conversation = self.options.conversation != "none"
        self.item = Item.assistant(self.item_id, self.format if self.audio else None)
        self.status = "in_progress"
        self.reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.stream: ReplyStream | None = None
        self._events: AsyncGenerator[ReplyEvent, None] | None = None
        self.added = False
        """Whether the message item is out (``response.output_item.added``)."""
        self.closed = False
        """Whether its ``response.output_item.done`` is."""
        self.calls: list[Item] = []
        self._outputs: list[Item] = []
        self.text = ""
        self.input_text = ""
        self._waits = waits
        self.task = asyncio.create_task(self._run())

    async def cancel(self, reason: str) -> None:
        """Stop now (a no-op once done)."""
        if self.task.done() or self.reason is not None:
            return
        self.reason = reason
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def view(self) -> dict[str, Any]:
        """The ``response`` object."""
        details: dict[str, Any] | None = None
        if self.status == "cancelled":
            details = {"type": "cancelled", "reason": self.reason}
        elif self.status == "failed":
            details = {"type": "failed", "error": self.error}
        output = [item_view(self.item)] if self.added else []
        output += [item_view(call) for call in self.calls]
        usage = None
        if self.status != "in_progress":
            audio_tokens = codecs.duration_ms(self.item.audio_bytes, self.format) // 50 if self.audio else 0
            text_in = _tokens(self.input_text)
            text_out = _tokens(self.text + "".join(call.arguments for call in self.calls))
            usage = {
                "total_tokens": text_in + text_out + audio_tokens,
                "input_tokens": text_in,
                "output_tokens": text_out + audio_tokens,
                "input_token_details": {"text_tokens": text_in, "audio_tokens": 0, "cached_tokens": 0},
                "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_tokens},
            }
        return {
            "id": self.id,
            "object": "realtime.response",
            "status": self.status,
            "status_details": details,
            "output": output,
            "conversation_id": self.session.config.conversation_id if self.in_conversation else None,
            "modalities": self.modalities,
            "voice": self.voice,
            "output_audio_format": self.format,
            "usage": usage,
            "metadata": self.options.metadata,
        }

    def _where(self) -> dict[str, Any]:
        return {"response_id": self.id, "item_id": self.item_id, "output_index": 0, "content_index": 0}

    async def _run(self) -> None:
        send = self.session.send
        try:
            await send({"type": "response.created", "response": self.view()})
            await self.session.rate_limits()
            if self._waits:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*self._waits), TRANSCRIPT_WAIT)
            request = self._request()
            calls = await self._stream(request)
            self.voice = self.stream.spoken_voice() or self.voice if self.stream is not None else self.voice
            if not self.added and not calls:
                await self._add_item()  # a reply without words still has its message
            self.status = "completed"
            if self.added:
                self.item.status = "completed"
                await self._finish_parts()
                await self._item_done()
            for call in calls:
                item = Item.function_call(new_id("item"), call.call_id, call.name)
                index = int(self.added) + len(self.calls)
                self.calls.append(item)
                await send_call(
                    self.session, item, call.arguments, self.id, index, in_conversation=self.in_conversation
                )
        except asyncio.CancelledError:
            self.status = "cancelled"
            self.item.status = "incomplete"
            if self._events is not None:
                with contextlib.suppress(Exception):
                    await self._events.aclose()  # the voice loop stops at once; what was heard is told later
            if self.stream is not None:
                self.session.conversation.interrupted[self.item_id] = self.stream
        except VoicestackError as exc:
            self.status = "failed"
            self.item.status = "incomplete"
            refused = exc.status_code < 500  # e.g. the conversation service's 422 for an output it waits for not
            kind = "invalid_request_error" if refused else "server_error"
            self.error = {"type": kind, "code": exc.code, "message": exc.message}
            if refused:
                await send(error_event(RealtimeError(exc.message, code=exc.code), self.event_id))
        except Exception:
            logger.exception("realtime response failed")
            self.status = "failed"
            self.item.status = "incomplete"
            self.error = {"type": "server_error", "code": "internal_error", "message": "internal server error"}
        if self.added and not self.closed:
            await self._item_done()
        for index, unfinished in enumerate(self.calls, start=int(self.added)):
            if unfinished.status == "in_progress":
                unfinished.status = "incomplete"
                await send(
                    {
                        "type": "response.output_item.done",
                        "response_id": self.id,
                        "output_index": index,
                        "item": item_view(unfinished),
                    }
                )
        await send({"type": "response.done", "response": self.view()})

    async def _item_done(self) -> None:
        self.closed = True
        await self.session.send(
            {
                "type": "response.output_item.done",
                "response_id": self.id,
                "output_index": 0,
                "item": item_view(self.item),
            }
        )

    def _request(self) -> ReplyRequest:
        config, options = self.session.config, self.options
        items = self.session.conversation.items.values()
        history: list[Turn] = []
        for item in items:
            if item.kind == "function_call":
                history.append(Turn("assistant", "", item.id))  # the user's words before it were answered
            elif item.words:
                history.append(Turn(item.role, item.words, item.id, item.language))
        self._outputs = [item for item in items if item.kind == "function_call_output" and not item.delivered]
        for extra in options.input or []:
            added = Item.from_input(extra)
            if added.kind == "function_call_output":
                self._outputs.append(added)
            elif added.words:
                history.append(Turn(added.role, added.words))
        outputs = [ToolOutput(call_id=item.call_id or "", output=item.output) for item in self._outputs]
        self.input_text = " ".join([*(turn.text for turn in history), *(out.output for out in outputs)])
        tools, tool_choice = response_tools(options, config.tools, config.tool_choice)
        session = {OPTION_PARAMS[name]: value for name, value in config.responder_options().items()}
        limit = options.max_response_output_tokens or session.get("max_response_output_tokens")
        return ReplyRequest(
            history=history,
            item_id=self.item_id,
            instructions=options.instructions or session.get("instructions"),
            voice=self.voice,
            speed=config.speed,
            audio=self.audio,
            max_tokens=None if limit in (None, "inf") else int(limit),
            temperature=options.temperature if options.temperature is not None else session.get("temperature"),
            language=_spoken_language(history),
            voice_fixed=self._voice_fixed(),
            tools=tools,
            tool_choice=tool_choice,
            tool_outputs=outputs,
        )

    def _voice_fixed(self) -> bool:
        """Whether the client chose the voice (for the session or this response)."""
        return self.options.voice is not None or "voice" in self.session.config.client_set

    async def _add_item(self) -> None:
        send = self.session.send
        previous = next(reversed(self.session.conversation.items), None)
        if self.in_conversation:
            self.session.conversation.items[self.item_id] = self.item
        self.added = True
        view = item_view(self.item, "in_progress")
        view["content"] = []
        await send({"type": "response.output_item.added", "response_id": self.id, "output_index": 0, "item": view})
        if self.in_conversation:
            await send({"type": "conversation.item.created", "previous_item_id": previous, "item": view})
        part = {"type": "audio", "transcript": ""} if self.audio else {"type": "text", "text": ""}
        await send({"type": "response.content_part.added", **self._where(), "part": part})

    async def _stream(self, request: ReplyRequest) -> list[ReplyToolCall]:
        """Stream the message (added at its first words); the calls the model made, for after it."""
        replier = self.session.replier
        if replier is None:
            raise VoicestackError(
                "responses need the conversation service: set GATEWAY_CONVERSATION_URLS", code="conversations_disabled"
            )
        self.stream = await replier.open(request)
        for output in self._outputs:
            output.delivered = True  # once: one the service refused it would refuse again
        for turn in request.history:
            if turn.item_id is not None and turn.role == "user":
                self.session.conversation.stored[turn.item_id] = self.stream
        if self.in_conversation:
            self.session.conversation.stored[self.item_id] = self.stream
        if self.audio:
            self.session.conversation.spoken[self.item_id] = self.stream
        encoder = codecs.OutputEncoder(self.format) if self.audio else None
        send = self.session.send
        self._events = self.stream.events()
        calls: list[ReplyToolCall] = []
        async for chunk in self._events:
            if isinstance(chunk, ReplyToolCall):
                calls.append(chunk)
                continue
            if not self.added:
                await self._add_item()
            if isinstance(chunk, ReplyText):
                self.text += chunk.text
                kind = "response.audio_transcript.delta" if self.audio else "response.text.delta"
                await send({"type": kind, **self._where(), "delta": chunk.text})
            elif isinstance(chunk, ReplyAudio) and encoder is not None:
                if encoder.source_rate != chunk.sample_rate:
                    encoder = codecs.OutputEncoder(self.format, chunk.sample_rate)
                data = encoder.encode(chunk.pcm16)
                await self._audio(data, chunk.text)
        if encoder is not None and self.added:
            await self._audio(encoder.flush(), "")
        return calls

    async def _audio(self, data: bytes, text: str) -> None:
        if data:
            self.item.add_audio(text, len(data))
        for start in range(0, len(data), AUDIO_DELTA_BYTES):
            piece = data[start : start + AUDIO_DELTA_BYTES]
            await self.session.send(
                {"type": "response.audio.delta", **self._where(), "delta": base64.b64encode(piece).decode()}
            )

    async def _finish_parts(self) -> None:
        send = self.session.send
        if self.audio:
            self.item.transcript = self.text
            await send({"type": "response.audio.done", **self._where()})
            await send({"type": "response.audio_transcript.done", **self._where(), "transcript": self.text})
            part: dict[str, Any] = {"type": "audio", "transcript": self.text}
        else:
            self.item.text = self.text
            await send({"type": "response.text.done", **self._where(), "text": self.text})
            part = {"type": "text", "text": self.text}
        await send({"type": "response.content_part.done", **self._where(), "part": part})


def _spoken_language(history: list[Turn]) -> str | None:
    """The language of the user's latest spoken words."""
    return next((turn.language for turn in reversed(history) if turn.role == "user" and turn.language), None)
