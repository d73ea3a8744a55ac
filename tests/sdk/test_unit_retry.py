"""Backoff and Retry-After parsing (no server needed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from workstream_client import RetryPolicy
from workstream_client.retry import parse_retry_after


def test_defaults():
    p = RetryPolicy()
    assert (p.max_retries, p.base_delay, p.max_delay) == (3, 0.2, 10.0)
    assert p.retry_statuses == frozenset({429, 502, 503, 504})


def test_backoff_ceiling_doubles_then_caps():
    p = RetryPolicy()
    assert [p.backoff_ceiling(n) for n in range(8)] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0])
    assert p.backoff_ceiling(10_000) == 10.0  # no overflow


def test_full_jitter_stays_within_zero_and_the_ceiling_and_spreads():
    p = RetryPolicy(rng=random.Random(1234))
    for attempt in range(8):
        samples = [p.backoff(attempt) for _ in range(300)]
        ceiling = p.backoff_ceiling(attempt)
        assert all(0.0 <= s <= ceiling for s in samples)
        # full jitter: spread over the whole range, not clustered at the ceiling
        assert min(samples) < 0.1 * ceiling and max(samples) > 0.9 * ceiling


def test_jitter_is_reproducible_with_a_seeded_rng():
    a = RetryPolicy(rng=random.Random(7))
    b = RetryPolicy(rng=random.Random(7))
    assert [a.backoff(n) for n in range(5)] == [b.backoff(n) for n in range(5)]


def test_zero_base_delay_never_waits():
    p = RetryPolicy(base_delay=0)
    assert p.backoff(5) == 0


@pytest.mark.parametrize("bad", [{"max_retries": -1}, {"base_delay": -0.1}, {"max_delay": -1}])
def test_invalid_policy(bad):
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0", 0.0),
        (" 12 ", 12.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_http_date():
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0


def test_retry_after_is_honoured_up_to_the_limit():
    p = RetryPolicy(max_retry_after=5, rng=random.Random(0))
    assert p.delay_for_response(0, 2.0) == 2.0
    assert p.delay_for_response(3, 0.0) == 0.0
    assert p.delay_for_response(0, 6.0) is None  # longer than we will wait: give up, raise
    assert 0 <= p.delay_for_response(2, None) <= p.backoff_ceiling(2)


def test_which_statuses_are_retried():
    p = RetryPolicy()
    assert [s for s in (400, 401, 403, 404, 409, 412, 422, 429, 500, 502, 503, 504) if p.should_retry_status(s)] == [
        429,
        502,
        503,
        504,
    ]
