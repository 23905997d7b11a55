"""A running whisper.cpp server (its ``/inference`` endpoint) as the engine."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from stt_broker.engines.base import (
    Segment,
    SegmentCallback,
    TranscribeOptions,
    Transcript,
    merge_word_pieces,
)
from stt_broker.languages import language_code
from voicestack_common.audio import Pcm
from voicestack_common.encode import encode_audio
from voicestack_common.errors import UpstreamError
from voicestack_common.upstream import RemoteServer


class RemoteWhisperCppEngine:
    """Forwards 16 kHz WAV to whisper.cpp's server and reads its ``verbose_json`` answer."""

    backend = "whisper.cpp-server"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        model_id: str = "remote",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._server = RemoteServer(
            "whisper.cpp server", url, timeout=timeout, connect_timeout=connect_timeout, transport=transport
        )
        self.url = self._server.url
        self.model = model_id
        self.multilingual = True

    def load(self) -> None:
        """Open a pooled client; the server itself is checked by ``/readyz``."""
        self._server.open()

    def probe(self) -> bool:
        """Whether the server answers at all."""
        return self._server.probe("/")

    def transcribe(
        self,
        audio: Pcm,
        options: TranscribeOptions,
        *,
        on_segment: SegmentCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        """One multipart request; segments are reported when the answer arrives."""
        fields = {
            "response_format": "verbose_json",
            "temperature": f"{options.temperature:g}",
            "language": options.language or "auto",
            "no_timestamps": "false",
        }
        if options.prompt:
            fields["prompt"] = options.prompt
        wav = encode_audio(audio, "wav")
        response = self._server.request(
            "POST", "/inference", data=fields, files={"file": ("audio.wav", wav, "audio/wav")}
        )
        if response.status_code >= 400:
            raise UpstreamError(
                f"whisper.cpp server answered {response.status_code}: {response.text[:200]}", code="upstream_error"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError("whisper.cpp server sent a non-JSON answer", code="upstream_bad_response") from exc
        if not isinstance(body, dict) or "error" in body:
            # The server reports request errors as {"error": "..."} with status 200.
            message = body.get("error") if isinstance(body, dict) else body
            raise UpstreamError(f"whisper.cpp server error: {message}", code="upstream_error")
        segments = tuple(_segment(i, raw, options.word_timestamps) for i, raw in enumerate(body.get("segments") or ()))
        if on_segment is not None:
            for segment in segments:
                on_segment(segment)
        text = str(body.get("text", "")).strip()
        language = language_code(str(body.get("language") or options.language or "en"))
        return Transcript(text=text, language=language, duration=audio.duration, segments=segments)

    def close(self) -> None:
        """Close the connection pool."""
        self._server.close()


def _segment(index: int, raw: dict[str, Any], with_words: bool) -> Segment:
    pieces = [
        (str(t.get("word", "")), float(t.get("start", 0.0)), float(t.get("end", 0.0)), float(t.get("probability", 0.0)))
        for t in raw.get("words") or ()
        if not str(t.get("word", "")).startswith("[_")  # [_BEG_], [_TT_...] specials
    ]
    return Segment(
        id=int(raw.get("id", index)),
        start=float(raw.get("start", 0.0)),
        end=float(raw.get("end", 0.0)),
        text=str(raw.get("text", "")).strip(),
        tokens=tuple(int(t) for t in raw.get("tokens") or ()),
        avg_logprob=float(raw.get("avg_logprob", 0.0)),
        no_speech_prob=float(raw.get("no_speech_prob", 0.0)),
        temperature=float(raw.get("temperature", 0.0)),
        words=merge_word_pieces(pieces) if with_words else (),
    )
