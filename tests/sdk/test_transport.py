"""Retries, idempotency keys, auth refresh and pagination over real HTTP against a scripted
server on 127.0.0.1 (for what the real server can't be made to do on demand: 502/503/504,
refused connections, slow answers, expiring tokens). The same behaviours against the real
Workstream server are in test_live.py."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import workstream_client as wc

from tests.sdk.scripted import Reply, ScriptedServer, closed_port_url, problem

ITEM = {"id": 1, "state": "OFFERED", "version": 1, "queue": "q", "workflow_id": "wf", "task_name": "t"}


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(server, sleeps):
    with wc.WorkstreamClient(server.url, api_key="k", sleep=sleeps.append, timeout=5) as c:
        yield c


def test_gateway_errors_are_retried_with_the_same_idempotency_key(server, client, sleeps):
    server.replies = [Reply(503), problem("server-error", 502), Reply(504, b"gateway timeout"), Reply(201, ITEM)]
    item = client.create_work_item(workflow_id="wf", task_name="t", queue="q")
    assert item.id == 1
    assert [r.method for r in server.requests] == ["POST"] * 4
    keys = {r.headers["idempotency-key"] for r in server.requests}
    assert len(keys) == 1 and uuid.UUID(keys.pop()).version == 4
    assert len({r.body for r in server.requests}) == 1  # the same bytes, so the server replays
    assert len(sleeps) == 3
    assert all(0 <= s <= c for s, c in zip(sleeps, (0.2, 0.4, 0.8), strict=True))


def test_each_call_gets_its_own_key_and_a_given_key_is_used(server, client):
    server.replies = [Reply(201, ITEM), Reply(201, ITEM), Reply(201, ITEM)]
    client.create_work_item(workflow_id="wf", task_name="t", queue="q")
    client.create_work_item(workflow_id="wf", task_name="t", queue="q")
    client.create_work_item(workflow_id="wf", task_name="t", queue="q", idempotency_key="order-42")
    keys = [r.headers["idempotency-key"] for r in server.requests]
    assert keys[0] != keys[1] and keys[2] == "order-42"


def test_gives_up_after_max_retries(server, sleeps):
    server.replies = [Reply(503)] * 10
    with (
        wc.WorkstreamClient(server.url, api_key="k", sleep=sleeps.append, max_retries=2) as c,
        pytest.raises(wc.ServerError) as exc,
    ):
        c.get_work_item(1)
    assert exc.value.status == 503
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_max_retries_zero_means_one_attempt(server, sleeps):
    server.replies = [Reply(503), Reply(200, ITEM)]
    with (
        wc.WorkstreamClient(server.url, api_key="k", sleep=sleeps.append, max_retries=0) as c,
        pytest.raises(wc.ServerError),
    ):
        c.get_work_item(1)
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("reply", "cls"),
    [
        (problem("validation-error", 400, errors=[{"field": "queue", "message": "required"}]), wc.ValidationError),
        (problem("unauthorized", 401), wc.UnauthorizedError),
        (problem("not-allowed", 403), wc.NotAllowedError),
        (problem("not-found", 404), wc.NotFoundError),
        (problem("invalid-transition", 409, allowed_actions=["start"]), wc.InvalidTransitionError),
        (problem("idempotency-in-flight", 409), wc.IdempotencyInFlightError),
        (problem("stale-version", 412), wc.StaleVersionError),
        (problem("idempotency-key-reused", 422), wc.IdempotencyKeyReusedError),
        (problem("server-error", 500), wc.ServerError),
    ],
)
def test_other_errors_are_not_retried(server, client, sleeps, reply, cls):
    server.replies = [reply, Reply(200, ITEM)]
    with pytest.raises(cls) as exc:
        client.complete(1, result={"ok": True}, if_match=1)
    assert len(server.requests) == 1 and sleeps == []
    assert exc.value.status == reply.status
    assert server.requests[0].headers["if-match"] == '"1"'
    assert server.requests[0].json == {"result": {"ok": True}}


def test_429_honours_retry_after(server, client, sleeps):
    server.replies = [
        Reply(429, problem("rate-limited", 429).body, {"Retry-After": "2"}),
        Reply(429, problem("rate-limited", 429).body, {"Retry-After": "0"}),
        Reply(200, ITEM),
    ]
    assert client.get_work_item(1).id == 1
    assert sleeps == [2.0, 0.0]


def test_429_without_retry_after_backs_off(server, client, sleeps):
    server.replies = [problem("rate-limited", 429), Reply(200, ITEM)]
    client.get_work_item(1)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.2


def test_a_retry_after_beyond_the_limit_is_raised_not_waited(server, sleeps):
    server.replies = [Reply(429, problem("rate-limited", 429).body, {"Retry-After": "3600"})]
    with (
        wc.WorkstreamClient(server.url, api_key="k", sleep=sleeps.append) as c,
        pytest.raises(wc.RateLimitedError) as exc,
    ):
        c.get_work_item(1)
    assert exc.value.retry_after == 3600 and sleeps == [] and len(server.requests) == 1


def test_connection_refused_is_retried_then_raised(sleeps):
    with (
        wc.WorkstreamClient(closed_port_url(), api_key="k", sleep=sleeps.append) as c,
        pytest.raises(wc.ConnectionFailedError) as exc,
    ):
        c.create_work_item(workflow_id="wf", task_name="t", queue="q")
    assert len(sleeps) == 3
    assert "ConnectError" in str(exc.value) and exc.value.__cause__ is not None


def test_a_timed_out_post_is_retried_with_the_same_key(server, sleeps):
    server.replies = [Reply(201, ITEM, delay=1.0), Reply(201, ITEM)]
    with wc.WorkstreamClient(server.url, api_key="k", sleep=sleeps.append, timeout=0.3) as c:
        assert c.claim_next("q").id == 1
    assert len(server.requests) == 2 and len(sleeps) == 1
    assert server.requests[0].headers["idempotency-key"] == server.requests[1].headers["idempotency-key"]
    assert server.requests[0].json == {"queue": "q"}


def test_claim_next_204_is_none(server, client):
    server.replies = [Reply(204)]
    assert client.claim_next() is None
    assert server.requests[0].path == "/api/v1/workitems/claim-next" and server.requests[0].json == {}


def test_pagination_follows_next_links(server, client):
    def responder(seen):
        page = {"/api/v1/workitems?queue=q&state=OFFERED&state=ASSIGNED": 0}.get(seen.path)
        if page is None:
            page = int(seen.path.rsplit("=", 1)[1])
        nxt = f"{server.url}/api/v1/workitems?cursor={page + 1}" if page < 2 else None
        return Reply(200, {"results": [{"id": page * 2 + 1}, {"id": page * 2 + 2}], "next": nxt, "previous": None})

    server.responder = responder
    it = client.list_work_items(queue="q", state=["OFFERED", "ASSIGNED"])
    assert server.requests == []  # lazy
    assert [i.id for i in it] == [1, 2, 3, 4, 5, 6]
    assert [r.path for r in server.requests][1:] == ["/api/v1/workitems?cursor=1", "/api/v1/workitems?cursor=2"]
    page = client.list_work_items_page(queue="q", state=["OFFERED", "ASSIGNED"])
    assert [i.id for i in page] == [1, 2]
    page2 = client.list_work_items_page(page.next)
    assert [i.id for i in page2] == [3, 4]


def test_request_id_sent_and_reported(server, client):
    server.replies = [Reply(404, problem("not-found", 404).body, {"X-Request-ID": "req-9"})]
    with pytest.raises(wc.NotFoundError) as exc:
        client.get_work_item(5, request_id="req-9")
    assert server.requests[0].headers["x-request-id"] == "req-9"
    assert exc.value.request_id == "req-9"
    assert server.requests[0].headers["user-agent"].startswith("workstream-client/0.1.0")
    assert server.requests[0].headers["authorization"] == "Api-Key k"


def test_a_retried_delete_that_finds_nothing_succeeded_the_first_time(server, client):
    server.replies = [Reply(502), problem("not-found", 404)]
    assert client.delete_subscription(3) is None
    server.replies = [problem("not-found", 404)]
    with pytest.raises(wc.NotFoundError):
        client.delete_subscription(3)


def test_health_returns_an_unhealthy_body_without_retrying(server, client):
    server.replies = [Reply(503, {"status": "error", "checks": {}}, content_type="application/json")]
    assert client.health() == {"status": "error", "checks": {}}
    assert len(server.requests) == 1 and server.requests[0].path == "/health"


def _token_server(server, *, refresh_works=True):
    """Tokens a1 (expires at once), then a2 from refresh (or a3 from a second login)."""
    state = {"logins": 0}

    def responder(seen):
        if seen.path == "/api/v1/auth/token":
            state["logins"] += 1
            assert seen.json == {"username": "ann", "password": "pw"}
            assert "authorization" not in seen.headers and "idempotency-key" not in seen.headers
            return Reply(200, {"access": "a1" if state["logins"] == 1 else "a3", "refresh": "r1"})
        if seen.path == "/api/v1/auth/token/refresh":
            assert seen.json == {"refresh": "r1"}
            if not refresh_works:
                return problem("unauthorized", 401)
            return Reply(200, {"access": "a2"})
        if seen.headers.get("authorization") in ("Bearer a2", "Bearer a3"):
            return Reply(200, ITEM)
        return problem("unauthorized", 401)

    server.responder = responder
    return state


def test_password_login_then_refresh_once_on_401(server):
    _token_server(server)
    with wc.WorkstreamClient(server.url, username="ann", password="pw") as c:
        assert c.get_work_item(1).id == 1
        assert c.get_work_item(1).id == 1  # a2 is kept
    assert [(r.path, r.headers.get("authorization")) for r in server.requests] == [
        ("/api/v1/auth/token", None),
        ("/api/v1/workitems/1", "Bearer a1"),
        ("/api/v1/auth/token/refresh", None),
        ("/api/v1/workitems/1", "Bearer a2"),
        ("/api/v1/workitems/1", "Bearer a2"),
    ]


def test_a_refused_refresh_logs_in_again(server):
    state = _token_server(server, refresh_works=False)
    with wc.WorkstreamClient(server.url, username="ann", password="pw") as c:
        assert c.claim(1).id == 1
    assert state["logins"] == 2
    posts = [r for r in server.requests if r.path == "/api/v1/workitems/1/claim"]
    assert len(posts) == 2 and posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]


def test_a_second_401_is_raised(server):
    server.responder = lambda seen: (
        Reply(200, {"access": "a", "refresh": "r"}) if "/auth/" in seen.path else problem("unauthorized", 401)
    )
    with wc.WorkstreamClient(server.url, username="ann", password="pw") as c, pytest.raises(wc.UnauthorizedError):
        c.get_work_item(1)
    assert [r.path for r in server.requests].count("/api/v1/workitems/1") == 2


def test_a_static_token_is_not_refreshed(server):
    server.replies = [problem("unauthorized", 401)]
    with wc.WorkstreamClient(server.url, token="t") as c, pytest.raises(wc.UnauthorizedError):
        c.get_work_item(1)
    assert len(server.requests) == 1


# -- async ---------------------------------------------------------------------------------------
def test_async_retry_pagination_and_204(server):
    sleeps: list[float] = []

    async def sleep(d):
        sleeps.append(d)

    async def main():
        async with wc.AsyncWorkstreamClient(server.url, api_key="k", sleep=sleep) as c:
            server.replies = [Reply(503), Reply(201, ITEM)]
            item = await c.create_work_item(workflow_id="wf", task_name="t", queue="q")
            server.replies = [Reply(204)]
            none = await c.claim_next("q")
            server.replies = [
                Reply(
                    200, {"results": [{"id": 1}], "next": f"{server.url}/api/v1/workitems?cursor=x", "previous": None}
                ),
                Reply(200, {"results": [{"id": 2}], "next": None, "previous": None}),
            ]
            ids = [i.id async for i in c.list_work_items(queue="q")]
            server.replies = [problem("invalid-transition", 409, allowed_actions=["claim"])]
            with pytest.raises(wc.InvalidTransitionError) as exc:
                await c.start(1, if_match=2)
            return item, none, ids, exc.value

    item, none, ids, err = asyncio.run(main())
    assert item.id == 1 and none is None and ids == [1, 2] and err.allowed_actions == ["claim"]
    assert len(sleeps) == 1
    first, second = server.requests[0], server.requests[1]
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert server.requests[-1].headers["if-match"] == '"2"'


def test_async_password_refresh(server):
    _token_server(server)

    async def main():
        async with wc.AsyncWorkstreamClient(server.url, username="ann", password="pw") as c:
            return await asyncio.gather(c.get_work_item(1), c.get_work_item(1))

    items = asyncio.run(main())
    assert [i.id for i in items] == [1, 1]
    assert [r.path for r in server.requests].count("/api/v1/auth/token") == 1


def test_async_connection_refused():
    async def sleep(d):
        pass

    async def main():
        async with wc.AsyncWorkstreamClient(closed_port_url(), api_key="k", sleep=sleep, max_retries=1) as c:
            await c.features()

    with pytest.raises(wc.ConnectionFailedError):
        asyncio.run(main())
