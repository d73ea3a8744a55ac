"""Fixtures for the event tests: real RabbitMQ, Redis and PostgreSQL, with names unique to the run.

Every exchange and queue a test uses carries a random suffix (and an expiry), so
concurrent runs on the same broker never see each other's messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.db import connection
from kombu import Connection

from config import wsconfig

BASE_DIR = Path(__file__).resolve().parents[2]


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _need_rabbitmq():
    if not broker_up():
        pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672 (the event tests use the real broker)")


@pytest.fixture
def names():
    """Unique exchange/queue names for this test."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "exchange": f"ws-test.events.{suffix}",
        "commands": f"ws-test.commands.{suffix}",
        "dlq": f"ws-test.commands.dlq.{suffix}",
        "notifications": f"ws-test.notifications.{suffix}",
        "notifications_dlq": f"ws-test.notifications.dlq.{suffix}",
        "tap": f"ws-test.tap.{suffix}",
        "suffix": suffix,
    }


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def events_config(tmp_path, names):
    """Put an events-on configuration in force: `events_config(overrides)` → (config, path of its file).

    The file is what a subprocess (manage.py relay_outbox) gets as WORKSTREAM_CONFIG.
    """

    def apply(overrides: dict | None = None):
        base = {
            "features": {"events": {"publish": True, "subscribe": True}},
            "eventBus": {
                "exchange": names["exchange"],
                "commandQueue": names["commands"],
                "deadLetterQueue": names["dlq"],
                "notificationQueue": names["notifications"],
                "notificationDeadLetterQueue": names["notifications_dlq"],
                "confirmTimeoutSeconds": 10,
            },
            "relay": {"nudge": "process", "pollSeconds": 0.2, "retryBaseSeconds": 0.05, "retryMaxSeconds": 0.2},
            "webhooks": {
                "allowPrivateTargets": True,
                "timeoutSeconds": 5,
                "retryBaseSeconds": 0.05,
                "retryMaxSeconds": 0.2,
                "concurrency": 1,
            },
        }
        data = _deep_merge(base, overrides or {})
        path = tmp_path / f"workstream-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(data))
        cfg = wsconfig.load(path)
        wsconfig.override(cfg)
        return cfg, path

    yield apply
    wsconfig.override(None)


def wait_until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s")


class Tap:
    """A queue bound to the test's exchange: reads what the relay published, in order."""

    def __init__(self, exchange: str, queue: str, binding: str = "#"):
        self.exchange, self.queue = exchange, queue
        self.conn = Connection(settings.AMQP_URL, connect_timeout=5)
        self.conn.connect()
        self.channel = self.conn.channel()
        self.channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        self.channel.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-expires": 15 * 60 * 1000})
        self.channel.queue_bind(queue, exchange, binding)

    def count(self) -> int:
        return self.channel.queue_declare(self.queue, passive=True).message_count

    def drain(self, *, expect: int | None = None, timeout: float = 10.0, idle: float = 0.5) -> list:
        """All messages (as (envelope dict, amqp message)), waiting up to `timeout` for `expect` of them."""
        out = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            msg = self.channel.basic_get(self.queue, no_ack=True)
            if msg is None:
                if expect is not None and len(out) >= expect and time.monotonic() - last > idle:
                    break
                if expect is None and time.monotonic() - last > idle:
                    break
                time.sleep(0.02)
                continue
            last = time.monotonic()
            out.append((json.loads(msg.body), msg))
        return out

    def consume_all(self, *, expect: int, timeout: float = 60.0, idle: float = 1.0) -> list[tuple[bytes, dict]]:
        """Fast path for big drains: (body, headers) of every message, in queue order."""
        out: list[tuple[bytes, dict]] = []
        ch = self.conn.channel()
        ch.basic_qos(0, 1000, False)
        ch.basic_consume(self.queue, no_ack=True, callback=lambda m: out.append((m.body, m.headers or {})))
        deadline = time.monotonic() + timeout
        last_len, last_change = 0, time.monotonic()
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                self.conn.drain_events(timeout=0.2)
            if len(out) != last_len:
                last_len, last_change = len(out), time.monotonic()
            elif len(out) >= expect and time.monotonic() - last_change > idle:
                break
        ch.close()
        return out

    def close(self) -> None:
        try:
            self.channel.queue_delete(self.queue)
            self.channel.exchange_delete(self.exchange)
        finally:
            self.conn.release()


@pytest.fixture
def tap(names):
    taps = []

    def make(binding: str = "#", queue: str | None = None) -> Tap:
        t = Tap(names["exchange"], queue or f"{names['tap']}.{len(taps)}", binding)
        taps.append(t)
        return t

    yield make
    for t in taps:
        t.close()


@pytest.fixture
def cleanup_queues():
    """Queue names to delete after the test (consumers declare their own)."""
    queues: list[str] = []
    yield queues
    with Connection(settings.AMQP_URL, connect_timeout=5) as conn:
        ch = conn.channel()
        for q in queues:
            try:
                ch.queue_delete(q)
            except Exception:  # noqa: BLE001 - already gone
                ch = conn.channel()


class Background:
    """Runs a loop (relay, consumer) in a thread; stops and joins it at the end of the test."""

    def __init__(self):
        self.threads: list[tuple[threading.Thread, threading.Event]] = []
        self.errors: list[BaseException] = []

    def start(self, target, stop: threading.Event, name: str) -> threading.Thread:
        def run():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by the fixture
                self.errors.append(exc)
                raise
            finally:
                connection.close()

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append((t, stop))
        return t

    def stop_all(self) -> None:
        for _, stop in self.threads:
            stop.set()
        for t, _ in self.threads:
            t.join(timeout=20)


@pytest.fixture
def background():
    bg = Background()
    yield bg
    bg.stop_all()
    assert not bg.errors, bg.errors


def subprocess_env(config_path: Path, **extra) -> dict:
    """Environment for a manage.py subprocess that sees this test's database and configuration."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{db['NAME']}",
            "WORKSTREAM_CONFIG": str(config_path),
            "AMQP_URL": settings.AMQP_URL,
            "REDIS_URL": settings.REDIS_URL,
            "LOG_FORMAT": "plain",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def manage_py() -> list[str]:
    return [sys.executable, str(BASE_DIR / "manage.py")]
