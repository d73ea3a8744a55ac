"""The SDK against the real server: pytest-django's live_server (a real Django server in a
thread on the transactional PostgreSQL test database), real auth, real throttle, real
idempotency store. No mocks."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import workstream_client as wc
from axes.utils import reset as axes_reset

from tests import factories
from workitems.models import WorkItem as WorkItemRow


def body(q, **overrides) -> dict:
    n = uuid.uuid4().hex[:8]
    return {"workflow_id": f"wf-{n}", "run_id": f"run-{n}", "task_name": "review", "queue": q.name, **overrides}


def test_create_claim_next_start_complete(ws, worker_client, alice, queue):
    created = ws.create_work_item(**body(queue, title="Review claim", priority=70, context_data={"claim": 8812}))
    assert isinstance(created, wc.WorkItem)
    assert created.state == "OFFERED" and created.version == 1 and created.priority == 70
    assert created.queue == queue.name and created.context_data == {"claim": 8812}
    assert created.created_at is not None and created.created_at.tzinfo is not None

    w = worker_client(alice)
    item = w.claim_next(queue=queue.name)
    assert item is not None and item.id == created.id
    assert item.state == "ASSIGNED" and item.assignee == "alice" and "start" in item.allowed_actions
    item = w.start(item.id, if_match=item.version)
    assert item.state == "IN_PROGRESS"
    item = w.complete(item.id, result={"approved": True}, if_match=item.version)
    assert item.state == "COMPLETED" and item.result == {"approved": True} and item.completed_at is not None

    assert w.claim_next(queue=queue.name) is None  # 204: nothing left

    again = ws.get_work_item(created.id)
    assert again.state == "COMPLETED" and again.version == item.version
    assert again["id"] == created.id  # raw access
    actions = [r["action"] for r in ws.history(created.id)]
    assert actions == ["create", "claim", "start", "complete"]


def test_a_reserved_item_is_rejected_then_accepted(ws, worker_client, alice, carol, team_a):
    from datetime import timedelta

    push = factories.queue(
        "push-queue", groups=[team_a], strategy="round_robin", reservation_timeout=timedelta(hours=1)
    )
    item = ws.create_work_item(**body(push))
    assert item.state == "OFFERED"
    first = WorkItemRow.objects.get(pk=item.id).reserved_for
    assert first is not None and first.username in ("alice", "carol")
    other = carol if first == alice else alice

    declined = worker_client(first).reject(item.id, reason="on another case", if_match=item.version)
    assert declined.state == "OFFERED"
    assert WorkItemRow.objects.get(pk=item.id).reserved_for == other
    with pytest.raises(wc.WorkstreamError):
        worker_client(first).accept(item.id)  # no longer theirs to take
    taken = worker_client(other).accept(item.id)
    assert taken.state == "ASSIGNED" and taken.assignee == other.username


def test_invalid_transition_is_a_409_with_the_allowed_actions(ws, worker_client, alice, queue):
    item = ws.create_work_item(**body(queue))
    w = worker_client(alice)
    item = w.claim(item.id)
    with pytest.raises(wc.InvalidTransitionError) as exc:
        w.complete(item.id, result={"ok": True})  # not started yet
    err = exc.value
    assert isinstance(err, wc.ConflictError)
    assert err.status == 409 and err.type.endswith("/invalid-transition")
    assert "start" in err.allowed_actions
    assert err.instance == f"/api/v1/workitems/{item.id}/complete"
    assert err.request_id  # the server's X-Request-ID

    with pytest.raises(wc.StaleVersionError) as exc:
        w.start(item.id, if_match=item.version - 1)
    assert exc.value.status == 412
    assert w.start(item.id, if_match=item.version).state == "IN_PROGRESS"


def test_validation_and_not_found_problems(ws, queue):
    with pytest.raises(wc.ValidationError) as exc:
        ws.create_work_item(workflow_id="wf", queue=queue.name)  # task_name missing
    assert exc.value.status == 400 and any(e["field"] == "task_name" for e in exc.value.errors)
    with pytest.raises(wc.NotFoundError):
        ws.get_work_item(999_999_999)
    with pytest.raises(wc.ValidationError):
        list(ws.list_work_items(no_such_filter=1))


def test_request_id_is_passed_through(ws, queue):
    item = ws.create_work_item(**body(queue))
    with pytest.raises(wc.NotFoundError) as exc:
        ws.get_work_item(item.id + 1_000_000, request_id="sdk-test-req-1")
    assert exc.value.request_id == "sdk-test-req-1"


def test_throttle_429_is_retried_after_retry_after(ws, sleeps, queue, config_override):
    item = ws.create_work_item(**body(queue))
    config_override({"rateLimits": {"default": "2/s"}})
    for _ in range(5):
        assert ws.get_work_item(item.id).id == item.id
    assert sleeps, "the throttle never answered 429"
    assert all(0 < s <= 1.0 for s in sleeps)  # DRF's Retry-After: the seconds left in the window


def test_throttle_429_surfaces_when_retries_are_off(live_server, svc, queue, config_override):
    with wc.WorkstreamClient(live_server.url, username="svc", password="pw-svc", max_retries=0) as c:
        c.features()  # log in first: the token endpoint is throttled per IP, not per user
        config_override({"rateLimits": {"default": "2/s"}})
        c.features()  # the second request of this second
        with pytest.raises(wc.RateLimitedError) as exc:
            c.features()
    assert exc.value.status == 429 and exc.value.retry_after == 1


def test_pagination_follows_next(ws, worker_client, alice, queue):
    created = ws.create_work_items([body(queue, priority=p) for p in range(7)])
    assert len(created) == 7 and all(isinstance(i, wc.WorkItem) for i in created)
    ids = {i.id for i in created}

    listed = list(ws.list_work_items(queue=queue.name, page_size=3, ordering="priority"))
    assert [i.id for i in listed] == [i.id for i in sorted(created, key=lambda i: i.priority)]

    page = ws.list_work_items_page(queue=queue.name, page_size=3)
    assert len(page) == 3 and page.next and page.previous is None
    seen = [i.id for i in page]
    while page.next:
        page = ws.list_work_items_page(page.next)
        seen += [i.id for i in page]
    assert sorted(seen) == sorted(ids) and len(seen) == 7

    # filters: repeatable state, and what a worker sees
    w = worker_client(alice)
    w.claim(created[0].id)
    states = {i.state for i in w.list_work_items(queue=queue.name, state=["ASSIGNED", "OFFERED"])}
    assert states == {"ASSIGNED", "OFFERED"}
    mine = list(w.list_work_items(assignee="me"))
    assert [i.id for i in mine] == [created[0].id]


def test_bulk_create_names_the_bad_index_and_creates_nothing(ws, queue):
    before = WorkItemRow.objects.count()
    bad = body(queue)
    del bad["task_name"]
    with pytest.raises(wc.ValidationError) as exc:
        ws.create_work_items([body(queue), bad, body(queue)])
    assert exc.value.status == 400 and any(e["field"].startswith("items[1]") for e in exc.value.errors)
    with pytest.raises(wc.NotFoundError) as exc:
        ws.create_work_items([body(queue), body(queue, queue="no-such-queue")])
    assert "items[1]" in exc.value.detail
    assert WorkItemRow.objects.count() == before


def test_an_explicit_idempotency_key_replays_the_first_create(ws, queue):
    b = body(queue)
    first = ws.create_work_item(idempotency_key="create-once-1", **b)
    second = ws.create_work_item(idempotency_key="create-once-1", **b)
    assert second.id == first.id and second == first
    assert WorkItemRow.objects.filter(workflow_id=b["workflow_id"]).count() == 1
    with pytest.raises(wc.IdempotencyKeyReusedError) as exc:
        ws.create_work_item(idempotency_key="create-once-1", **{**b, "priority": 99})
    assert exc.value.status == 422


def test_a_create_whose_answer_is_lost_is_retried_without_a_duplicate(
    live_server, svc, api_key_for, queue, dropping_proxy
):
    proxy = dropping_proxy(method="POST", path="/api/v1/workitems", drop=1)
    b = body(queue)
    with wc.WorkstreamClient(proxy.url, username="svc", password="pw-svc", sleep=lambda s: None) as c:
        item = c.create_work_item(**b)
    posts = [s for s in proxy.seen if s[:2] == ("POST", "/api/v1/workitems")]
    assert len(posts) == 2 and [s[3] for s in posts] == [201, 201]  # done, answer lost; then replayed
    assert posts[0][2]["Idempotency-Key"] == posts[1][2]["Idempotency-Key"]
    assert WorkItemRow.objects.filter(workflow_id=b["workflow_id"]).count() == 1
    assert WorkItemRow.objects.get(workflow_id=b["workflow_id"]).pk == item.id


def test_a_claim_next_whose_answer_is_lost_is_not_claimed_twice(live_server, alice, ws, queue, dropping_proxy):
    a, b = ws.create_work_item(**body(queue)), ws.create_work_item(**body(queue))
    proxy = dropping_proxy(method="POST", path="/api/v1/workitems/claim-next", drop=1)
    with wc.WorkstreamClient(proxy.url, username="alice", password="pw-alice", sleep=lambda s: None) as c:
        got = c.claim_next(queue=queue.name)
    assert got.id in (a.id, b.id)
    assert WorkItemRow.objects.filter(assignee=alice).count() == 1  # the replay, not a second claim


def test_password_login_and_refresh(worker_client, alice, ws, queue):
    ws.create_work_item(**body(queue))
    w = worker_client(alice)
    assert [i.queue for i in w.list_work_items()] == [queue.name]
    w._access = "expired.or.garbage"  # the next request answers 401: refresh, then retry once
    assert len(list(w.list_work_items())) == 1
    assert w._access != "expired.or.garbage"


def test_no_or_bad_credentials_are_a_401(live_server, transactional_db):
    with wc.WorkstreamClient(live_server.url) as c, pytest.raises(wc.UnauthorizedError) as exc:
        c.features()
    assert exc.value.status == 401 and exc.value.type.endswith("/unauthorized")
    with wc.WorkstreamClient(live_server.url, token="not-a-jwt") as c, pytest.raises(wc.UnauthorizedError):
        c.features()
    # A username of its own: django-axes counts failed logins per username and IP in a cache
    # that every test run on this machine shares.
    name = f"sdk-{uuid.uuid4().hex[:10]}"
    factories.user(name, roles=["worker"])
    try:
        with (
            wc.WorkstreamClient(live_server.url, username=name, password="wrong") as c,
            pytest.raises(wc.UnauthorizedError),
        ):
            c.features()
    finally:
        axes_reset(ip="127.0.0.1", username=name)


def test_api_key_auth(live_server, svc, api_key_for, queue):
    with wc.WorkstreamClient(live_server.url, api_key=api_key_for(svc)) as c:
        item = c.create_work_item(**body(queue))
        assert c.get_work_item(item.id).id == item.id
    with wc.WorkstreamClient(live_server.url, api_key="nope.nope") as c, pytest.raises(wc.UnauthorizedError):
        c.features()


def test_queues_features_audit_health(ws, queue, worker_client, sam):
    assert queue.name in [q.name for q in ws.list_queues()]
    q = ws.get_queue(queue.name)
    assert isinstance(q, wc.Queue) and q.name == queue.name and q.strategy == "offer"
    item = ws.create_work_item(**body(queue))
    assert isinstance(ws.features(), dict)
    assert ws.health()
    with pytest.raises(wc.NotAllowedError):
        list(ws.list_audit(work_item=item.id))  # the audit trail is for supervisors
    supervisor = worker_client(sam)
    records = list(supervisor.list_audit(work_item=item.id))
    assert records and all(r["work_item"] == item.id for r in records)
    assert isinstance(supervisor.verify_audit(), dict)


def test_async_client_end_to_end(live_server, svc, alice, api_key_for, queue):

    async def main():
        async with (
            wc.AsyncWorkstreamClient(live_server.url, username="svc", password="pw-svc") as s,
            wc.AsyncWorkstreamClient(live_server.url, username="alice", password="pw-alice") as w,
        ):
            created = await s.create_work_items([body(queue) for _ in range(3)])
            listed = [i.id async for i in s.list_work_items(queue=queue.name, page_size=2)]
            item = await w.claim_next(queue.name)
            item = await w.start(item.id, if_match=item.version)
            try:
                await w.start(item.id)
            except wc.InvalidTransitionError as exc:
                err = exc
            done = await w.complete(item.id, result={"ok": True})
            return created, listed, done, err

    created, listed, done, err = asyncio.run(main())
    assert sorted(listed) == sorted(i.id for i in created)
    assert done.state == "COMPLETED" and "complete" in err.allowed_actions


def test_a_supervisor_updates_priority_and_dates(ws, worker_client, sam, alice, queue):
    from datetime import UTC, datetime

    created = ws.create_work_item(**body(queue, priority=30))
    boss = worker_client(sam)
    due = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    item = boss.update_work_item(created.id, priority=85, due_at=due, reason="VIP", if_match=created.version)
    assert (item.priority, item.due_at, item.version) == (85, due, created.version + 1)
    same = boss.update_work_item(item.id, priority=85)
    assert same.version == item.version  # nothing to change: no new version
    cleared = boss.update_work_item(item.id, due_at=None)
    assert cleared.due_at is None
    with pytest.raises(wc.StaleVersionError):
        boss.update_work_item(item.id, priority=1, if_match=created.version)
    with pytest.raises(wc.NotAllowedError):
        worker_client(alice).update_work_item(item.id, priority=1)
    with pytest.raises(wc.ValidationError) as exc:
        boss.update_work_item(item.id, priority=500)
    assert "priority" in str(exc.value)


def test_skip_forward_and_claim_next_over_several_queues(ws, worker_client, alice, bob, team_a, team_b, queue):
    optional = ws.create_work_item(**body(queue, optional=True))
    assert optional.optional is True and "skip" in optional.allowed_actions
    skipped = ws.skip(optional.id, reason="no longer needed", if_match=optional.version)
    assert (skipped.state, skipped.outcome) == ("CANCELLED", "skipped")

    other = factories.queue("sdk-other", groups=[team_a], weight=4)
    low = ws.create_work_item(**body(other, priority=30))  # 4 × 30 beats 1 × 90
    ws.create_work_item(**body(queue, priority=90))
    w = worker_client(alice)
    got = w.claim_next(queue=[queue.name, other.name])
    assert got is not None and got.id == low.id

    forwarded = w.forward(got.id, groups=["team-b"], if_match=got.version)
    assert (forwarded.state, forwarded.assignee, forwarded.candidate_groups) == ("OFFERED", None, ["team-b"])
    assert worker_client(bob).claim(forwarded.id).assignee == "bob"
