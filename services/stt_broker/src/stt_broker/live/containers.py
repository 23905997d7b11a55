"""Incremental demuxers for the containers browsers stream: WebM (Matroska) and Ogg, Opus inside.

``MediaRecorder`` hands out a WebM or Ogg file in slices; each slice is parsed
as it arrives (only an incomplete element or page is kept), and each Opus
packet goes to PyAV's decoder. Nothing is ever re-read, so a session costs
the same per second at hour two as at second two. Demuxers report the input
byte offset of every packet and how many leading bytes are the header, so a
relay can replay ``header + input[offset:]`` to continue on another server.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from voicestack_common.audio import AudioError, UnsupportedAudio

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
OGG_MAGIC = b"OggS"
# Elements we step into; every other element is skipped by its size.
_SEGMENT, _CLUSTER, _TRACKS, _TRACK_ENTRY, _AUDIO, _BLOCK_GROUP = (
    0x18538067,
    0x1F43B675,
    0x1654AE6B,
    0xAE,
    0xE1,
    0xA0,
)
_MASTERS = {_SEGMENT, _CLUSTER, _TRACKS, _TRACK_ENTRY, _AUDIO, _BLOCK_GROUP}
_EBML, _CODEC_ID, _CODEC_PRIVATE, _TRACK_NUMBER, _SIMPLE_BLOCK, _BLOCK = 0x1A45DFA3, 0x86, 0x63A2, 0xD7, 0xA3, 0xA1
# What may appear at the top (segment and cluster level): anything else there is not WebM.
_TOP_LEVEL = {
    _EBML,
    _SEGMENT,
    _CLUSTER,
    _TRACKS,
    _BLOCK_GROUP,
    _SIMPLE_BLOCK,
    0x114D9B74,  # SeekHead
    0x1549A966,  # Info
    0x1C53BB6B,  # Cues
    0x1254C367,  # Tags
    0x1043A770,  # Chapters
    0x1941A469,  # Attachments
    0xEC,  # Void
    0xBF,  # CRC-32
    0xE7,  # Timecode
    0xA7,  # Position
    0xAB,  # PrevSize
    0x5854,  # SilentTracks
}
_UNKNOWN = -1
MAX_ELEMENT_BYTES = 4 * 1024 * 1024


class BrokenStream(AudioError):
    """The container's bytes are not what it claims."""

    default_code = "invalid_audio"


@dataclass(frozen=True, slots=True)
class Packet:
    """One compressed packet and the input byte offset of the unit that holds it."""

    data: bytes
    offset: int


def _vint(buf: bytes | bytearray, pos: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """(value, length) of an EBML variable-length integer at ``pos``; ``None`` when incomplete."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    if first == 0:
        raise BrokenStream("the WebM stream holds an invalid element header")
    length = 9 - first.bit_length()
    if pos + length > len(buf):
        return None
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    all_ones = value == (1 << (7 * length)) - 1 and not keep_marker
    for byte in buf[pos + 1 : pos + length]:
        value = (value << 8) | byte
        all_ones = all_ones and byte == 0xFF
    return (_UNKNOWN if all_ones else value), length


class WebmDemuxer:
    """Opus packets out of a WebM byte stream, slice by slice."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # input offset of _buf[0]
        self._skip = 0  # bytes of a skipped element still to come
        self._ends: list[int] = []  # end offsets of the known-size masters we are in
        self._audio_track: int | None = None
        self._track_number = 1
        self.codec: str | None = None
        self.extradata: bytes | None = None
        self.header_bytes: int | None = None
        self._seen = 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete element held back."""
        return len(self._buf) + self._skip

    def feed(self, data: bytes) -> Iterator[Packet]:
        """Parse ``data``; yield the audio packets it completes."""
        if self._seen == 0 and data and not EBML_MAGIC.startswith(bytes(data[:4])[: len(EBML_MAGIC)]):
            raise UnsupportedAudio("the stream is not WebM: it does not start with an EBML header")
        self._seen += len(data)
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            self._base += taken
            data = data[taken:]
        self._buf += data
        pos = 0
        try:
            while True:
                start = self._base + pos
                while self._ends and start >= self._ends[-1]:
                    self._ends.pop()
                head = _vint(self._buf, pos, keep_marker=True)
                if head is None:
                    break
                element, id_len = head
                size_info = _vint(self._buf, pos + id_len, keep_marker=False)
                if size_info is None:
                    break
                size, size_len = size_info
                if not self._ends and element not in _TOP_LEVEL:
                    raise BrokenStream("the WebM stream holds bytes that are not a WebM element")
                body = pos + id_len + size_len
                if element in _MASTERS:
                    if element == _CLUSTER and self.header_bytes is None:
                        self.header_bytes = start
                    if size != _UNKNOWN and element not in (_SEGMENT, _CLUSTER):
                        self._ends.append(self._base + body + size)
                    pos = body
                    continue
                if size == _UNKNOWN:
                    raise BrokenStream("a WebM element of unknown size that cannot have one")
                if element not in (_SIMPLE_BLOCK, _BLOCK, _CODEC_ID, _CODEC_PRIVATE, _TRACK_NUMBER):
                    if body + size > len(self._buf):
                        self._skip = body + size - len(self._buf)
                        pos = len(self._buf)
                        break
                    pos = body + size
                    continue
                if size > MAX_ELEMENT_BYTES:
                    raise BrokenStream(f"a WebM element of {size} bytes is over the limit")
                if body + size > len(self._buf):
                    break
                payload = bytes(self._buf[body : body + size])
                pos = body + size
                packet = self._element(element, payload, start)
                if packet is not None:
                    yield packet
        finally:
            del self._buf[:pos]
            self._base += pos

    def _element(self, element: int, payload: bytes, offset: int) -> Packet | None:
        if element == _TRACK_NUMBER:
            self._track_number = int.from_bytes(payload, "big")
        elif element == _CODEC_ID:
            codec = payload.rstrip(b"\0").decode("ascii", errors="replace")
            if codec.startswith("A_") and self._audio_track is None:
                if codec != "A_OPUS":
                    raise UnsupportedAudio(f"WebM audio codec {codec} is not supported: send Opus")
                self.codec = "opus"
                self._audio_track = self._track_number
        elif element == _CODEC_PRIVATE:
            if self.codec == "opus" and self.extradata is None:
                self.extradata = payload
        elif element in (_SIMPLE_BLOCK, _BLOCK):
            number = _vint(payload, 0, keep_marker=False)
            if number is None or len(payload) < number[1] + 3:
                raise BrokenStream("a WebM block is too short")
            track, length = number
            if self.codec is None:
                raise BrokenStream("WebM audio arrived before its track header")
            if track != self._audio_track:
                return None
            flags = payload[length + 2]
            if flags & 0x06:
                raise UnsupportedAudio("laced WebM blocks are not supported")
            return Packet(payload[length + 3 :], offset)
        return None


class OggDemuxer:
    """Opus packets out of an Ogg byte stream, page by page."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0
        self._packet = bytearray()
        self._packet_offset = 0
        self._packets = 0
        self.codec: str | None = None
        self.extradata: bytes | None = None
        self.header_bytes: int | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete page or packet held back."""
        return len(self._buf) + len(self._packet)

    def feed(self, data: bytes) -> Iterator[Packet]:
        """Parse ``data``; yield the audio packets it completes."""
        if self._base == 0 and not self._buf and data and not OGG_MAGIC.startswith(bytes(data[:4])):
            raise UnsupportedAudio("the stream is not Ogg: it does not start with 'OggS'")
        self._buf += data
        pos = 0
        try:
            while len(self._buf) - pos >= 27:
                if self._buf[pos : pos + 4] != OGG_MAGIC:
                    raise BrokenStream("the Ogg stream holds bytes that are not an Ogg page")
                flags = self._buf[pos + 5]
                count = self._buf[pos + 26]
                if len(self._buf) - pos < 27 + count:
                    break
                lacing = self._buf[pos + 27 : pos + 27 + count]
                size = 27 + count + sum(lacing)
                if len(self._buf) - pos < size:
                    break
                offset = self._base + pos
                body = pos + 27 + count
                if not flags & 0x01:
                    self._packet.clear()
                for lace in lacing:
                    if not self._packet:
                        self._packet_offset = offset
                    self._packet += self._buf[body : body + lace]
                    body += lace
                    if lace < 255:
                        packet = self._complete(bytes(self._packet), self._packet_offset, offset + size)
                        self._packet.clear()
                        if packet is not None:
                            yield packet
                pos += size
        finally:
            del self._buf[:pos]
            self._base += pos

    def _complete(self, packet: bytes, offset: int, page_end: int) -> Packet | None:
        self._packets += 1
        if self._packets == 1:
            if not packet.startswith(b"OpusHead"):
                raise UnsupportedAudio("the Ogg stream does not hold Opus: send Opus")
            self.codec, self.extradata = "opus", packet
            return None
        if packet.startswith(b"OpusTags"):
            self.header_bytes = page_end
            return None
        if self.header_bytes is None:
            self.header_bytes = offset
        return Packet(packet, offset)


def opus_channels(extradata: bytes | None) -> int:
    """Channel count from an ``OpusHead``."""
    if extradata and len(extradata) >= 10 and extradata.startswith(b"OpusHead"):
        return max(1, extradata[9])
    return 1


def opus_preskip(extradata: bytes | None) -> int:
    """Samples at 48 kHz the decoder's first output must drop."""
    if extradata and len(extradata) >= 12 and extradata.startswith(b"OpusHead"):
        return int(struct.unpack("<H", extradata[10:12])[0])
    return 0
