"""Request fields whose value rules the OpenAPI document declares as the server enforces them.

The server validates queue and calendar bodies in the service layer (workitems/schemas.py,
workitems/calendars.py); these serializer fields exist for the document, so that a client (and
schemathesis) learns the rules from it: a duration, a share, an IANA time zone.
"""

from __future__ import annotations

from zoneinfo import available_timezones

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "string", "format": "duration"})
class DurationIn(serializers.CharField):
    """An ISO 8601 duration; in a request body the document adds its bounds (api/schema.py
    DURATION_PATTERN), a response shows it as the server writes it (`P0DT04H00M00S`)."""


TIME_ZONES = sorted(available_timezones())


@extend_schema_field({"type": "string", "enum": TIME_ZONES, "description": "an IANA time zone, e.g. Europe/Berlin"})
class TimeZoneIn(serializers.CharField):
    pass


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1, "exclusiveMaximum": True})
class ShareIn(serializers.FloatField):
    """A share strictly between 0 and 1 (a queue's `at_risk_ratio`)."""


def _queue_names(description: str, **array) -> dict:
    """A queue's name or a list of 1–20 names, as the document declares it."""
    name = {"type": "string", "minLength": 1, "maxLength": 100}
    many = {"type": "array", "items": name, "minItems": 1, "maxItems": 20, **array}
    return {"oneOf": [name, many], "description": description}


@extend_schema_field(
    _queue_names(
        "a queue's name, or several: the item goes to the active one with the fewest open items; "
        "required unless the task type of (workflow_id, task_name) gives one",
        uniqueItems=True,
    )
)
class QueueChoiceIn(serializers.CharField):
    """A create's `queue` (workitems/schemas.py CREATE_SCHEMA is what the server checks)."""


@extend_schema_field(
    _queue_names("only this queue, or these queues (then ordered by score: weight × (priority + minutes waited))")
)
class QueuesIn(serializers.Field):
    """claim-next's `queue`: a name or a list of names, passed as sent (the service checks it:
    workitems.services.assignment._claim_next_names)."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


_FORM_TEXT = {"type": "string", "maxLength": 2000}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "description": "a property of the result"},
                        "label": _FORM_TEXT,
                        "help": _FORM_TEXT,
                    },
                },
                "description": "each property at most once",
            }
        },
        "description": "the console's complete form: order, labels and help of the result's properties",
    }
)
class TaskFormIn(serializers.JSONField):
    """A task type's `form` (workitems/services/task_types.py form_errors is what the server checks)."""
