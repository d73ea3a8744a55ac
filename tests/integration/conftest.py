"""A real streaming replica of the test database for the session (tests/integration/standby.py).

The standby is started after pytest-django has made the test database on the primary, so the
base backup holds it; each pytest-xdist worker starts its own (its own port and directory) and
removes it at the end. It is the database alias `replica`, a test mirror of `default` for
Django's test machinery (never flushed: a standby is read-only), but connected to the standby.
Where the standby cannot be made, the tests fail (never skip) naming what is missing."""

from __future__ import annotations

import copy
import time

import pytest
from django.db import DatabaseError, connections

from tests.integration.standby import Standby, StandbyError, free_port

REPLICA = "replica"
UNREACHABLE = "replica_down"  # a port nobody listens on: its connections are refused


@pytest.fixture(scope="session")
def standby(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        primary = connections["default"].settings_dict
        with connections["default"].cursor() as cur:
            server = None
            try:
                server = Standby(
                    cur,
                    host=primary["HOST"] or "127.0.0.1",
                    port=int(primary["PORT"] or 5432),
                    user=primary["USER"] or "postgres",
                )
                server.start()
            except (StandbyError, OSError) as exc:
                tail = server.log_tail() if server else ""
                if server:
                    server.stop()
                pytest.fail(f"the replica tests need a real streaming standby: {exc}\n{tail}", pytrace=False)
    yield server
    server.stop()


def add_alias(alias: str, *, port: int) -> None:
    """A database alias like `default` (the test database) on another server's port."""
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    settings_dict["OPTIONS"]["connect_timeout"] = 2
    settings_dict["TEST"]["MIRROR"] = "default"  # not flushed between tests, not created or dropped
    connections.settings[alias] = settings_dict


def remove_alias(alias: str) -> None:
    connections[alias].close()
    del connections[alias]
    del connections.settings[alias]


@pytest.fixture(scope="session")
def replica_alias(standby, django_db_blocker):
    add_alias(REPLICA, port=standby.port)
    with django_db_blocker.unblock():
        wait_for_replica(REPLICA, timeout=60)  # the standby's first connections wait for consistency
    yield REPLICA
    remove_alias(REPLICA)


@pytest.fixture(scope="session")
def unreachable_alias():
    add_alias(UNREACHABLE, port=free_port())
    yield UNREACHABLE
    remove_alias(UNREACHABLE)


def wait_for_replica(alias: str = REPLICA, timeout: float = 15.0) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    with connections["default"].cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()::text")
        target = cur.fetchone()[0]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with connections[alias].cursor() as cur:
                cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                if cur.fetchone()[0]:
                    return
        except DatabaseError as exc:  # a standby still starting refuses connections
            last = exc
            connections[alias].close()
        time.sleep(0.05)
    pytest.fail(f"the replica did not replay up to {target} in {timeout} s ({last})", pytrace=False)
