"""Inbound commands from the event bus, applied idempotently through the service layer.

A command is a JSON object on `eventBus.commandQueue`:

    {"command_id": "<1–64 chars, unique per command>", "command": "create" | "<action>",
     "actor": "<username>", "correlation_id": "<optional>",
     "data": {...create body...},                       # create
     "item_id": 42, "expected_version": 3,              # every action (version optional)
     "result": {...}, "reason": "...", "user": "...", "sub_status": "...",   # as the action takes
     "users": [...], "groups": [...]}                                         # forward

`<action>` is any action of the action table a caller fires by id (claim, release, start,
complete, fail, suspend, resume, delegate, assign, escalate, cancel, skip, forward,
set_sub_status, accept, reject, move: the same commands, arguments and checks as the REST routes).

It is applied at most once: the inbox row (`command_id` unique) is inserted
first, in the same transaction as the change, its audit record and the outcome
event (`command.applied.v1` / `command.rejected.v1`, with the command's
`correlation_id`). A second delivery either finds the row, or waits on the first
delivery's uncommitted insert and then finds it; either way it changes nothing.
A Redis key (24 h) lets most duplicates skip the database altogether.

A command the domain refuses (invalid transition, not allowed, unknown item or
user, bad input) is an *outcome*, published as `command.rejected.v1`; only a
message that is not a command at all (or keeps failing) is poison.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from config import context
from config.retry import retry_transient
from events.models import InboxCommand
from events.outbox import outbox_enqueue
from events.wakeup import redis_client
from workitems import schemas, services
from workitems.errors import NotAllowed, ValidationFailed, WorkstreamError
from workitems.models import ACTIONS, CALLER_ACTIONS, CREATE
from workitems.snapshots import work_item_snapshot

log = logging.getLogger(__name__)

COMMANDS = (CREATE, *CALLER_ACTIONS)
FAST_PATH_TTL = 24 * 3600
MAX_COMMAND_ID = 64
APPLIED, REJECTED, DUPLICATE = "applied", "rejected", "duplicate"
# The envelope's text fields, stored as they come (inbox row, outcome event, request id).
ENVELOPE = ("command_id", "actor", "correlation_id")


class Poison(Exception):
    """The message is not a valid command; it goes to the dead-letter queue with this reason."""


def fast_path_key(command_id: str) -> str:
    return f"workstream:command:{command_id}"


def parse(body: bytes) -> dict[str, Any]:
    """The command in `body`, or Poison naming what is wrong."""
    try:
        cmd = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Poison(f"not JSON: {exc}") from None
    except RecursionError:  # nested past what the parser can follow
        raise Poison(f"not a command: JSON nested deeper than {schemas.MAX_DEPTH} levels") from None
    if schemas.too_deep(cmd):
        raise Poison(f"not a command: JSON nested deeper than {schemas.MAX_DEPTH} levels")
    if not isinstance(cmd, dict):
        raise Poison("not a JSON object")
    command_id = cmd.get("command_id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= MAX_COMMAND_ID:
        raise Poison(f"command_id must be a string of 1–{MAX_COMMAND_ID} characters")
    if cmd.get("command") not in COMMANDS:
        raise Poison(f"command must be one of {', '.join(COMMANDS)}")
    if not isinstance(cmd.get("actor"), str) or not cmd["actor"]:
        raise Poison("actor (a username) is required")
    correlation_id = cmd.get("correlation_id", "")
    if not isinstance(correlation_id, str) or len(correlation_id) > 200:
        raise Poison("correlation_id must be a string of at most 200 characters")
    # What the inbox and the outcome event store as text: refused here, as the REST parser
    # refuses it (schemas.nul_errors), rather than failing in the database on every delivery.
    # The create body and the action arguments are checked by the commands themselves.
    envelope = {key: cmd[key] for key in ENVELOPE if key in cmd}
    if unstorable := schemas.nul_errors(envelope):
        raise Poison("; ".join(f"{e['field']} {e['message']}" for e in unstorable))
    if cmd["command"] == "create":
        if not isinstance(cmd.get("data"), dict):
            raise Poison("create needs data (the create body, an object)")
    else:
        item_id = cmd.get("item_id")
        if not isinstance(item_id, int) or isinstance(item_id, bool) or item_id <= 0:
            raise Poison(f"{cmd['command']} needs item_id (a positive integer)")
        version = cmd.get("expected_version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise Poison("expected_version must be an integer")
    return cmd


def seen(command_id: str) -> bool:
    """The fast path: True when this command is known to be applied (Redis, set after commit)."""
    try:
        return bool(redis_client().exists(fast_path_key(command_id)))
    except Exception:  # noqa: BLE001 - Redis is an optimisation; the inbox table decides
        log.warning("command fast path unavailable", exc_info=True)
        return False


def remember(command_id: str) -> None:
    try:
        redis_client().set(fast_path_key(command_id), b"1", ex=FAST_PATH_TTL)
    except Exception:  # noqa: BLE001
        log.warning("could not record command %s in the fast path", command_id, exc_info=True)


def _claim_inbox(cmd: dict) -> int | None:
    """Insert the inbox row; None when the command was already applied (or is being applied)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO events_inboxcommand (command_id, command, correlation_id, actor_username, outcome, received_at)
            VALUES (%s, %s, %s, %s, '', now())
            ON CONFLICT (command_id) DO NOTHING
            RETURNING id
            """,
            [cmd["command_id"], cmd["command"], cmd.get("correlation_id", ""), cmd["actor"][:150]],
        )
        row = cur.fetchone()
    return row[0] if row else None


def _run(cmd: dict):
    user = get_user_model().objects.filter(username=cmd["actor"]).first()
    if user is None or not user.is_active:
        raise NotAllowed(f"unknown or inactive actor {cmd['actor']!r}")
    name = cmd["command"]
    if name == "create":
        data = dict(cmd["data"])
        if cmd.get("correlation_id"):
            data.setdefault("correlation_id", cmd["correlation_id"])
        return services.work_item_create(actor=user, data=data)
    args = schemas.action_arguments(ACTIONS[name].args, cmd)
    if "user" in ACTIONS[name].args and "override" in cmd:
        args["override"] = cmd["override"]  # a supervisor's, as over REST; the command checks it
    if name == "update" and "reason" in cmd:
        args["reason"] = cmd["reason"]  # for the audit trail, as PATCH takes it; the command checks it
    return services.COMMANDS[name](
        item_id=cmd["item_id"], actor=user, expected_version=cmd.get("expected_version"), **args
    )


def apply(cmd: dict) -> str:
    """Apply a parsed command once: APPLIED, REJECTED, or DUPLICATE (nothing done).

    A deadlock, serialization failure or lock timeout runs the whole transaction again
    (config.retry); unexpected errors, and TransientConflict after the last attempt,
    propagate with everything rolled back (the consumer retries, then dead-letters).
    """
    return retry_transient(lambda: _apply_once(cmd), where="bus")


def _apply_once(cmd: dict) -> str:
    corr = cmd.get("correlation_id", "")
    rid = context.clean_request_id(corr or cmd["command_id"])
    with context.acting(channel="event", request_id=rid), transaction.atomic():
        inbox_id = _claim_inbox(cmd)
        if inbox_id is None:
            return DUPLICATE
        item, error = None, None
        try:
            with transaction.atomic():
                item = _run(cmd)
        except WorkstreamError as exc:
            error = {"type": exc.kind, "detail": exc.detail}
            if isinstance(exc, ValidationFailed):
                error["errors"] = exc.errors
        outcome = APPLIED if error is None else REJECTED
        InboxCommand.objects.filter(pk=inbox_id).update(
            outcome=outcome, work_item_id=item.pk if item else None, error=error
        )
        payload = {
            "command_id": cmd["command_id"],
            "command": cmd["command"],
            "actor": cmd["actor"],
            "outcome": outcome,
            "item_id": item.pk if item else cmd.get("item_id"),
        }
        if item is not None:
            payload["work_item"] = work_item_snapshot(item)
        else:
            payload["error"] = error
        outbox_enqueue(
            event_type=f"command.{outcome}.v1",
            aggregate_type="command",
            aggregate_id=cmd["command_id"],
            sequence=1,
            correlation_id=corr,
            payload=payload,
        )
    return outcome
