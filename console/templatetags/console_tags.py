"""Small filters for the console's templates."""

from __future__ import annotations

import json

from django import template
from django.utils import timezone

from console.access import supervises as _supervises

register = template.Library()

SLA_LABELS = {
    "none": "no deadline",
    "on_track": "on track",
    "at_risk": "at risk",
    "breached": "breached",
    "met": "met",
    "missed": "missed",
}


@register.filter
def supervises(user) -> bool:
    return _supervises(user)


@register.filter
def sla_label(state: str) -> str:
    return SLA_LABELS.get(state, state)


@register.filter
def state_label(state: str) -> str:
    return (state or "").replace("_", " ").lower()


@register.filter
def action_label(action: str) -> str:
    return {"set_sub_status": "set sub-status"}.get(action, action.replace("_", " "))


@register.filter
def duration(seconds) -> str:
    """A number of seconds as the largest one or two units: 3d 4h, 2h 5m, 40s."""
    if seconds is None or seconds == "":
        return "–"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


@register.filter
def age(moment) -> str:
    if moment is None:
        return "–"
    return duration(max(0, (timezone.now() - moment).total_seconds()))


@register.filter
def percent(share) -> str:
    return "–" if share is None else f"{share * 100:.0f}%"


@register.filter
def as_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@register.filter
def is_scalar(value) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
