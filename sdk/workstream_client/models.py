"""Typed views of the API's representations. Each keeps the JSON it came from in ``raw``
(and answers ``obj["field"]`` / ``obj.get("field")`` from it), so fields the server adds
later are never lost."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

__all__ = ["Page", "Queue", "WorkItem", "parse_datetime"]

T = TypeVar("T")


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or an offset) as an aware datetime; None stays None.
    A value that is not a parseable string raises ``ValueError``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


class _RawAccess:
    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The JSON representation as received (a copy)."""
        return dict(self.raw)


def _build(cls: type[T], data: dict[str, Any], datetimes: frozenset[str]) -> T:
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "raw" or f.name not in data:
            continue
        value = data[f.name]
        if f.name in datetimes:
            # An unparseable value stays as the server sent it rather than fail the whole call.
            with contextlib.suppress(ValueError):
                value = parse_datetime(value)
        kwargs[f.name] = value
    return cls(raw=dict(data), **kwargs)


@dataclass(eq=False)
class WorkItem(_RawAccess):
    """A work item as the API represents it (docs/api.md, "Item representation")."""

    id: int
    state: str | None = None
    version: int | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    task_name: str | None = None
    title: str | None = None
    description: str | None = None
    queue: str | None = None
    priority: int | None = None
    due_at: datetime | None = None
    context_data: dict[str, Any] | None = None
    candidate_users: list[str] | None = None
    candidate_groups: list[str] | None = None
    excluded_users: list[str] | None = None
    required_skills: list[Any] | None = None
    sod_key: str | None = None
    sod_scope: str | None = None
    case: str | None = None
    department: str | None = None
    optional: bool | None = None
    assignee: str | None = None
    strategy: str | None = None
    callback_url: str | None = None
    correlation_id: str | None = None
    sub_status: str | None = None
    escalation_level: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None
    outcome: str | None = None
    allowed_actions: list[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _DATETIMES = frozenset({"due_at", "created_at", "updated_at", "assigned_at", "started_at", "completed_at"})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkItem:
        return _build(cls, data, cls._DATETIMES)

    @property
    def etag(self) -> str | None:
        """The ``If-Match`` value that pins this version (``"<version>"``)."""
        return None if self.version is None else f'"{self.version}"'

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkItem):
            return NotImplemented
        return self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class Queue(_RawAccess):
    """A queue (docs/api.md, "Queue fields")."""

    name: str
    description: str | None = None
    strategy: str | None = None
    candidate_groups: list[str] | None = None
    capacity_per_user: int | None = None
    sla: str | None = None
    escalation_queue: str | None = None
    lifecycle: str | None = None
    active: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Queue:
        return _build(cls, data, frozenset())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queue):
            return NotImplemented
        return self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]


@dataclass
class Page(Generic[T]):
    """One page of a cursor-paginated list: ``results`` plus the ``next``/``previous`` URLs
    (pass ``page.next`` back as ``page_url=`` to fetch the following page)."""

    results: list[T]
    next: str | None = None
    previous: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __iter__(self) -> Iterator[T]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def has_next(self) -> bool:
        return bool(self.next)

    @classmethod
    def from_response(cls, data: Any, parse: Callable[[Any], T]) -> Page[T]:
        """A page from a paginated body; a bare JSON list (an unpaginated endpoint) is one
        page with no ``next``."""
        if isinstance(data, list):
            return cls(results=[parse(x) for x in data], raw={"results": data, "next": None, "previous": None})
        if not isinstance(data, dict) or "results" not in data:
            raise TypeError("expected a paginated body {results, next, previous} or a list")
        return cls(
            results=[parse(x) for x in data.get("results") or []],
            next=data.get("next") or None,
            previous=data.get("previous") or None,
            raw=data,
        )
