"""The one way Workstream writes a time: RFC 3339 in UTC with a `Z` ("2026-04-30T10:00:00.123456Z").

The API, event envelopes and payloads, audit data, webhook attempt logs and the bus's
dead-letter headers all write times through `isoformat_z`, so a consumer parses one format.
DRF's own `DateTimeField` output (`REST_FRAMEWORK["DATETIME_FORMAT"]`, ISO 8601 in the
current time zone, UTC here) gives the same strings; tests/config/test_timefmt.py holds
the two to each other. The audit chain hashes its `created_at` in its own canonical form
(`audit.models.AuditRecord.content`), which is not an output and does not change.
"""

from __future__ import annotations

from datetime import UTC, datetime


def isoformat_z(value: datetime | None) -> str | None:
    """`value` in UTC as RFC 3339 with `Z`; fractional seconds as `isoformat` gives them
    (none when the microseconds are 0). None stays None. A naive value is taken as UTC
    (with USE_TZ every stored time is aware; a naive one can only mean UTC here)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


def now_z() -> str:
    """The current time, as `isoformat_z` writes it."""
    return isoformat_z(datetime.now(UTC))
