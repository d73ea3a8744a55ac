"""The SDK's own logic that needs no server: configuration, request building, models."""

from __future__ import annotations

import inspect
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import workstream_client as wc
from workstream_client import _endpoints as ep
from workstream_client._core import Call, encode_params, if_match_value, jsonable
from workstream_client.models import parse_datetime

SDK = Path(__file__).resolve().parents[2] / "sdk"


def test_version_matches_the_package_metadata():
    meta = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "workstream-client"
    assert meta["version"] == wc.__version__ == "0.1.0"
    assert meta["dependencies"] == ["httpx>=0.28,<0.29"]


def test_sync_and_async_clients_offer_the_same_methods():
    def public(cls):
        return {
            n: inspect.signature(f)
            for n, f in vars(cls).items()
            if inspect.isfunction(f) and not n.startswith("_") and n not in ("close", "aclose")
        }

    sync, aio = public(wc.WorkstreamClient), public(wc.AsyncWorkstreamClient)
    assert sync.keys() == aio.keys()
    for name in sync:
        assert list(sync[name].parameters) == list(aio[name].parameters), name
        assert inspect.iscoroutinefunction(getattr(wc.AsyncWorkstreamClient, name)) or inspect.isasyncgenfunction(
            getattr(wc.AsyncWorkstreamClient, name)
        ), name


def test_every_action_has_a_method():
    for action in (
        "claim",
        "release",
        "start",
        "complete",
        "fail",
        "suspend",
        "resume",
        "delegate",
        "assign",
        "escalate",
        "cancel",
        "accept",
        "reject",
    ):
        params = inspect.signature(getattr(wc.WorkstreamClient, action)).parameters
        assert {"item_id", "if_match", "idempotency_key", "request_id"} <= params.keys(), action


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://h:8000", "http://h:8000"),
        ("http://h:8000/", "http://h:8000"),
        ("http://h:8000/api/v1", "http://h:8000"),
        ("http://h:8000/api/v1/", "http://h:8000"),
        ("https://h/ws/", "https://h/ws"),
    ],
)
def test_base_url_normalised(given, base):
    with wc.WorkstreamClient(given) as c:
        assert c.base_url == base
        assert c._url(Call("GET", "/workitems")) == base + "/api/v1/workitems"
        assert c._url(Call("GET", "/health", api=False)) == base + "/health"


def test_base_url_needs_a_scheme():
    with pytest.raises(ValueError, match="scheme"):
        wc.WorkstreamClient("localhost:8000")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": "k", "token": "t"},
        {"api_key": "k", "username": "u", "password": "p"},
        {"token": "t", "username": "u", "password": "p"},
        {"username": "u"},
        {"password": "p"},
    ],
)
def test_one_kind_of_credentials(kwargs):
    with pytest.raises(ValueError):
        wc.WorkstreamClient("http://h", **kwargs)


def test_auth_and_default_headers():
    with wc.WorkstreamClient("http://h", api_key="abc.def") as c:
        h = c._headers(Call("GET", "/x"), None)
        assert h["Authorization"] == "Api-Key abc.def"
        assert h["User-Agent"].startswith("workstream-client/0.1.0 ")
        assert "application/problem+json" in h["Accept"]
        assert "Idempotency-Key" not in h and "If-Match" not in h and "X-Request-ID" not in h
    with wc.WorkstreamClient("http://h", token="jwt", user_agent="my-engine/2") as c:
        h = c._headers(Call("GET", "/x"), None)
        assert h["Authorization"] == "Bearer jwt"
        assert h["User-Agent"].startswith("my-engine/2 workstream-client/0.1.0")
    with wc.WorkstreamClient("http://h") as c:
        assert "Authorization" not in c._headers(Call("GET", "/x"), None)


def test_idempotency_key_only_on_posts_and_the_callers_own_wins():
    with wc.WorkstreamClient("http://h", api_key="k") as c:
        key = c._idempotency_key(Call("POST", "/workitems"))
        assert uuid.UUID(key).version == 4
        assert c._idempotency_key(Call("POST", "/workitems")) != key  # fresh per call
        assert c._idempotency_key(Call("POST", "/workitems", idempotency_key="mine")) == "mine"
        assert c._idempotency_key(Call("GET", "/workitems")) is None
        assert c._idempotency_key(Call("PATCH", "/queues/q")) is None
        assert c._idempotency_key(Call("POST", "/auth/token", auth=False)) is None  # not on logins


def test_request_id_per_call_or_from_a_factory():
    with wc.WorkstreamClient("http://h", request_id_factory=lambda: "from-factory") as c:
        assert c._headers(Call("GET", "/x"), None)["X-Request-ID"] == "from-factory"
        assert c._headers(Call("GET", "/x", request_id="given"), None)["X-Request-ID"] == "given"


def test_extra_headers():
    with wc.WorkstreamClient("http://h", headers={"X-Tenant": "t1"}) as c:
        assert c._headers(Call("GET", "/x"), None)["X-Tenant"] == "t1"


@pytest.mark.parametrize(("given", "sent"), [(3, '"3"'), ("3", '"3"'), ('"3"', '"3"'), ('W/"3"', 'W/"3"'), (0, '"0"')])
def test_if_match_value(given, sent):
    assert if_match_value(given) == sent


def test_if_match_refuses_booleans():
    with pytest.raises(TypeError):
        if_match_value(True)


def test_action_call_carries_if_match_and_body():
    call = ep.action(12, "complete", {"result": {"ok": 1}}, 4)
    assert (call.method, call.path, call.json, call.if_match) == (
        "POST",
        "/workitems/12/complete",
        {"result": {"ok": 1}},
        4,
    )
    with wc.WorkstreamClient("http://h", api_key="k") as c:
        assert c._headers(call, "key")["If-Match"] == '"4"'
        assert c._headers(call, "key")["Idempotency-Key"] == "key"


def test_path_segments_are_escaped():
    assert ep.get_queue("a/b c").path == "/queues/a%2Fb%20c"
    assert ep.get_user("ann@example.com").path == "/users/ann%40example.com"


def test_encode_params():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert encode_params(
        {
            "state": ["OFFERED", "ASSIGNED"],
            "overdue": True,
            "escalated": False,
            "due_before": when,
            "queue": None,
            "priority_min": 10,
        }
    ) == [
        ("state", "OFFERED"),
        ("state", "ASSIGNED"),
        ("overdue", "true"),
        ("escalated", "false"),
        ("due_before", "2026-01-02T03:04:05+00:00"),
        ("priority_min", "10"),
    ]


@pytest.mark.parametrize(
    ("link", "resolved"),
    [
        ("http://h:8000/api/v1/workitems?cursor=abc", "http://h:8000/api/v1/workitems?cursor=abc"),
        ("/api/v1/workitems?cursor=abc", "http://h:8000/api/v1/workitems?cursor=abc"),
        # another origin (an internal host behind a proxy): path and query kept, our server used
        ("http://internal:9000/api/v1/workitems?cursor=abc", "http://h:8000/api/v1/workitems?cursor=abc"),
        ("https://evil.example/api/v1/workitems?cursor=abc", "http://h:8000/api/v1/workitems?cursor=abc"),
    ],
)
def test_pagination_links_stay_on_our_server(link, resolved):
    with wc.WorkstreamClient("http://h:8000", api_key="k") as c:
        assert c._url(Call("GET", url=link)) == resolved


ITEM = {
    "id": 7,
    "workflow_id": "wf",
    "run_id": "r",
    "task_name": "review",
    "title": "T",
    "queue": "claims",
    "priority": 50,
    "due_at": "2026-05-01T10:00:00Z",
    "context_data": {"a": 1},
    "state": "OFFERED",
    "sub_status": None,
    "assignee": None,
    "version": 3,
    "escalation_level": 0,
    "created_at": "2026-04-30T10:00:00.123456+00:00",
    "updated_at": "2026-04-30T10:00:00+00:00",
    "assigned_at": None,
    "result": None,
    "allowed_actions": ["claim"],
    "something_new": "kept",
}


def test_work_item_from_dict():
    item = wc.WorkItem.from_dict(ITEM)
    assert item.id == 7 and item.state == "OFFERED" and item.version == 3 and item.queue == "claims"
    assert item.due_at == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert item.created_at.microsecond == 123456 and item.created_at.tzinfo is not None
    assert item.assigned_at is None and item.completed_at is None
    assert item.allowed_actions == ["claim"] and item.context_data == {"a": 1}
    assert item["something_new"] == "kept" and item.get("missing", 1) == 1 and "title" in item
    assert item.raw == ITEM and item.to_dict() == ITEM
    assert item.etag == '"3"'
    assert item == wc.WorkItem.from_dict(dict(ITEM))


def test_work_item_keeps_an_unparseable_time_as_sent():
    item = wc.WorkItem.from_dict({"id": 1, "due_at": "not a time"})
    assert item.due_at == "not a time"


def test_parse_datetime():
    assert parse_datetime(None) is None
    assert parse_datetime("2026-01-01T00:00:00z").tzinfo is not None
    with pytest.raises(ValueError):
        parse_datetime(5)


def test_queue_from_dict():
    q = wc.Queue.from_dict({"name": "claims", "strategy": "offer", "sla": "PT4H", "active": True, "x": 1})
    assert (q.name, q.strategy, q.sla, q.active, q["x"]) == ("claims", "offer", "PT4H", True, 1)


def test_page_from_paginated_body_and_from_a_list():
    page = wc.Page.from_response({"results": [ITEM], "next": "http://h/n", "previous": None}, wc.WorkItem.from_dict)
    assert [i.id for i in page] == [7] and len(page) == 1 and page.has_next and page.next == "http://h/n"
    page = wc.Page.from_response([{"id": 1}, {"id": 2}], dict)
    assert page.results == [{"id": 1}, {"id": 2}] and not page.has_next
    with pytest.raises(TypeError):
        wc.Page.from_response({"items": []}, dict)


def test_max_retries_overrides_a_given_policy_without_changing_it():
    policy = wc.RetryPolicy(max_retries=5)
    with wc.WorkstreamClient("http://h", retry=policy, max_retries=1) as c:
        assert c.retry.max_retries == 1
    assert policy.max_retries == 5


def test_bodies_carry_datetimes_as_iso_8601():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert jsonable({"due_at": when, "tags": ("a", "b"), "nested": [{"at": when}], "n": 1}) == {
        "due_at": "2026-01-02T03:04:05+00:00",
        "tags": ["a", "b"],
        "nested": [{"at": "2026-01-02T03:04:05+00:00"}],
        "n": 1,
    }
    with wc.WorkstreamClient("http://h", api_key="k") as c:
        kw = c._request_kwargs(ep.create_work_item({"due_at": when}), "key")
        assert kw["json"] == {"due_at": "2026-01-02T03:04:05+00:00"}
