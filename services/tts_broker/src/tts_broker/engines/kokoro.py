"""Kokoro-82M in process: kokoro-onnx's espeak-ng phonemizer and ONNX Runtime."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tts_broker.engines.base import SpeechRequest, VoiceBlend
from tts_broker.languages import LANGUAGES, MISSING_FRONT_ENDS
from voicestack_common.audio import Pcm, Samples
from voicestack_common.errors import InvalidRequest
from voicestack_common.text import split_text

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
# The model's context: one style row per phoneme count, 510 phonemes at most.
MAX_PHONEMES = 510
# Kokoro pads its audio with near-silence; trimmed at this level below the
# loudest 10 ms frame, the joins between pieces sound like the text's pauses.
_TRIM_DB = 45.0
_TRIM_FRAME = 240
_TRIM_MARGIN = 480  # keep 20 ms either side so no consonant is clipped
# The first run of a session is slower (ONNX Runtime sets up its kernels): paid at load on this.
WARM_UP_TEXT = "Hello, how are you?"

Style = npt.NDArray[np.float32]
_INT_TYPES: dict[str, type[np.integer[Any]]] = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}


def _libc_trim() -> Any:
    """glibc's ``malloc_trim``, or ``None`` on another C library."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_trim()


def trim_silence(audio: Samples) -> Samples:
    """``audio`` without its leading and trailing silence."""
    usable = len(audio) // _TRIM_FRAME * _TRIM_FRAME
    if usable == 0:
        return audio
    loudness = np.sqrt((audio[:usable].reshape(-1, _TRIM_FRAME).astype(np.float64) ** 2).mean(axis=1))
    loud = np.flatnonzero(loudness > loudness.max() * 10 ** (-_TRIM_DB / 20))
    if len(loud) == 0:
        return audio
    start = max(0, int(loud[0]) * _TRIM_FRAME - _TRIM_MARGIN)
    end = min(len(audio), (int(loud[-1]) + 1) * _TRIM_FRAME + _TRIM_MARGIN)
    return audio[start:end]


def phoneme_batches(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """Phonemes cut at spaces into runs the model's context holds (text pieces rarely need it)."""
    if len(phonemes) <= limit:
        return [phonemes] if phonemes.strip() else []
    batches: list[str] = []
    for word in phonemes.split():
        while len(word) > limit:
            batches.append(word[:limit])
            word = word[limit:]
        if batches and len(batches[-1]) + 1 + len(word) <= limit:
            batches[-1] = f"{batches[-1]} {word}"
        elif word:
            batches.append(word)
    return batches


def execution_providers(use_gpu: bool) -> list[str]:
    """CUDA first when asked for and available, else the CPU."""
    import onnxruntime as rt

    if use_gpu:
        if "CUDAExecutionProvider" in rt.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        logger.warning(
            "TTS_USE_GPU is set, but this onnxruntime has no CUDA execution provider "
            "(install onnxruntime-gpu); running on the CPU"
        )
    return ["CPUExecutionProvider"]


class KokoroEngine:
    """One ONNX Runtime session and the voice style vectors; one instance per worker thread."""

    backend = "kokoro-onnx"
    sample_rate = SAMPLE_RATE
    static_voices = True

    def __init__(
        self,
        model_path: Path,
        voices_path: Path,
        *,
        model_id: str,
        threads: int = 2,
        use_gpu: bool = False,
        cpu_memory_arena: bool = True,
        memory_patterns: bool = False,
        spinning: bool = True,
    ) -> None:
        self.model_path = model_path
        self.voices_path = voices_path
        self.model = model_id
        self.threads = threads
        self.use_gpu = use_gpu
        self.cpu_memory_arena = cpu_memory_arena
        self.memory_patterns = memory_patterns
        self.spinning = spinning
        self.provider = "none"
        self._session: Any = None
        self._tokenizer: Any = None
        self._voices: dict[str, Style] = {}
        self._inputs: dict[str, Any] = {}
        self.unavailable_languages: dict[str, str] = {}
        self.warm_up_seconds: float | None = None
        """How long the synthesis at load took (``None`` until it ran)."""

    def load(self) -> None:
        """Open the ONNX session with this worker's thread budget; read every voice."""
        import onnxruntime as rt
        from kokoro_onnx import Kokoro

        # kokoro-onnx gives its logger a handler of its own; ours formats every record.
        logging.getLogger("kokoro_onnx").handlers.clear()
        # phonemizer warns of a "words count mismatch" on most sentences: espeak-ng merges
        # words ("a while"), which changes nothing for Kokoro.
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        options = rt.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # The arena keeps the tensors' memory from run to run (without it, every run page-faults
        # fresh pages: twice the time for a long piece). The memory patterns, one planned block per
        # input shape, are what grows: Kokoro's input length changes with every text piece.
        # See TtsSettings.cpu_memory_arena and .cpu_memory_patterns.
        options.enable_cpu_mem_arena = self.cpu_memory_arena
        options.enable_mem_pattern = self.cpu_memory_arena and self.memory_patterns
        # Idle intra-op threads spin between operators (TtsSettings.cpu_spinning).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        self._session = rt.InferenceSession(
            str(self.model_path), sess_options=options, providers=execution_providers(self.use_gpu)
        )
        self.provider = self._session.get_providers()[0]
        # kokoro-onnx picks the vocabulary (the model's own, else its default) and sets up espeak-ng.
        self._tokenizer = Kokoro.from_session(self._session, str(self.voices_path)).tokenizer
        with np.load(self.voices_path) as archive:
            self._voices = {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}
        self._inputs = {i.name: i.type for i in self._session.get_inputs()}
        self.unavailable_languages = self._check_languages()
        self._warm_up()

    def _warm_up(self) -> None:
        """Synthesize a short piece, so that ONNX Runtime's first-run cost is paid here, not by a request."""
        speakable = [lang for lang in LANGUAGES.values() if lang.code not in self.unavailable_languages]
        if not speakable or not self._voices:
            return
        started = time.perf_counter()
        style = self._voices[min(self._voices)]
        self._synthesize(WARM_UP_TEXT, style, 1.0, speakable[0].espeak)
        self.warm_up_seconds = time.perf_counter() - started
        logger.info("kokoro warmed up", extra={"model": self.model, "seconds": round(self.warm_up_seconds, 2)})

    def _check_languages(self) -> dict[str, str]:
        """Each language whose text front end fails here, and why (a sample sentence per language)."""
        missing = dict(MISSING_FRONT_ENDS)
        for lang in LANGUAGES.values():
            if lang.code in missing:
                continue
            try:
                tokens = self._tokenizer.tokenize(self._tokenizer.phonemize(lang.sample, lang.espeak))
            except Exception as exc:  # espeak-ng without the language, or without its data
                missing[lang.code] = f"espeak-ng cannot phonemize {lang.name} here ({exc})"
                continue
            if len(tokens) < len(lang.sample) // 4:
                missing[lang.code] = f"espeak-ng gives no usable phonemes for {lang.name} here"
        if missing:
            logger.info("languages this machine cannot speak", extra={"languages": sorted(missing)})
        return missing

    def list_voices(self) -> tuple[str, ...]:
        """Every voice in the voices file."""
        return tuple(sorted(self._voices))

    def style(self, voice: VoiceBlend) -> Style:
        """The style vectors of a voice, or the weighted sum of a blend's."""
        missing = [name for name in voice.names if name not in self._voices]
        if missing:
            raise InvalidRequest(f"unknown voice {missing[0]!r}", code="unknown_voice")
        mixed = np.zeros_like(self._voices[voice.names[0]])
        for name, weight in voice.components:
            mixed += self._voices[name] * np.float32(weight)
        return mixed

    def stream(self, request: SpeechRequest, cancel: threading.Event) -> Iterator[Pcm]:
        """Synthesize piece by piece (sentences, clauses), each followed by its pause."""
        if self._session is None:
            raise RuntimeError("engine not loaded")
        style = self.style(request.voice)
        if request.lang_code in self.unavailable_languages:  # the broker refuses these before here
            raise InvalidRequest(self.unavailable_languages[request.lang_code], code="unsupported_language")
        language = LANGUAGES[request.lang_code].espeak
        for piece in split_text(request.text):
            if cancel.is_set():
                return
            audio = self._synthesize(piece.text, style, request.speed, language)
            if audio is None:
                continue
            if piece.pause_after:
                audio = np.concatenate([audio, np.zeros(int(piece.pause_after * SAMPLE_RATE), np.float32)])
            yield Pcm(audio, SAMPLE_RATE)

    def _synthesize(self, text: str, style: Style, speed: float, language: str) -> Samples | None:
        phonemes = self._tokenizer.phonemize(text, language)
        logger.debug("phonemes", extra={"phonemes": phonemes})
        parts: list[Samples] = []
        for batch in phoneme_batches(phonemes):
            tokens = self._tokenizer.tokenize(batch)
            if tokens:
                parts.append(trim_silence(self._infer(tokens, style, speed)))
        return np.concatenate(parts) if parts else None

    def _infer(self, tokens: list[int], style: Style, speed: float) -> Samples:
        # Exports differ: "tokens" or "input_ids", and a float or (v1.1-zh) an integer speed.
        name = "input_ids" if "input_ids" in self._inputs else "tokens"
        speed_type = _INT_TYPES.get(self._inputs.get("speed", ""))
        feeds = {
            name: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style[min(len(tokens), len(style)) - 1].reshape(1, -1),
            "speed": np.array([max(1, round(speed))], dtype=speed_type)
            if speed_type
            else np.array([speed], dtype=np.float32),
        }
        audio = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32).ravel()
        if not self.cpu_memory_arena and _MALLOC_TRIM is not None:
            # Without the arena, the run's tensors were freed to glibc, which keeps the pages in its
            # heaps (fragmented by every new input length); hand them back so the process's size
            # follows what it holds.
            _MALLOC_TRIM(0)
        return audio

    def close(self) -> None:
        """Drop the session."""
        self._session = None
