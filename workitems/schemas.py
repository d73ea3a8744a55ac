"""The wire shape of inputs, shared by REST, the inbound bus and the admin: the create
body's JSON Schema, the arguments of each action, and the input helpers (time parsing,
NUL checks, dotted field paths) every entry point uses, so that the same body gets the
same answer wherever it comes in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.dateparse import parse_datetime, parse_duration
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from distribution.strategies import strategy_names
from workitems.errors import ValidationFailed

MAX_REASON = 2000
MAX_CANDIDATE_QUEUES = 20  # a create naming several queues (the least loaded takes the item)

_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 150}, "maxItems": 1000}
_OPT_STR = {"type": ["string", "null"]}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    # `queue` too, unless the task type of (workflow_id, task_name) gives one: the create checks it
    "required": ["workflow_id", "task_name"],
    "additionalProperties": False,
    "properties": {
        "workflow_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "run_id": {"type": "string", "maxLength": 200},
        "task_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "title": {"type": "string", "maxLength": 500},
        "description": {"type": "string", "maxLength": 100_000},
        # a queue's name, or several: the item goes to the one with the fewest open items
        "queue": {
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": 100},
                {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": 100},
                    "minItems": 1,
                    "maxItems": MAX_CANDIDATE_QUEUES,
                    "uniqueItems": True,
                },
            ]
        },
        "priority": {"type": "integer", "minimum": 0, "maximum": 100},
        "due_at": _OPT_STR,
        "follow_up_at": _OPT_STR,
        "context_data": {"type": "object"},
        "candidate_users": _NAMES,
        "candidate_groups": _NAMES,
        "excluded_users": _NAMES,
        "required_skills": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}},
        "sod_key": {"type": "string", "maxLength": 100},
        # separation of duties over the workflow run (default) or, with a case, the whole case
        "sod_scope": {"enum": ["run", "case"]},
        "case": {"type": "string", "minLength": 1, "maxLength": 100},  # a case's number (joins it)
        "department": {"type": ["string", "null"], "minLength": 1, "maxLength": 100},
        "optional": {"type": "boolean"},
        "assignee": _OPT_STR,
        "strategy": {"enum": strategy_names()},
        "callback_url": {"type": "string", "maxLength": 1000},
        "correlation_id": {"type": "string", "maxLength": 200},
    },
}
READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "state",
        "sub_status",
        "version",
        "escalation_level",
        "created_at",
        "updated_at",
        "assigned_at",
        "started_at",
        "completed_at",
        "result",
        "allowed_actions",
    }
)
_create_validator = jsonschema.Draft202012Validator(CREATE_SCHEMA)


def dotted(prefix: str, path: Iterable[Any]) -> str:
    """`items[3].context_data.x` from a prefix and a JSON path."""
    parts = [prefix] if prefix else []
    for p in path:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        else:
            parts.append(str(p))
    return ".".join(parts)


def _unstorable(text: str) -> str | None:
    """What in `text` PostgreSQL cannot store (in text or jsonb), or None."""
    if "\x00" in text:
        return "NUL (\\u0000) characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone UTF-16 surrogates (\\ud800-\\udfff)"
    return None


def printable(text: str) -> str:
    """`text` with NUL and lone surrogates escaped, safe to echo in an answer or a log."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


# JSON that comes in (a REST body, a bus message) nests at most this many arrays/objects: deeper
# input is refused with a clear error (it used to end in a RecursionError).
MAX_DEPTH = 64


def too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `data` nests more than `limit` arrays/objects (an iterative walk)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def nul_errors(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """Text PostgreSQL cannot store anywhere in a JSON value: NUL characters and lone
    UTF-16 surrogates (JSON `"\\ud800"`, which no UTF-8 holds), in strings and in keys.
    The walk is iterative, so any nesting depth is safe."""
    out: list[dict[str, str]] = []
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            why = _unstorable(value)
            if why:
                out.append({"field": path or "body", "message": f"must not contain {why}"})
        elif isinstance(value, dict):
            children = []
            for key, child in value.items():
                field = dotted(path, [printable(str(key))])
                why = _unstorable(str(key))
                if why:
                    out.append({"field": field, "message": f"keys must not contain {why}"})
                children.append((field, child))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path or 'body'}[{i}]", child) for i, child in enumerate(value)]))
    return out


def create_shape_errors(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """Every way a create body departs from CREATE_SCHEMA, each naming its field."""
    if not isinstance(data, dict):
        return [{"field": prefix or "body", "message": "must be a JSON object"}]
    nul = nul_errors(data, prefix)
    if nul:
        return nul
    out = []
    for err in sorted(_create_validator.iter_errors(data), key=lambda e: (list(e.path), e.message)):
        if err.validator == "required":
            missing = err.message.split("'")[1]
            out.append({"field": dotted(prefix, [missing]), "message": "this field is required"})
        elif err.validator == "additionalProperties":
            for extra in sorted(set(err.instance) - set(CREATE_SCHEMA["properties"])):
                why = "read-only field" if extra in READ_ONLY_FIELDS else "unknown field"
                out.append({"field": dotted(prefix, [extra]), "message": why})
        else:
            out.append({"field": dotted(prefix, err.absolute_path) or prefix, "message": err.message})
    return out


# Every time that comes in (API bodies and filters, cursors, the bus, the admin) lies in
# this range once converted to UTC: PostgreSQL keeps years Python cannot read (year 0,
# 10000), and an item stored with one could not be read, listed or claimed again.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
TIME_RANGE = "from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z"
# Durations (queue `sla`, `reservation_timeout`) are positive and at most a year (366 days):
# `now + duration` stays a time of that range, and P999999999999D is refused, not an overflow.
MAX_DURATION = timedelta(days=366)
# The latest time Python reads in UTC: what a cursor may carry (a list sorts items with no
# due date after every accepted one, as 9999-12-31).
MAX_READABLE = datetime.max.replace(tzinfo=UTC)


def time_range_error(value: datetime, *, latest: datetime = MAX_TIME) -> str | None:
    """Why `value` (aware; naive is taken as UTC) is outside the accepted range, or None."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        utc = None  # the offset pushes it past what Python can represent
    if utc is None or not MIN_TIME <= utc <= latest:
        return f"must be {TIME_RANGE}" if latest == MAX_TIME else "is out of range"
    return None


def check_time_range(value: datetime | None, field: str) -> datetime | None:
    """`value` when it is None or in the accepted range; ValidationFailed naming `field` otherwise."""
    message = time_range_error(value) if value is not None else None
    if message:
        raise ValidationFailed([{"field": field, "message": message}])
    return value


def validate_time_range(value: datetime | None) -> None:
    """The model fields' validator (admin forms, full_clean): the same range as the API."""
    message = time_range_error(value) if value is not None else None
    if message:
        raise DjangoValidationError(message, code="time_range")


def parse_iso_time(
    raw: Any, *, zone_required: bool = True, latest: datetime = MAX_TIME
) -> tuple[datetime | None, str | None]:
    """(value, None) for an ISO 8601 date-time in the accepted range, else (None, why).
    Without `zone_required`, a time without a zone is taken as UTC.

    Impossible but well-formed values (`2026-02-30`, month 13, offset `+25:00`) and
    non-ASCII digits are refused like any other malformed string."""
    try:
        value = parse_datetime(raw) if isinstance(raw, str) and raw.isascii() else None
    except (ValueError, OverflowError):
        return None, "must be a valid ISO 8601 date-time (no such date, time or offset)"
    if value is None:
        return None, "must be an ISO 8601 date-time"
    if value.tzinfo is None:
        if zone_required:
            return None, "must include a time zone"
        value = value.replace(tzinfo=UTC)
    message = time_range_error(value, latest=latest)
    return (None, message) if message else (value, None)


def parse_time(raw: Any, field: str, errors: list[dict[str, str]]) -> datetime | None:
    """An aware ISO 8601 date-time in the accepted range from `raw` (None stays None); a
    problem is appended to `errors` under `field` instead."""
    if raw is None:
        return None
    value, message = parse_iso_time(raw)
    if message:
        errors.append({"field": field, "message": message})
    return value


def parse_positive_duration(raw: Any) -> tuple[timedelta | None, str | None]:
    """(value, None) for an ISO 8601 duration (`PT4H`) > 0 and at most MAX_DURATION, else (None, why)."""
    why = f"must be a positive ISO 8601 duration of at most {MAX_DURATION.days} days"
    try:
        value = parse_duration(raw) if isinstance(raw, str) and raw.startswith("P") and raw.isascii() else None
    except (ValueError, OverflowError):  # P999999999999D: more days than a timedelta holds
        value = None
    if value is None or not timedelta(0) < value <= MAX_DURATION:
        return None, why
    return value, None


def check_reason(args: dict[str, Any]) -> None:
    if "reason" in args:
        reason = args["reason"]
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise ValidationFailed([{"field": "reason", "message": f"must be a string of at most {MAX_REASON} chars"}])


_ROOT_URI = "urn:workstream:result-schema"


def json_schema_error(schema: Any) -> str | None:
    """Why `schema` cannot check results, or None: not a valid JSON Schema (2020-12), or a
    reference that would not resolve when a result is checked. References stay inside the
    document (`#` or `#/…` JSON pointers, no `$id` below the root, no `$dynamicRef`): a result
    is never checked against a schema fetched from elsewhere, and an unresolvable one would
    fail every `complete`."""
    if not isinstance(schema, dict):
        return "must be a JSON Schema (an object)"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    resolver = Registry().with_resource(_ROOT_URI, DRAFT202012.create_resource(schema)).resolver(_ROOT_URI)
    stack: list[tuple[Any, bool]] = [(schema, True)]
    while stack:
        node, root = stack.pop()
        if isinstance(node, list):
            stack.extend((child, False) for child in node)
            continue
        if not isinstance(node, dict):
            continue
        if "$dynamicRef" in node or (not root and "$id" in node):
            return "not supported: $dynamicRef and $id below the root (references stay inside the schema)"
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref != "#" and not ref.startswith("#/"):
                return f"$ref {ref!r}: only references inside the schema (#/…) are supported"
            try:
                resolver.lookup(ref)
            except Unresolvable:
                return f"$ref {ref!r} does not resolve"
        stack.extend((child, False) for key, child in node.items() if key not in ("enum", "const", "default"))
    return None


def result_errors(result: Any, schema: dict | None) -> list[dict[str, str]]:
    """Why `result` is not an acceptable outcome: not an object, or not valid for the item's
    schema (its task type's, else its lifecycle's: WorkItem.result_schema)."""
    if not isinstance(result, dict):
        return [{"field": "result", "message": "must be a JSON object"}]
    if not schema:
        return []
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(result), key=lambda e: e.path)
    return [{"field": dotted("result", e.absolute_path), "message": e.message} for e in errors]


# The type of each action argument (the names come from the action table, models.ACTIONS).
ARG_TYPES: dict[str, tuple[type, str]] = {
    "reason": (str, "a string"),
    "user": (str, "a username"),
    "result": (dict, "a JSON object"),
    "sub_status": (str, "a string"),
    "queue": (str, "a queue name"),
    "users": (list, "a list of usernames"),
    "groups": (list, "a list of group names"),
    "changes": (dict, "an object of the fields to change"),
}


def action_arguments(names: Iterable[str], data: dict[str, Any]) -> dict[str, Any]:
    """The arguments `names` taken from a message body, type-checked; ValidationFailed
    names every bad one. Absent optional ones are left out (the command's default applies)."""
    out: dict[str, Any] = {}
    errors = []
    for name in names:
        if name not in data:
            continue
        kind, what = ARG_TYPES[name]
        if not isinstance(data[name], kind):
            errors.append({"field": name, "message": f"must be {what}"})
        else:
            out[name] = data[name]
    if errors:
        raise ValidationFailed(errors)
    return out


MAX_FORWARD_TARGETS = 100


def forward_targets(users: Any, groups: Any) -> tuple[list[str], list[str]]:
    """The usernames and group names of a forward, each list deduplicated in order;
    ValidationFailed names what is wrong (not lists of names, none at all, too many)."""
    errors = []
    out = []
    for name, value in (("users", users), ("groups", groups)):
        value = [] if value is None else value
        if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 150 for v in value):
            errors.append({"field": name, "message": "must be a list of names (1–150 characters each)"})
            value = []
        out.append(list(dict.fromkeys(value)))
    if not errors and not (out[0] or out[1]):
        errors.append({"field": "users", "message": "name at least one user or group to forward to"})
    if not errors and len(out[0]) + len(out[1]) > MAX_FORWARD_TARGETS:
        errors.append({"field": "users", "message": f"at most {MAX_FORWARD_TARGETS} users and groups together"})
    if errors:
        raise ValidationFailed(errors)
    return out[0], out[1]


# What an update (PATCH /workitems/{id}, the `update` command) may change.
UPDATABLE = ("priority", "due_at", "follow_up_at")


def update_changes(changes: Any) -> dict[str, Any]:
    """The parsed fields of an update ({field: value}; a date as None clears it; an empty
    object changes nothing); ValidationFailed names every bad one."""
    if not isinstance(changes, dict):
        raise ValidationFailed([{"field": "changes", "message": f"an object of {', '.join(UPDATABLE)}"}])
    errors = [
        {"field": k, "message": f"unknown field; one of {', '.join(UPDATABLE)}"} for k in changes if k not in UPDATABLE
    ]
    parsed: dict[str, Any] = {}
    if "priority" in changes:
        p = changes["priority"]
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 100:
            errors.append({"field": "priority", "message": "an integer from 0 to 100"})
        else:
            parsed["priority"] = p
    for name in ("due_at", "follow_up_at"):
        if name in changes:
            raw = changes[name]
            if isinstance(raw, datetime):  # a Python caller's value
                raw = raw.isoformat()
            if raw is not None and not isinstance(raw, str):
                errors.append({"field": name, "message": "an ISO 8601 date-time with a time zone, or null"})
            else:
                parsed[name] = parse_time(raw, name, errors)
    if errors:
        raise ValidationFailed(errors)
    return parsed
