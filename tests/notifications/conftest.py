from __future__ import annotations

import socket
import time

import pytest
from aiosmtpd.controller import Controller
from rest_framework.test import APIClient

from notifications import sender
from notifications.models import NotificationDelivery
from tests.events import test_webhooks

receiver = test_webhooks.receiver  # the loopback HTTP receiver fixture (tests/events/receiver.py)


@pytest.fixture
def client_for():
    """An API client logged in as `user`: `client_for(alice).get(...)`."""
    return lambda user: (client := APIClient(), client.force_authenticate(user))[0]


@pytest.fixture
def channels_on(ws_config):
    """Turn channels on (loopback webhook receivers allowed): `channels_on(email=True, slack=True)`."""

    def apply(**channels):
        return ws_config(
            {
                "notifications": {"channels": channels, "retryBaseSeconds": 0.01, "retryMaxSeconds": 0.05},
                "webhooks": {"allowPrivateTargets": True},
            }
        )

    return apply


class Mailbox:
    """An SMTP handler that refuses the first `refuse` messages (554) and keeps the rest."""

    def __init__(self, refuse: int = 0):
        self.refuse = refuse
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
        if self.refuse > 0:
            self.refuse -= 1
            return "554 refused for the test"
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp(settings):
    boxes = []

    def start(refuse: int = 0) -> Mailbox:
        box = Mailbox(refuse)
        with socket.socket() as probe:  # a free port (the controller's start-up check needs a real one)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(box, hostname="127.0.0.1", port=port)
        controller.start()
        boxes.append(controller)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_HOST_PASSWORD = ""
        return box

    yield start
    for c in boxes:
        c.stop()


def send_until_done(rounds: int = 30) -> None:
    for _ in range(rounds):
        sender.send_due()
        if not NotificationDelivery.objects.filter(status__in=sender.DUE).exists():
            return
        time.sleep(0.06)
