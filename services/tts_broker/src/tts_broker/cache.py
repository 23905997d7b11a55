"""A bounded LRU cache of finished results, by count and by bytes."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

CacheKey = tuple[str, str, str, float, str, str]
"""(text, voice, lang_code, speed, format, model)."""


@dataclass(frozen=True, slots=True)
class CachedAudio:
    """Encoded audio as it was served, with what the response reports about it."""

    data: bytes
    duration: float


class ResultCache:
    """Least recently used results first out; touched only on the event loop's thread."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[CacheKey, CachedAudio] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        """Whether anything can be cached at all."""
        return self.max_entries > 0 and self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        """Bytes of audio held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: CacheKey) -> CachedAudio | None:
        """The cached result, now the most recently used; ``None`` when absent."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: CacheKey, item: CachedAudio) -> None:
        """Keep ``item``, evicting the least recently used until both bounds hold."""
        if not self.enabled or len(item.data) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= len(old.data)
        self._items[key] = item
        self._bytes += len(item.data)
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted.data)
