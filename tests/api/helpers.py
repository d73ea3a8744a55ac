"""Assertions and builders shared by the API tests."""

from __future__ import annotations

from workitems import services
from workitems.models import WorkItem

PROBLEM_CT = "application/problem+json"
TYPE_BASE = "https://workstream.dev/problems/"


def assert_problem(
    resp, status: int, kind: str, *, detail_contains: str | None = None, clear_detail: bool = True
) -> dict:
    """`resp` is an RFC 9457 problem of `kind` with `status`; returns the body.

    Checks the media type, `type` (a URI ending in the kind), a `title`, `status` equal to
    the HTTP status, a human `detail` (no Python reprs) and `instance` (the request path).
    """
    content = resp.content.decode(errors="replace")
    assert resp.status_code == status, f"expected {status} {kind}, got {resp.status_code}: {content[:500]}"
    assert resp["Content-Type"].split(";")[0].strip() == PROBLEM_CT, resp["Content-Type"]
    body = resp.json()
    assert body["type"].startswith(TYPE_BASE) and body["type"].endswith("/" + kind), body
    assert isinstance(body["title"], str) and body["title"].strip(), body
    assert body["status"] == status, body
    assert isinstance(body["detail"], str) and body["detail"].strip(), body
    if clear_detail:
        assert "ErrorDetail(" not in body["detail"], f"detail is a Python repr: {body['detail']}"
    path = resp.wsgi_request.path if getattr(resp, "wsgi_request", None) is not None else None
    if path is not None:
        assert body["instance"] == path, body
    else:
        assert isinstance(body["instance"], str), body
    if detail_contains is not None:
        assert detail_contains in body["detail"], body["detail"]
    return body


def assert_field_error(body: dict, field: str, message_contains: str | None = None) -> dict:
    """The problem's `errors` names `field` (and the message says what is wrong)."""
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, body
    for err in errors:
        assert set(err) >= {"field", "message"}, err
        assert isinstance(err["message"], str) and err["message"], err
    matching = [e for e in errors if e["field"] == field]
    assert matching, f"no error for field {field!r} in {errors}"
    if message_contains is not None:
        assert any(message_contains in e["message"] for e in matching), matching
    return matching[0]


def item_state(item_id: int) -> tuple[str, int, int | None]:
    """(state, version, assignee_id) as stored."""
    return WorkItem.objects.values_list("state", "version", "assignee_id").get(pk=item_id)


def drive(item: WorkItem, state: str, *, worker, supervisor) -> WorkItem:
    """Take an OFFERED `item` to `state` through the services (the worker holds it)."""
    if state == "OFFERED":
        return item
    if state == "SUSPENDED":
        item = drive(item, "ASSIGNED", worker=worker, supervisor=supervisor)
        return services.work_item_suspend(item_id=item.pk, actor=supervisor, reason="on hold")
    item = services.work_item_claim(item_id=item.pk, actor=worker)
    if state == "ASSIGNED":
        return item
    item = services.work_item_start(item_id=item.pk, actor=worker)
    if state == "IN_PROGRESS":
        return item
    if state == "COMPLETED":
        return services.work_item_complete(item_id=item.pk, actor=worker, result={"ok": True})
    raise ValueError(state)


def create_body(queue, /, **overrides) -> dict:
    """A valid create body for `queue` with `overrides` (which may replace `queue` itself)."""
    from tests import factories

    body = factories.item_body(queue)
    body.update(overrides)
    return body
