"""The result cache: least recently used out first, bounded by count and by bytes."""

from __future__ import annotations

from tts_broker.cache import CachedAudio, CacheKey, ResultCache


def key(text: str) -> CacheKey:
    return (text, "jf_alpha", "a", 1.0, "mp3", "kokoro-82m-int8")


def test_least_recently_used_goes_first() -> None:
    cache = ResultCache(max_entries=2, max_bytes=1000)
    cache.put(key("a"), CachedAudio(b"1", 1.0))
    cache.put(key("b"), CachedAudio(b"2", 1.0))
    assert cache.get(key("a")) is not None  # now b is the oldest
    cache.put(key("c"), CachedAudio(b"3", 1.0))
    assert cache.get(key("b")) is None
    assert cache.get(key("a"))
    assert cache.get(key("c"))
    assert len(cache) == 2


def test_bytes_are_bounded_too() -> None:
    cache = ResultCache(max_entries=10, max_bytes=10)
    cache.put(key("a"), CachedAudio(b"x" * 6, 1.0))
    cache.put(key("b"), CachedAudio(b"y" * 6, 1.0))
    assert cache.get(key("a")) is None
    assert cache.size_bytes == 6
    cache.put(key("huge"), CachedAudio(b"z" * 11, 1.0))  # never fits: not cached, nothing evicted
    assert cache.get(key("huge")) is None
    assert cache.get(key("b")) is not None


def test_replacing_an_entry_keeps_the_byte_count_right() -> None:
    cache = ResultCache(max_entries=10, max_bytes=100)
    cache.put(key("a"), CachedAudio(b"x" * 50, 1.0))
    cache.put(key("a"), CachedAudio(b"x" * 20, 1.0))
    assert cache.size_bytes == 20
    assert len(cache) == 1


def test_zero_entries_turns_it_off() -> None:
    cache = ResultCache(max_entries=0, max_bytes=100)
    cache.put(key("a"), CachedAudio(b"x", 1.0))
    assert not cache.enabled
    assert cache.get(key("a")) is None
