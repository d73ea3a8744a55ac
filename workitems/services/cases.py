"""Case commands: create, close and reopen a case. Each is validated, applied and audited
(stream `case:<id>`) in one transaction; the REST API and the admin call these. Items join a
case on create (services.create resolves the `case` a body names)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from workitems import policy, schemas
from workitems.cases import CASE_NUMBER, case_get_for, case_snapshot, case_stream
from workitems.errors import Conflict, InvalidTransition, NotAllowed, StaleVersion, ValidationFailed
from workitems.models import CREATE, OPEN_STATES, Case, CaseState

CASE_FIELDS = ("case_number", "title", "data", "sensitive_keys", "due_at")
CASE_ACTIONS = {"close": (CaseState.OPEN, CaseState.CLOSED), "reopen": (CaseState.CLOSED, CaseState.OPEN)}


def _check_may_manage(actor, what: str) -> None:
    """Cases are made and closed by those who create items: admins, supervisors, service clients."""
    if not policy.role_allows(CREATE, None, actor):
        raise NotAllowed(f"your roles do not allow {what} cases")


def _clean(data: Any) -> dict[str, Any]:
    """A create body, validated; ValidationFailed lists every problem."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "must be a JSON object"}])
    errors = schemas.nul_errors(data)
    if errors:
        raise ValidationFailed(errors)
    errors = [{"field": key, "message": "unknown field"} for key in sorted(set(data) - set(CASE_FIELDS))]
    number = data.get("case_number")
    if not isinstance(number, str) or not CASE_NUMBER.fullmatch(number):
        errors.append(
            {"field": "case_number", "message": "required: 1-100 letters, digits, '.', '_', ':' or '-' (not first)"}
        )
    title = data.get("title", "")
    if not isinstance(title, str) or len(title) > 500:
        errors.append({"field": "title", "message": "must be a string of at most 500 characters"})
    case_data = data.get("data", {})
    if not isinstance(case_data, dict):
        errors.append({"field": "data", "message": "must be a JSON object"})
    elif schemas.too_deep(case_data):
        errors.append({"field": "data", "message": f"nests more than {schemas.MAX_DEPTH} levels"})
    keys = data.get("sensitive_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        errors.append({"field": "sensitive_keys", "message": "must be a list of data keys"})
    raw_due = data.get("due_at")
    if raw_due is not None and not isinstance(raw_due, str):
        errors.append({"field": "due_at", "message": "an ISO 8601 date-time with a time zone, or null"})
        raw_due = None
    due_at = schemas.parse_time(raw_due, "due_at", errors)
    if errors:
        raise ValidationFailed(errors)
    return {"case_number": number, "title": title, "data": case_data, "sensitive_keys": keys, "due_at": due_at}


@transaction.atomic
def case_create(*, actor, data: dict) -> Case:
    """Open a case (admins, supervisors, service clients); a taken number is a Conflict."""
    _check_may_manage(actor, "creating")
    values = _clean(data)
    if Case.objects.filter(case_number=values["case_number"]).exists():
        raise Conflict(f"case {values['case_number']!r} already exists")
    now = timezone.now()
    case = Case(**values, created_by=actor if actor is not None and actor.pk else None, created_at=now, updated_at=now)
    # A concurrent create of the same number loses on the unique index: the savepoint turns
    # that into the same Conflict, not a 500.
    try:
        with transaction.atomic():
            case.save(force_insert=True)
    except IntegrityError:
        raise Conflict(f"case {values['case_number']!r} already exists") from None
    audit_record(stream=case_stream(case), action="case.create", actor=actor, data=case_snapshot(case, unmasked=False))
    return case


def _change_state(action: str, *, actor, case_number: str, expected_version: int | None, reason: str) -> Case:
    case_get_for(actor=actor, case_number=case_number)  # 404 before 403 for what one may not see
    _check_may_manage(actor, f"{action.rstrip('e')}ing")
    schemas.check_reason({"reason": reason})
    # The row lock orders the case's changes (and its audit stream) and waits for creates that
    # are joining items to it (they hold FOR KEY SHARE on the row until they commit), so the
    # open-item count below sees every item that joined before the close.
    case = Case.objects.select_for_update().get(case_number=case_number)
    if expected_version is not None and case.version != expected_version:
        raise StaleVersion(
            f"case {case_number} is at version {case.version}, not {expected_version}",
            expected=expected_version,
            current=case.version,
        )
    source, target = CASE_ACTIONS[action]
    if case.state != source:
        other = next(a for a, (s, _) in CASE_ACTIONS.items() if s == case.state)
        raise InvalidTransition(
            f"case {case_number} is {case.state}: it cannot {action}",
            action=action,
            state=case.state,
            allowed_actions=[other],
        )
    if action == "close":
        still_open = case.work_items.filter(state__in=OPEN_STATES).count()
        if still_open:
            raise Conflict(
                f"case {case_number} has {still_open} open item(s): complete or cancel them before closing it"
            )
    now = timezone.now()
    case.state = target
    case.closed_at = now if target == CaseState.CLOSED else None
    case.version += 1
    case.updated_at = now
    case.save(update_fields=["state", "closed_at", "version", "updated_at"])
    audit_record(
        stream=case_stream(case),
        action=f"case.{action}",
        actor=actor,
        from_state=source,
        to_state=target,
        data={"reason": reason} if reason else {},
    )
    return case


@transaction.atomic
def case_close(*, actor, case_number: str, expected_version: int | None = None, reason: str = "") -> Case:
    """Close an open case; refused (Conflict) while any of its items is open: a closed case
    holds only finished work, and no item joins it until it is reopened."""
    return _change_state(
        "close", actor=actor, case_number=case_number, expected_version=expected_version, reason=reason
    )


@transaction.atomic
def case_reopen(*, actor, case_number: str, expected_version: int | None = None, reason: str = "") -> Case:
    """Reopen a closed case: items may join it again."""
    return _change_state(
        "reopen", actor=actor, case_number=case_number, expected_version=expected_version, reason=reason
    )
