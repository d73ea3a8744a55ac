"""The wire shape of inputs, shared by REST, the inbound bus and the admin: the create
body's JSON Schema, the arguments of each action, and the input helpers (time parsing,
NUL checks, dotted field paths) every entry point uses, so that the same body gets the
same answer wherever it comes in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import jsonschema
from django.utils.dateparse import parse_datetime

from distribution.strategies import strategy_names
from workitems.errors import ValidationFailed

MAX_REASON = 2000

_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 150}, "maxItems": 1000}
_OPT_STR = {"type": ["string", "null"]}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["workflow_id", "task_name", "queue"],
    "additionalProperties": False,
    "properties": {
        "workflow_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "run_id": {"type": "string", "maxLength": 200},
        "task_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "title": {"type": "string", "maxLength": 500},
        "description": {"type": "string", "maxLength": 100_000},
        "queue": {"type": "string", "minLength": 1, "maxLength": 100},
        "priority": {"type": "integer", "minimum": 0, "maximum": 100},
        "due_at": _OPT_STR,
        "follow_up_at": _OPT_STR,
        "context_data": {"type": "object"},
        "candidate_users": _NAMES,
        "candidate_groups": _NAMES,
        "excluded_users": _NAMES,
        "required_skills": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}},
        "sod_key": {"type": "string", "maxLength": 100},
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


def nul_errors(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """NUL characters anywhere in a JSON value (PostgreSQL stores none, in text or jsonb)."""
    out: list[dict[str, str]] = []
    if isinstance(data, str):
        if "\x00" in data:
            out.append({"field": prefix or "body", "message": "must not contain NUL (\\u0000) characters"})
    elif isinstance(data, dict):
        for key, value in data.items():
            field = dotted(prefix, [str(key).replace("\x00", "\\u0000")])
            if "\x00" in str(key):
                out.append({"field": field, "message": "keys must not contain NUL (\\u0000) characters"})
            out.extend(nul_errors(value, field))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(nul_errors(value, f"{prefix or 'body'}[{i}]"))
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


def parse_time(raw: Any, field: str, errors: list[dict[str, str]]) -> datetime | None:
    """An aware ISO 8601 date-time from `raw` (None stays None); a problem is appended to
    `errors` under `field` instead."""
    if raw is None:
        return None
    value = parse_datetime(raw) if isinstance(raw, str) else None
    if value is None:
        errors.append({"field": field, "message": "must be an ISO 8601 date-time"})
    elif value.tzinfo is None:
        errors.append({"field": field, "message": "must include a time zone"})
    else:
        return value
    return None


def check_reason(args: dict[str, Any]) -> None:
    if "reason" in args:
        reason = args["reason"]
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise ValidationFailed([{"field": "reason", "message": f"must be a string of at most {MAX_REASON} chars"}])


def result_errors(result: Any, schema: dict | None) -> list[dict[str, str]]:
    """Why `result` is not an acceptable outcome: not an object, or not valid for the lifecycle's schema."""
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
