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


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": 100},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 100},
                "minItems": 1,
                "maxItems": 20,
                "uniqueItems": True,
            },
        ],
        "description": "a queue's name, or several: the item goes to the active one with the fewest open items; "
        "required unless the task type of (workflow_id, task_name) gives one",
    }
)
class QueueChoiceIn(serializers.CharField):
    """A create's `queue` (workitems/schemas.py CREATE_SCHEMA is what the server checks)."""


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
