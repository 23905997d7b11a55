"""Per-caller limits: token buckets for the expensive operations (429 with ``Retry-After``), and a
ceiling on the sessions one caller holds open at once."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from voicestack_common.errors import CLOSE_TRY_AGAIN, ClientError, InvalidRequest

# Buckets kept at most; the least recently used caller is forgotten first (a full bucket again).
MAX_CALLERS = 10_000


class RateLimited(ClientError):
    """The caller used up its allowance for now."""

    status_code = 429
    default_code = "rate_limited"
    close_code = CLOSE_TRY_AGAIN

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, details={"retry_after": retry_after})
        self.retry_after = retry_after


class RateLimiter:
    """``per_minute`` requests per caller, up to ``burst`` at once; 0 per minute is no limit."""

    def __init__(
        self, operation: str, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.operation = operation
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether this limiter limits anything."""
        return self.rate > 0

    def acquire(self, caller: str, cost: int = 1) -> None:
        """Take ``cost`` tokens from the caller's bucket, or raise ``RateLimited``."""
        if not self.enabled:
            return
        if cost > self.burst:
            raise InvalidRequest(
                f"{cost} {self.operation} requests at once exceed the rate limit's burst of "
                f"{self.burst}; send at most {self.burst}",
                code="batch_exceeds_rate_limit",
            )
        now = self.clock()
        tokens, at = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < cost:
            self._remember(caller, tokens, now)
            retry_after = max(1, math.ceil((cost - tokens) / self.rate))
            raise RateLimited(f"{self.operation} rate limit reached; retry in {retry_after} s", retry_after=retry_after)
        self._remember(caller, tokens - cost, now)

    def remaining(self, caller: str) -> tuple[int, float]:
        """Requests the caller may make now, and seconds until its bucket is full again."""
        now = self.clock()
        tokens, at = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate) if self.enabled else float(self.burst)
        return int(tokens), (self.burst - tokens) / self.rate if self.enabled else 0.0

    def _remember(self, caller: str, tokens: float, now: float) -> None:
        self._buckets[caller] = (tokens, now)
        while len(self._buckets) > MAX_CALLERS:
            self._buckets.popitem(last=False)


class TooManySessions(ClientError):
    """The caller already holds as many sessions of this kind as it may."""

    status_code = 429
    default_code = "too_many_sessions"
    close_code = CLOSE_TRY_AGAIN


class SessionLimit:
    """At most ``limit`` sessions of one kind open at once per caller (an API key, or an address
    without keys). Sessions end on their own, so nothing here expires."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.held: dict[str, int] = {}

    def take(self, caller: str) -> None:
        """One more session for ``caller``; ``TooManySessions`` at the limit."""
        held = self.held.get(caller, 0)
        if held >= self.limit:
            raise TooManySessions(f"at most {self.limit} {self.what} per key at once")
        self.held[caller] = held + 1

    def give_back(self, caller: str) -> None:
        """One of ``caller``'s sessions ended."""
        left = self.held.get(caller, 0) - 1
        if left > 0:
            self.held[caller] = left
        else:
            self.held.pop(caller, None)
