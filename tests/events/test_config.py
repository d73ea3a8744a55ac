"""The configuration keys of event delivery are validated like the rest of the file."""

from __future__ import annotations

import pytest
import yaml

from config import wsconfig
from events import inbound


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"relay": {"nudge": "sometimes"}}, "relay.nudge"),
        ({"webhooks": {"allowPrivateTargets": "yes"}}, "webhooks.allowPrivateTargets"),
        ({"webhooks": {"maxAttempts": 0}}, "webhooks.maxAttempts"),
        ({"webhooks": {"retryBaseSeconds": -1}}, "webhooks.retryBaseSeconds"),
        ({"eventBus": {"notificationBindings": []}}, "eventBus.notificationBindings"),
        ({"relay": {"batchSize": 10}}, "relay.batchSize (unknown key)"),
    ],
)
def test_bad_event_settings_name_the_key(tmp_path, overrides, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(overrides))
    with pytest.raises(wsconfig.ConfigError, match=key.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        wsconfig.load(path)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[1]", "not a JSON object"),
        (b'{"command": "claim", "actor": "a", "item_id": 1}', "command_id"),
        (b'{"command_id": "' + b"x" * 65 + b'", "command": "claim", "actor": "a", "item_id": 1}', "command_id"),
        (b'{"command_id": "1", "command": "claim", "item_id": 1}', "actor"),
        (b'{"command_id": "1", "command": "claim", "actor": "a", "item_id": "1"}', "item_id"),
        (b'{"command_id": "1", "command": "create", "actor": "a"}', "data"),
        (b"null", "not a JSON object"),
        # Deeply nested JSON: past the parser's recursion limit, and within it but past MAX_DEPTH.
        (b'{"command_id": "1", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than 64"),
        (b'{"command_id": "1", "data": ' + b"[" * 70 + b"]" * 70 + b"}", "nested deeper than 64"),
        # Envelope text PostgreSQL cannot store (schemas.nul_errors, as the REST parser checks it).
        (
            b'{"command_id": "1", "command": "claim", "actor": "a", "item_id": 1, "correlation_id": "c\\u0000"}',
            "correlation_id must not contain NUL",
        ),
        (b'{"command_id": "1", "command": "claim", "actor": "a\\u0000", "item_id": 1}', "actor must not contain NUL"),
        (
            b'{"command_id": "1\\u0000", "command": "claim", "actor": "a", "item_id": 1}',
            "command_id must not contain NUL",
        ),
        (
            b'{"command_id": "1", "command": "claim", "actor": "a", "item_id": 1, "correlation_id": "\\ud800"}',
            "correlation_id must not contain lone UTF-16 surrogates",
        ),
    ],
)
def test_inbound_parse_names_what_is_wrong(body, reason):
    with pytest.raises(inbound.Poison, match=reason):
        inbound.parse(body)
