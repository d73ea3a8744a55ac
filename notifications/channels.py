"""The sending channels: email (Django's SMTP backend), Slack (Block Kit), Teams (MessageCard),
PagerDuty (Events API v2), and which of them carry a queue's alert (`routes`).

Webhook URLs and PagerDuty routing keys are secrets: they come from the environment when a
delivery is sent (`SLACK_WEBHOOK_URL`, `TEAMS_WEBHOOK_URL`, `PAGERDUTY_ROUTING_KEY`, or
`<NAME>_FILE`; a queue's own as `SLACK_WEBHOOK_URL__<QUEUE>` with the queue name upper-cased
and other characters as `_`; a channel's `ref` the same way, `…__<REF>`), are never
stored, logged, or returned; a delivery names its target by label only (`slack:global`,
`slack:queue:<name>`, `pagerduty:ref:<ref>`). POSTs go through the SSRF guard
(events.urlguard, via events.webhooks.http_post: the checked address, no redirects).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from config import wsconfig
from config.timefmt import isoformat_z
from events import urlguard, webhooks
from notifications import models as m

ENV_NAMES = {m.SLACK: "SLACK_WEBHOOK_URL", m.TEAMS: "TEAMS_WEBHOOK_URL", m.PAGERDUTY: "PAGERDUTY_ROUTING_KEY"}
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"  # PAGERDUTY_EVENTS_URL overrides it
PEOPLE = (m.IN_APP, m.EMAIL)


class SendFailed(Exception):
    """A send that did not go through; `permanent` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def _env_secret(name: str) -> str:
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""
    return os.environ.get(name, "").strip()


def _queue_env(channel: str, name: str) -> str:
    return f"{ENV_NAMES[channel]}__{re.sub(r'[^A-Z0-9]', '_', name.upper())}"


def webhook_label(channel: str, queue: str) -> str | None:
    """The target of a channel alert for `queue`: its own webhook, else the global one, else None."""
    if queue and _env_secret(_queue_env(channel, queue)):
        return f"{channel}:queue:{queue}"
    return f"{channel}:global" if _env_secret(ENV_NAMES[channel]) else None


def target_secret(label: str) -> str:
    """The webhook URL or routing key a delivery's label stands for ("" when none is configured)."""
    channel, _, rest = label.partition(":")
    if channel not in ENV_NAMES:
        return ""
    kind, _, name = rest.partition(":")
    if kind in ("queue", "ref") and name:
        return _env_secret(_queue_env(channel, name))
    return _env_secret(ENV_NAMES[channel])


def routes(trigger: str, queue, *, alert: bool, paged: bool) -> tuple[set[str], list[tuple[str, str]]]:
    """Where a notification goes: the people channels (in_app, email) and the posts
    [(channel, label)], by the configuration's switches and, for a queue's alert, the queue's
    `channels` (null: every channel switched on; Slack and Teams where a webhook is set;
    PagerDuty only for a `paged` trigger on a `critical` queue)."""
    on = wsconfig.get().notifications.channels
    if not alert:
        return {c for c in PEOPLE if on[c]}, []
    name = queue.name if queue is not None else ""
    explicit = queue is not None and queue.channels is not None
    entries = queue.channels if explicit else [{"type": c} for c in m.CHANNELS]
    people, posts = set(), []
    for entry in entries:
        kind, ref = entry["type"], entry.get("ref")
        if not on[kind] or (kind == m.PAGERDUTY and not (paged and queue is not None and queue.critical)):
            continue
        if kind in PEOPLE:
            people.add(kind)
            continue
        # A channel the queue names explicitly gets its row even unconfigured: it goes dead
        # with "not configured" in the admin instead of vanishing.
        label = f"{kind}:ref:{ref}" if ref else webhook_label(kind, name) or (f"{kind}:global" if explicit else None)
        if label and (kind, label) not in posts:
            posts.append((kind, label))
    return people, posts


def scrub(text: str, secrets) -> str:
    """`text` without any of `secrets` in it (an error message may quote a URL or a password)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:1000]


def slack_message(d: m.NotificationDelivery) -> dict:
    """Slack Block Kit: a header and the body, with the plain text as the fallback."""
    return {
        "text": d.title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": d.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": d.body or d.title}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"workstream · {d.kind} · queue {d.queue}"}]},
        ],
    }


def teams_message(d: m.NotificationDelivery) -> dict:
    """An Office 365 connector MessageCard (what Teams incoming webhooks accept)."""
    colour = {m.SLA_BREACHED: "D13438", m.SLA_AT_RISK: "FFB900"}.get(d.kind, "0078D4")
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": d.title,
        "themeColor": colour,
        "title": d.title,
        "sections": [
            {
                "text": d.body or d.title,
                "facts": [{"name": "trigger", "value": d.kind}, {"name": "queue", "value": d.queue}],
            }
        ],
    }


SEVERITY = {m.SLA_BREACHED: "critical", m.CAPACITY_ALERT: "error"}


def pagerduty_event(d: m.NotificationDelivery, routing_key: str) -> dict:
    """A PagerDuty Events API v2 `trigger`. The dedup key is the event's: a retried send
    (or one sent twice) stays one alert."""
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"workstream-{d.event_id}",
        "client": "Workstream",
        "payload": {
            "summary": d.title[:1024],
            "source": "workstream",
            "severity": SEVERITY.get(d.kind, "warning"),
            "timestamp": isoformat_z(d.created_at),
            "component": d.queue or "workstream",
            "group": d.queue or "workstream",
            "class": d.kind,
            "custom_details": {"body": d.body, "queue": d.queue, "work_item": d.work_item_id},
        },
    }


def _http(url: str, message: dict, secrets: list[str]) -> int:
    body = json.dumps(message).encode()
    timeout = wsconfig.get().notifications.timeoutSeconds
    try:
        return webhooks.http_post(url, body, {"Content-Type": "application/json"}, timeout=timeout)
    except urlguard.TargetUnresolved as exc:
        raise SendFailed(scrub(str(exc), secrets)) from None
    except urlguard.TargetRefused as exc:
        raise SendFailed(f"refused by the SSRF guard: {scrub(str(exc), secrets)}", permanent=True) from None
    except OSError as exc:
        raise SendFailed(scrub(f"{type(exc).__name__}: {exc}", secrets)) from None


def _post(d: m.NotificationDelivery, message: dict) -> None:
    url = target_secret(d.recipient)
    if not url:
        raise SendFailed(f"no webhook URL configured for {d.recipient}", permanent=True)
    status = _http(url, message, [url])
    if not 200 <= status < 300:
        raise SendFailed(f"HTTP {status}")


def _page(d: m.NotificationDelivery) -> None:
    key = target_secret(d.recipient)
    if not key:
        raise SendFailed(f"no PagerDuty routing key configured for {d.recipient}", permanent=True)
    url = os.environ.get("PAGERDUTY_EVENTS_URL", "").strip() or PAGERDUTY_URL
    status = _http(url, pagerduty_event(d, key), [key])
    if not 200 <= status < 300:
        # 400 is an event PagerDuty will never take (a bad routing key, a bad field); 429 and
        # 5xx pass.
        raise SendFailed(f"HTTP {status} from PagerDuty", permanent=400 <= status < 500 and status != 429)


def _email(d: m.NotificationDelivery) -> None:
    address = d.user.email if d.user_id else ""
    if not address:
        raise SendFailed(f"{d.recipient} has no email address", permanent=True)
    try:
        connection = get_connection(timeout=wsconfig.get().notifications.timeoutSeconds)
        EmailMessage(subject=d.title, body=d.body, to=[address], connection=connection).send()
    except Exception as exc:  # noqa: BLE001 - any backend failure is this attempt's failure
        raise SendFailed(scrub(f"{type(exc).__name__}: {exc}", [settings.EMAIL_HOST_PASSWORD])) from None


def send(d: m.NotificationDelivery) -> None:
    """Send one delivery now; raises SendFailed."""
    if d.channel == m.EMAIL:
        _email(d)
    elif d.channel == m.SLACK:
        _post(d, slack_message(d))
    elif d.channel == m.TEAMS:
        _post(d, teams_message(d))
    elif d.channel == m.PAGERDUTY:
        _page(d)
    else:
        raise SendFailed(f"unknown channel {d.channel}", permanent=True)
