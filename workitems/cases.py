"""Case reads, with the item visibility rule built in: a caller sees a case when it sees every
item (admins, supervisors, service clients) or at least one of the case's items, and within it
only the items it sees, and only their audit records. The commands that change cases are in
workitems.services.cases."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from audit.models import AuditRecord
from config.timefmt import isoformat_z
from directory.roles import roles_of
from workitems import policy, schemas
from workitems.errors import NotFound
from workitems.models import Case, WorkItem, default_sensitive_roles
from workitems.selectors import work_item_list_for

# A case number travels in paths (/cases/{case_number}) and filters: letters, digits and . _ : -
CASE_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


def case_list_for(*, actor) -> QuerySet[Case]:
    """The cases `actor` may see: every case for those who see every item; else the cases
    holding at least one item it sees (policy.visible_filter)."""
    qs = Case.objects.select_related("created_by")
    if actor is not None and not actor.is_authenticated:
        return qs.none()
    visible = policy.visible_filter(actor)
    if visible is None:
        return qs
    return qs.filter(Exists(WorkItem.objects.filter(visible, case_id=OuterRef("case_number"))))


def case_get_for(*, actor, case_number: str) -> Case:
    """One case `actor` may see; NotFound otherwise (the two are not told apart). What cannot
    be a case number (NUL, which PostgreSQL refuses, among others) is no case."""
    if not isinstance(case_number, str) or not CASE_NUMBER.fullmatch(case_number):
        raise NotFound(f"case {schemas.printable(str(case_number))[:120]!r} not found")
    case = case_list_for(actor=actor).filter(case_number=case_number).first()
    if case is None:
        raise NotFound(f"case {case_number!r} not found")
    return case


def case_items_for(*, actor, case: Case) -> QuerySet[WorkItem]:
    """The case's items `actor` sees, oldest first."""
    return work_item_list_for(actor=actor).filter(case_id=case.case_number).order_by("created_at", "id")


def case_history_for(*, actor, case: Case) -> QuerySet[AuditRecord]:
    """The routing history: every audit record of the case's items `actor` sees, and the case's
    own records (create, close, reopen), in the order they were written (record ids come from
    one sequence). Records of items the caller does not see are left out, not masked."""
    items = case_items_for(actor=actor, case=case).order_by().values("pk")
    return AuditRecord.objects.filter(Q(work_item_id__in=items) | Q(stream=case_stream(case))).order_by("id")


def case_stream(case: Case) -> str:
    """The audit stream of the case's own changes."""
    return f"case:{case.pk}"


def sees_case_sensitive(actor, case: Case) -> bool:
    """Who reads the case's sensitive data keys unmasked: the system, the client that created it,
    and the platform roles that read a queue's sensitive keys by default (admin, supervisor)."""
    if actor is None:
        return True
    if case.created_by_id is not None and case.created_by_id == actor.pk:
        return True
    return bool(roles_of(actor) & frozenset(default_sensitive_roles()))


def case_snapshot(case: Case, *, unmasked: bool = True) -> dict[str, Any]:
    """The case's own fields, its sensitive data keys masked unless `unmasked` (as the API shows
    it; its audit records hold it masked: the audit trail is read by every auditor)."""
    keys = case.sensitive_keys or []
    data = case.data or {}
    if keys and not unmasked:
        data = {k: (policy.MASK if k in keys else v) for k, v in data.items()}
    return {
        "id": case.pk,
        "case_number": case.case_number,
        "title": case.title,
        "data": data,
        "sensitive_keys": keys,
        "state": case.state,
        "due_at": isoformat_z(case.due_at),
        "version": case.version,
        "created_by": case.created_by.username if case.created_by_id else None,
        "created_at": isoformat_z(case.created_at),
        "updated_at": isoformat_z(case.updated_at),
        "closed_at": isoformat_z(case.closed_at),
    }
