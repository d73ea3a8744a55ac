"""The wire shape of a queue's `channels`: where its alerts go (validated here, once).

`null` is the default: every channel switched on in the configuration (in-app and email to
the people told; Slack and Teams to the queue's own webhook, else the global one; PagerDuty
for a critical queue). A list names the channels instead, each once per `ref`:

    [{"type": "in_app"}, {"type": "email"}, {"type": "slack", "ref": "claims-team"},
     {"type": "pagerduty"}]

`ref` names a secret held in the environment (`SLACK_WEBHOOK_URL__CLAIMS_TEAM`,
`TEAMS_WEBHOOK_URL__…`, `PAGERDUTY_ROUTING_KEY__…`); the secret itself is never sent to
or shown by the API.
"""

from __future__ import annotations

import re
from typing import Any

from notifications import models as m

QUEUE_CHANNELS = (m.IN_APP, m.EMAIL, m.SLACK, m.TEAMS, m.PAGERDUTY)
WITH_REF = (m.SLACK, m.TEAMS, m.PAGERDUTY)
MAX_CHANNELS = 20
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")


def channels_errors(value: Any, field: str = "channels") -> list[dict[str, str]]:
    """Why `value` is not a queue's `channels` (empty when it is)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_CHANNELS:
        return [{"field": field, "message": f"must be null or a list of at most {MAX_CHANNELS} channels {{type, ref}}"}]
    errors, seen = [], set()
    for i, entry in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(entry, dict) or entry.get("type") not in QUEUE_CHANNELS:
            errors.append({"field": where, "message": f"a channel has a type: one of {', '.join(QUEUE_CHANNELS)}"})
            continue
        kind = entry["type"]
        allowed = {"type", "ref"} if kind in WITH_REF else {"type"}
        if set(entry) - allowed:
            errors.append({"field": where, "message": f"{kind} takes only {', '.join(sorted(allowed))}"})
            continue
        ref = entry.get("ref")
        if "ref" in entry and not (isinstance(ref, str) and REF.match(ref)):
            errors.append(
                {
                    "field": f"{where}.ref",
                    "message": "the name of a secret in the environment: letters, digits, - and _, at most 50",
                }
            )
            continue
        key = (kind, ref.upper().replace("-", "_") if ref else None)
        if key in seen:
            errors.append({"field": where, "message": f"{kind} is listed twice with the same ref"})
        seen.add(key)
    return errors
