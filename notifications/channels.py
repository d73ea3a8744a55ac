"""The sending channels: email (Django's SMTP backend), Slack (Block Kit), Teams (MessageCard).

Webhook URLs are secrets: they come from the environment when a delivery is sent
(`SLACK_WEBHOOK_URL`, `TEAMS_WEBHOOK_URL`, or `<NAME>_FILE`; a queue's own as
`SLACK_WEBHOOK_URL__<QUEUE>` with the queue name upper-cased and other characters as `_`),
are never stored, logged, or returned; a delivery names its target by label only
(`slack:global`, `slack:queue:<name>`). POSTs go through the SSRF guard (events.urlguard,
via events.webhooks.http_post: the checked address, no redirects).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from config import wsconfig
from events import urlguard, webhooks
from notifications import models as m

ENV_NAMES = {m.SLACK: "SLACK_WEBHOOK_URL", m.TEAMS: "TEAMS_WEBHOOK_URL"}


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


def _queue_env(channel: str, queue: str) -> str:
    return f"{ENV_NAMES[channel]}__{re.sub(r'[^A-Z0-9]', '_', queue.upper())}"


def webhook_label(channel: str, queue: str) -> str | None:
    """The target of a channel alert for `queue`: its own webhook, else the global one, else None."""
    if queue and _env_secret(_queue_env(channel, queue)):
        return f"{channel}:queue:{queue}"
    return f"{channel}:global" if _env_secret(ENV_NAMES[channel]) else None


def webhook_url(label: str) -> str:
    channel, _, rest = label.partition(":")
    if rest.startswith("queue:"):
        return _env_secret(_queue_env(channel, rest[len("queue:") :]))
    return _env_secret(ENV_NAMES.get(channel, ""))


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


def _post(d: m.NotificationDelivery, message: dict) -> None:
    url = webhook_url(d.recipient)
    if not url:
        raise SendFailed(f"no webhook URL configured for {d.recipient}", permanent=True)
    body = json.dumps(message).encode()
    timeout = wsconfig.get().notifications.timeoutSeconds
    try:
        status = webhooks.http_post(url, body, {"Content-Type": "application/json"}, timeout=timeout)
    except urlguard.TargetUnresolved as exc:
        raise SendFailed(scrub(str(exc), [url])) from None
    except urlguard.TargetRefused as exc:
        raise SendFailed(f"refused by the SSRF guard: {scrub(str(exc), [url])}", permanent=True) from None
    except OSError as exc:
        raise SendFailed(scrub(f"{type(exc).__name__}: {exc}", [url])) from None
    if not 200 <= status < 300:
        raise SendFailed(f"HTTP {status}")


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
    else:
        raise SendFailed(f"unknown channel {d.channel}", permanent=True)
