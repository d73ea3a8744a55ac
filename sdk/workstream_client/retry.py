"""Retry policy: exponential backoff with full jitter, and ``Retry-After`` parsing."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RetryPolicy", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})

# Transport failures worth another try: nothing (or not all) reached the server, or the
# answer never came back. POSTs are safe to repeat because they carry an Idempotency-Key.
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (``"3"``, ``"1.5"``) or an
    HTTP date. ``None`` when absent or unparseable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass
class RetryPolicy:
    """When and how long to wait before another attempt.

    ``max_retries`` extra attempts (so ``max_retries + 1`` in all) on connection errors and
    timeouts, 429 and 502/503/504; no other 4xx/5xx is retried. Attempt ``n`` (0-based) waits
    a uniformly random time in ``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter"),
    unless the answer carried ``Retry-After``, which is honoured as given — up to
    ``max_retry_after`` seconds; a longer one is not waited for and the error is raised.
    """

    max_retries: int = 3
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    retry_statuses: frozenset[int] = RETRY_STATUSES
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def backoff_ceiling(self, attempt: int) -> float:
        """The upper bound of the jittered wait after failed attempt ``attempt`` (0-based)."""
        # Guard against overflow for large attempt numbers.
        exp = min(attempt, 62)
        return min(self.max_delay, self.base_delay * (2**exp))

    def backoff(self, attempt: int) -> float:
        """A full-jitter wait after failed attempt ``attempt`` (0-based)."""
        return self.rng.uniform(0.0, self.backoff_ceiling(attempt))

    def should_retry_status(self, status: int) -> bool:
        return status in self.retry_statuses

    def delay_for_response(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retrying a retryable answer, or ``None`` not to retry it
        (``Retry-After`` beyond ``max_retry_after``)."""
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after
        return self.backoff(attempt)
