"""The Workstream configuration file: features and knobs, validated at start-up.

One object (`load()` → `WorkstreamConfig`) is what the rest of the code reads,
through `config.wsconfig.get()`. Every key has a default here, so a file may
set only what it changes; an unknown key or a wrong type raises
`ConfigError` naming the file and the dotted key.
"""

from __future__ import annotations

import copy
import ipaddress
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from distribution.strategies import strategy_names

DEFAULT_PATH = Path(__file__).resolve().parent / "workstream.yaml"

# The strategy registry is the one list of names: each gets its on/off switch here.
STRATEGIES = tuple(strategy_names())

DEFAULTS: dict[str, Any] = {
    "features": {
        "restApi": True,
        "events": {"publish": False, "subscribe": False},
        "escalation": True,
        "lifecycle": {"custom": True},
        "distribution": {"strategies": {name: True for name in STRATEGIES}},
    },
    "assignment": {"push": True, "pull": True},
    "performance": {
        "outboxBatchSize": 500,
        "bulkCreateMax": 1000,
        "maxPageSize": 500,
        "maxBodyBytes": 1_048_576,
        "transientRetries": 2,
    },
    "eventBus": {
        "exchange": "workstream.events",
        "commandQueue": "workstream.commands",
        "deadLetterQueue": "workstream.commands.dlq",
        "producer": "workstream",
        "maxPublishAttempts": 3,
        "confirmTimeoutSeconds": 10,
        "notificationQueue": "workstream.notifications",
        "notificationDeadLetterQueue": "workstream.notifications.dlq",
        "notificationBindings": ["#"],
        "commandMaxFailures": 3,
    },
    "relay": {
        "nudge": "celery",
        "workers": 2,
        "pollSeconds": 1,
        "retryBaseSeconds": 1,
        "retryMaxSeconds": 300,
        "retainPublishedDays": 7,
    },
    "webhooks": {
        "allowPrivateTargets": False,
        "timeoutSeconds": 10,
        "maxAttempts": 8,
        "retryBaseSeconds": 5,
        "retryMaxSeconds": 3600,
        "breakerThreshold": 5,
        "breakerOpenSeconds": 60,
        "disableAfterFailures": 50,
        "concurrency": 8,
    },
    "rateLimits": {
        "default": "100/s",
        "perRole": {},
        "anonymousPerIp": "120/min",
        "tokenPerIp": "30/min",
        "tokenPerUsername": "10/min",
        "trustedProxies": [],
    },
    "idempotency": {"retentionHours": 24},
    "accessLog": {"enabled": True, "retentionDays": 30, "recordIp": False},
    "archive": {"enabled": False, "retentionDays": 90, "batchSize": 1000},
    "sla": {"scanSeconds": 30, "batchSize": 500, "defaultPolicy": None},
    "capacity": {"checkSeconds": 60},
    "notifications": {
        "channels": {"in_app": True, "email": False, "slack": False, "teams": False, "pagerduty": False},
        "summary": {"enabled": True, "timeOfDay": "08:00", "timeZone": "UTC", "checkSeconds": 60},
        "pollSeconds": 5,
        "batchSize": 500,
        "maxAttempts": 6,
        "retryBaseSeconds": 30,
        "retryMaxSeconds": 3600,
        "timeoutSeconds": 10,
    },
    "roles": {
        "admin": "workstream-admins",
        "supervisor": "workstream-supervisors",
        "worker": "workstream-workers",
        "service": "workstream-services",
    },
    # Access tokens from an external OpenID Connect provider (api/oidc.py, README "OIDC").
    "oidc": {
        "enabled": False,
        "issuer": "",
        "audience": "",
        "jwksUrl": "",
        "algorithms": ["RS256", "ES256"],
        "usernameClaim": "preferred_username",
        "rolesClaim": "roles",
        "roleMapping": {},
        "groupsClaim": None,
        "createUsers": True,
        "leewaySeconds": 30,
        "jwksCacheSeconds": 300,
        "jwksMinRefetchSeconds": 30,
        "jwksTimeoutSeconds": 5,
    },
}


def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties}


_BOOL = {"type": "boolean"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
# requests per window: "100/s", "20/2s", "5/15min" (api/throttling.py parse_rate)
_RATE = {"type": "string", "pattern": r"^[0-9]+/([1-9][0-9]{0,5})?(s|sec|second|m|min|minute|h|hour|d|day)$"}
_NETWORK = {"type": "string", "maxLength": 64, "format": "ip-network"}
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("ip-network", raises=ValueError)
def _is_network(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.ip_network(value, strict=False))


@FORMATS.checks("time-zone", raises=ValueError)
def _is_time_zone(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone") from exc
    return True


# Asymmetric only: `none` and the HMACs (a public key used as a shared secret) are never accepted.
OIDC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
OIDC_ROLES = ("admin", "supervisor", "worker", "service")


@FORMATS.checks("jwks-url", raises=ValueError)
def _is_jwks_url(value: object) -> bool:
    """https, or http to a loopback address only (a key set fetched in clear could be replaced)."""
    if not isinstance(value, str) or not value:
        return True
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return True
    raise ValueError(f"{value!r} is not an https URL (http only to localhost)")


def _pos(maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": maximum}


def _seconds(maximum: float) -> dict[str, Any]:
    return {"type": "number", "exclusiveMinimum": 0, "maximum": maximum}


SCHEMA: dict[str, Any] = _obj(
    {
        "features": _obj(
            {
                "restApi": _BOOL,
                "events": _obj({"publish": _BOOL, "subscribe": _BOOL}),
                "escalation": _BOOL,
                "lifecycle": _obj({"custom": _BOOL}),
                "distribution": _obj({"strategies": _obj({name: _BOOL for name in STRATEGIES})}),
            }
        ),
        "assignment": _obj({"push": _BOOL, "pull": _BOOL}),
        "performance": _obj(
            {
                "outboxBatchSize": _pos(100_000),
                "bulkCreateMax": _pos(100_000),
                "maxPageSize": _pos(10_000),
                "maxBodyBytes": _pos(1 << 30),
                "transientRetries": {"type": "integer", "minimum": 0, "maximum": 10},
            }
        ),
        "eventBus": _obj(
            {
                "exchange": _NAME,
                "commandQueue": _NAME,
                "deadLetterQueue": _NAME,
                "producer": _NAME,
                "maxPublishAttempts": _pos(1000),
                "confirmTimeoutSeconds": _seconds(600),
                "notificationQueue": _NAME,
                "notificationDeadLetterQueue": _NAME,
                "notificationBindings": {"type": "array", "items": _NAME, "minItems": 1, "maxItems": 100},
                "commandMaxFailures": _pos(100),
            }
        ),
        "relay": _obj(
            {
                "nudge": {"enum": ["celery", "process", "none"]},
                "workers": _pos(16),
                "pollSeconds": _seconds(3600),
                "retryBaseSeconds": _seconds(86400),
                "retryMaxSeconds": _seconds(86400),
                "retainPublishedDays": _pos(3650),
            }
        ),
        "webhooks": _obj(
            {
                "allowPrivateTargets": _BOOL,
                "timeoutSeconds": _seconds(300),
                "maxAttempts": _pos(100),
                "retryBaseSeconds": _seconds(86400),
                "retryMaxSeconds": _seconds(7 * 86400),
                "breakerThreshold": _pos(10_000),
                "breakerOpenSeconds": _seconds(86400),
                "disableAfterFailures": _pos(100_000),
                "concurrency": _pos(256),
            }
        ),
        "rateLimits": _obj(
            {
                "default": _RATE,
                "perRole": _obj({"admin": _RATE, "supervisor": _RATE, "worker": _RATE, "service": _RATE}),
                "anonymousPerIp": _RATE,
                "tokenPerIp": _RATE,
                "tokenPerUsername": _RATE,
                "trustedProxies": {"type": "array", "items": _NETWORK, "maxItems": 100},
            }
        ),
        "idempotency": _obj({"retentionHours": _pos(24 * 365)}),
        "accessLog": _obj({"enabled": _BOOL, "retentionDays": _pos(3650), "recordIp": _BOOL}),
        "archive": _obj({"enabled": _BOOL, "retentionDays": _pos(36500), "batchSize": _pos(100_000)}),
        # defaultPolicy: null (the built-in) or levels as a queue's escalation_policy; its
        # levels are checked by the rule queues use (workitems.sla, registered with add_check).
        "sla": _obj(
            {
                "scanSeconds": _pos(86400),
                "batchSize": _pos(10_000),
                "defaultPolicy": {"type": ["array", "null"]},
            }
        ),
        "capacity": _obj({"checkSeconds": _pos(86400)}),
        "notifications": _obj(
            {
                "channels": _obj({"in_app": _BOOL, "email": _BOOL, "slack": _BOOL, "teams": _BOOL, "pagerduty": _BOOL}),
                "summary": _obj(
                    {
                        "enabled": _BOOL,
                        "timeOfDay": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                        "timeZone": {"type": "string", "format": "time-zone"},
                        "checkSeconds": _pos(3600),
                    }
                ),
                "pollSeconds": _seconds(3600),
                "batchSize": _pos(10_000),
                "maxAttempts": _pos(100),
                "retryBaseSeconds": _seconds(86400),
                "retryMaxSeconds": _seconds(7 * 86400),
                "timeoutSeconds": _seconds(300),
            }
        ),
        "roles": _obj({"admin": _NAME, "supervisor": _NAME, "worker": _NAME, "service": _NAME}),
        "oidc": {
            **_obj(
                {
                    "enabled": _BOOL,
                    "issuer": {"type": "string", "maxLength": 500},
                    "audience": {
                        "anyOf": [
                            {"type": "string", "maxLength": 500},
                            {"type": "array", "items": _NAME, "minItems": 1},
                        ]
                    },
                    "jwksUrl": {"type": "string", "maxLength": 2000, "format": "jwks-url"},
                    "algorithms": {"type": "array", "items": {"enum": list(OIDC_ALGORITHMS)}, "minItems": 1},
                    "usernameClaim": _NAME,
                    "rolesClaim": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
                    "roleMapping": {"type": "object", "additionalProperties": {"enum": list(OIDC_ROLES)}},
                    "groupsClaim": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
                    "createUsers": _BOOL,
                    "leewaySeconds": {"type": "integer", "minimum": 0, "maximum": 600},
                    "jwksCacheSeconds": _seconds(86400),
                    "jwksMinRefetchSeconds": {"type": "number", "minimum": 0, "maximum": 3600},
                    "jwksTimeoutSeconds": _seconds(60),
                }
            ),
            # Switched on, it needs the provider's issuer, the audience and the key set's address.
            "if": {"properties": {"enabled": {"const": True}}, "required": ["enabled"]},
            "then": {
                "required": ["issuer", "audience", "jwksUrl"],
                "properties": {"issuer": {"minLength": 1}, "jwksUrl": {"minLength": 1}, "audience": {"minLength": 1}},
            },
        },
    }
)


class ConfigError(Exception):
    """The configuration file is unreadable or invalid; the message names the file and key."""


class Section:
    """Read-only attribute access over one mapping of the configuration."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(name) from None
        return Section(value) if isinstance(value, dict) else value

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)


class WorkstreamConfig(Section):
    """The loaded configuration: `cfg.features.events.publish`, `cfg.eventBus.exchange`, …"""

    def __init__(self, data: dict[str, Any], path: Path):
        super().__init__(data)
        self.path = path

    def strategy_enabled(self, name: str) -> bool:
        return bool(self._data["features"]["distribution"]["strategies"].get(name, False))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _key_of(error: jsonschema.ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # The unknown key is in the message, not in the path.
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        path += extra[:1]
        return ".".join(path) + " (unknown key)"
    return ".".join(path) or "<root>"


def validate(data: Any, path: Path) -> None:
    """Raise ConfigError for the first problem in `data`, naming the key."""
    if data is None:
        data = {}
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        raise ConfigError(f"{path}: invalid configuration at {_key_of(err)}: {err.message}")


# Checks an app registers (AppConfig.ready) for keys whose rule lives with that app: each
# takes the merged configuration and returns [(dotted key, message)].
_checks: list[Callable[[WorkstreamConfig], list[tuple[str, str]]]] = []


def add_check(check: Callable[[WorkstreamConfig], list[tuple[str, str]]], cfg: WorkstreamConfig) -> None:
    """Register `check` for every later load, and apply it to `cfg` (the one in force) now."""
    if check not in _checks:
        _checks.append(check)
    _run_checks(cfg, [check])


def _run_checks(cfg: WorkstreamConfig, checks) -> None:
    for check in checks:
        problems = check(cfg)
        if problems:
            key, message = problems[0]
            raise ConfigError(f"{cfg.path}: invalid configuration at {key}: {message}")


def load(path: str | Path | None = None) -> WorkstreamConfig:
    """Read, validate and merge the file over the defaults."""
    path = Path(path) if path else DEFAULT_PATH
    try:
        raw = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    if path != DEFAULT_PATH and not path.exists():
        raise ConfigError(f"{path}: configuration file not found")
    raw = raw or {}
    validate(raw, path)
    cfg = WorkstreamConfig(_merge(DEFAULTS, raw), path)
    _run_checks(cfg, _checks)
    return cfg


_current: WorkstreamConfig | None = None


def get() -> WorkstreamConfig:
    """The configuration in force (loaded by settings at start-up)."""
    global _current
    if _current is None:
        from django.conf import settings

        _current = settings.WORKSTREAM
    return _current


def override(cfg: WorkstreamConfig | None) -> None:
    """Replace the configuration in force (tests, reload)."""
    global _current
    _current = cfg
