"""Object-level authorization (BOLA), generated: every object endpoint × every persona.

The table below states, per endpoint, what the personas who may see the object get; the
rest follows from two rules of docs/api.md: a worker outside the object's queues gets 404
(exactly as for an object that does not exist) and an anonymous caller gets 401. Every
case also checks that a refused request changed nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests import factories
from tests.api.helpers import assert_problem, drive, item_state
from workitems import services
from workitems.models import Queue, WorkItem

PERSONAS = ("owner", "outsider", "supervisor", "admin", "anonymous")
# Who plays each persona. The owner is the item's assignee when it has one, else a member of
# its queue; the outsider is a worker who is neither (bob, of team B, for team A's items).
DEFAULT_CAST = {"owner": "alice", "outsider": "bob", "supervisor": "sam", "admin": "admin", "anonymous": None}
RULES = {"outsider": 404, "anonymous": 401}
KIND_BY_STATUS = {401: "unauthorized", 403: "not-allowed", 404: "not-found"}


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # {item} or {queue} is filled in
    expect: dict[str, int]  # owner / supervisor / admin → status
    state: str | None = None  # the item's state before (item endpoints)
    body: dict | None = None
    after: str | None = None  # the item's state after a 200 on an action
    kinds: dict[int, str] = field(default_factory=dict)  # problem kind for a status, if not the default
    foreign: bool = False  # the item lives in team B's queue and is assigned to alice by a supervisor

    @property
    def is_write(self) -> bool:
        return self.method != "get"


I = "/api/v1/workitems/{item}"  # noqa: E741 - reads as the item's path
ENDPOINTS = [
    Endpoint("get item", "get", I, {"owner": 200, "supervisor": 200, "admin": 200}, state="OFFERED"),
    Endpoint("get held item", "get", I, {"owner": 200, "supervisor": 200, "admin": 200}, state="ASSIGNED"),
    Endpoint("history", "get", I + "/history", {"owner": 200, "supervisor": 200, "admin": 200}, state="IN_PROGRESS"),
    Endpoint(
        "claim",
        "post",
        I + "/claim",
        {"owner": 200, "supervisor": 409, "admin": 409},  # not candidates of team A's queue
        state="OFFERED",
        after="ASSIGNED",
        kinds={409: "constraint-violated"},
    ),
    Endpoint(
        "release", "post", I + "/release", {"owner": 200, "supervisor": 200, "admin": 200}, "ASSIGNED", None, "OFFERED"
    ),
    Endpoint(
        "start", "post", I + "/start", {"owner": 200, "supervisor": 403, "admin": 403}, "ASSIGNED", None, "IN_PROGRESS"
    ),
    Endpoint(
        "complete",
        "post",
        I + "/complete",
        {"owner": 200, "supervisor": 403, "admin": 403},
        "IN_PROGRESS",
        {"result": {"ok": True}},
        "COMPLETED",
    ),
    Endpoint(
        "fail",
        "post",
        I + "/fail",
        {"owner": 200, "supervisor": 403, "admin": 403},
        "IN_PROGRESS",
        {"reason": "x"},
        "FAILED",
    ),
    Endpoint(
        "suspend",
        "post",
        I + "/suspend",
        {"owner": 403, "supervisor": 200, "admin": 200},
        "ASSIGNED",
        None,
        "SUSPENDED",
    ),
    Endpoint(
        "resume", "post", I + "/resume", {"owner": 403, "supervisor": 200, "admin": 200}, "SUSPENDED", None, "ASSIGNED"
    ),
    Endpoint(
        "delegate",
        "post",
        I + "/delegate",
        {"owner": 200, "supervisor": 200, "admin": 200},
        "ASSIGNED",
        {"user": "carol"},
        "ASSIGNED",
    ),
    Endpoint(
        "assign",
        "post",
        I + "/assign",
        {"owner": 403, "supervisor": 200, "admin": 200},
        "OFFERED",
        {"user": "carol"},
        "ASSIGNED",
    ),
    Endpoint(
        "escalate",
        "post",
        I + "/escalate",
        {"owner": 403, "supervisor": 200, "admin": 200},
        "OFFERED",
        {"reason": "late"},
        "OFFERED",
    ),
    Endpoint(
        "cancel",
        "post",
        I + "/cancel",
        {"owner": 403, "supervisor": 200, "admin": 200},
        "OFFERED",
        {"reason": "x"},
        "CANCELLED",
    ),
    # An item outside alice's queues that she holds: visible to her as its assignee only.
    Endpoint(
        "get item (assignee only)", "get", I, {"owner": 200, "supervisor": 200, "admin": 200}, "ASSIGNED", foreign=True
    ),
    Endpoint(
        "history (assignee only)",
        "get",
        I + "/history",
        {"owner": 200, "supervisor": 200, "admin": 200},
        "ASSIGNED",
        foreign=True,
    ),
    Endpoint(
        "start (assignee only)",
        "post",
        I + "/start",
        {"owner": 200, "supervisor": 403, "admin": 403},
        "ASSIGNED",
        None,
        "IN_PROGRESS",
        foreign=True,
    ),
    Endpoint(
        "release (assignee only)",
        "post",
        I + "/release",
        {"owner": 200, "supervisor": 200, "admin": 200},
        "ASSIGNED",
        None,
        "OFFERED",
        foreign=True,
    ),
    # Queues: the owner is a member (alice of team A); changing a queue is for admins.
    Endpoint("get queue", "get", "/api/v1/queues/{queue}", {"owner": 200, "supervisor": 200, "admin": 200}),
    Endpoint(
        "patch queue",
        "patch",
        "/api/v1/queues/{queue}",
        {"owner": 403, "supervisor": 403, "admin": 200},
        body={"description": "changed"},
    ),
    Endpoint("queue stats", "get", "/api/v1/queues/{queue}/stats", {"owner": 200, "supervisor": 200, "admin": 200}),
]


def expected_status(endpoint: Endpoint, persona: str) -> int:
    return endpoint.expect.get(persona) or RULES[persona]


CASES = [
    pytest.param(e, p, expected_status(e, p), id=f"{e.name}-{p}-{expected_status(e, p)}")
    for e in ENDPOINTS
    for p in PERSONAS
]


@pytest.fixture
def cast(request, alice, carol, bob, sam, admin, svc, queue, team_b):
    def user_for(endpoint: Endpoint, persona: str):
        name = DEFAULT_CAST[persona]
        if endpoint.foreign and persona == "outsider":
            name = "carol"  # team A: not a member of team B's queue, not the assignee
        return {"alice": alice, "carol": carol, "bob": bob, "sam": sam, "admin": admin, None: None}[name]

    return user_for


def _item_for(endpoint: Endpoint, *, svc, alice, sam, queue, team_b):
    if endpoint.foreign:
        q_b = Queue.objects.filter(name="team-b-queue").first() or factories.queue("team-b-queue", groups=[team_b])
        item = factories.item(actor=svc, queue=q_b)
        # alice is not of team B: only a supervisor's explicit override gives her the item
        return services.work_item_assign(item_id=item.pk, actor=sam, user=alice, override=True)
    return drive(factories.item(actor=svc, queue=queue), endpoint.state, worker=alice, supervisor=sam)


@pytest.mark.parametrize(("endpoint", "persona", "status"), CASES)
def test_bola(api, cast, svc, alice, sam, queue, team_b, endpoint, persona, status):
    item = None
    if "{item}" in endpoint.path:
        item = _item_for(endpoint, svc=svc, alice=alice, sam=sam, queue=queue, team_b=team_b)
        url = endpoint.path.format(item=item.pk)
        before = item_state(item.pk)
    else:
        url = endpoint.path.format(queue=queue.name)
        before = Queue.objects.values("description", "updated_at").get(pk=queue.pk)

    client = api(cast(endpoint, persona))
    call = getattr(client, endpoint.method)
    resp = call(url, endpoint.body, format="json") if endpoint.is_write else call(url)

    if status >= 400:
        kind = endpoint.kinds.get(status) or KIND_BY_STATUS[status]
        body = assert_problem(resp, status, kind)
        if status == 401:
            assert resp["WWW-Authenticate"].startswith("Bearer")
        if status == 404:
            assert "not found" in body["detail"]
            # Indistinguishable from an object that does not exist.
            if item is not None:
                missing_url = endpoint.path.format(item=987654321)
                missing = call(missing_url, endpoint.body, format="json") if endpoint.is_write else call(missing_url)
                assert missing.status_code == 404
                assert missing.json()["title"] == body["title"] and missing.json()["type"] == body["type"]
        if item is not None:
            assert item_state(item.pk) == before, "a refused request changed the item"
        else:
            assert Queue.objects.values("description", "updated_at").get(pk=queue.pk) == before
        return

    assert resp.status_code == status == 200, resp.content[:300]
    if item is None:
        data = resp.json()
        if endpoint.name == "patch queue":
            assert data["description"] == "changed"
            assert Queue.objects.get(pk=queue.pk).description == "changed"
        else:
            assert data.get("name", data.get("queue")) == queue.name
        return
    if endpoint.name.startswith("history"):
        assert [r["work_item"] for r in resp.json()] == [item.pk] * len(resp.json()) and resp.json()
        assert item_state(item.pk) == before
    elif endpoint.is_write:
        out = resp.json()
        assert out["id"] == item.pk and out["state"] == endpoint.after
        assert item_state(item.pk)[:2] == (endpoint.after, before[1] + 1)
    else:
        assert resp.json()["id"] == item.pk and resp["ETag"] == f'"{before[1]}"'


def test_matrix_covers_every_object_endpoint_and_action():
    """The table names every action of docs/api.md and every object endpoint."""
    from workitems.api.views import API_ACTIONS

    actions = {e.path.rsplit("/", 1)[1] for e in ENDPOINTS if e.method == "post"}
    contract_actions = {"claim", "release", "start", "complete", "fail", "suspend", "resume"}
    contract_actions |= {"delegate", "assign", "escalate", "cancel"}
    assert actions == contract_actions
    assert contract_actions <= set(API_ACTIONS)
    paths = {(e.method, e.path) for e in ENDPOINTS}
    assert {("get", I), ("get", I + "/history"), ("get", "/api/v1/queues/{queue}")} <= paths
    assert {("patch", "/api/v1/queues/{queue}"), ("get", "/api/v1/queues/{queue}/stats")} <= paths
    assert len(CASES) == len(ENDPOINTS) * len(PERSONAS)


@pytest.mark.parametrize(("persona", "sees"), [("alice", True), ("bob", False), ("sam", True), ("svc", True)])
def test_list_shows_only_what_the_caller_may_see(request, api, make_item, persona, sees):
    items = {make_item().pk for _ in range(3)}
    user = request.getfixturevalue(persona)
    for query in (
        "",
        "?queue=team-a-queue",
        f"?workflow_id={WorkItem.objects.get(pk=min(items)).workflow_id}",
    ):
        resp = api(user).get("/api/v1/workitems" + query)
        assert resp.status_code == 200
        got = {r["id"] for r in resp.json()["results"]}
        assert (got & items != set()) is sees, (query, got)
        if not sees:
            assert got == set()


def test_queue_list_shows_a_worker_only_its_queues(api, alice, bob, sam, queue, team_b):
    factories.queue("team-b-queue", groups=[team_b])
    names = lambda u: {q["name"] for q in api(u).get("/api/v1/queues").json()}  # noqa: E731
    assert names(alice) == {"team-a-queue"}
    assert names(bob) == {"team-b-queue"}
    assert names(sam) == {"team-a-queue", "team-b-queue"}
