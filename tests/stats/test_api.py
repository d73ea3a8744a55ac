"""The statistics endpoints against figures computed by hand, their validation, and who sees what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from directory.models import Profile
from stats import rollup, selectors
from tests import factories
from tests.api.helpers import assert_field_error, assert_problem, drive
from tests.querycount import count_statements
from workitems import services
from workitems.models import WorkItem

PAST, FUTURE = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"


def mean(values):
    return round(sum(values) / len(values), 1)


@pytest.fixture
def scene(queue, make_item, svc, alice, carol, sam):
    """Team A's queue (max_open 10) with a hand-made mix of items."""
    queue.max_open = 10
    queue.save(update_fields=["max_open"])
    items = {
        "offered": make_item(),
        "assigned": drive(make_item(), "ASSIGNED", worker=alice, supervisor=sam),
        "started": drive(make_item(), "IN_PROGRESS", worker=alice, supervisor=sam),
        "suspended": drive(make_item(), "SUSPENDED", worker=carol, supervisor=sam),
        "breached": make_item(due_at=PAST),  # created past its deadline: breached, still offered
        "on_time": drive(make_item(due_at=FUTURE), "COMPLETED", worker=carol, supervisor=sam),
        "late": drive(make_item(due_at=PAST), "COMPLETED", worker=alice, supervisor=sam),
        "cancelled": make_item(),
    }
    services.work_item_cancel(item_id=items["cancelled"].pk, actor=svc, reason="not needed")
    return {k: WorkItem.objects.get(pk=v.pk) for k, v in items.items()}


def expected(scene) -> dict:
    handed_out = [scene[k] for k in ("assigned", "started", "suspended", "on_time", "late")]
    done = [scene["on_time"], scene["late"]]
    return {
        "queue": "team-a-queue",
        "open": 5,
        "offered": 2,
        "assigned": 1,
        "in_progress": 1,
        "suspended": 1,
        "unassigned": 2,
        "at_risk": 0,
        "breached": 1,
        "max_open": 10,
        "utilization": 0.5,
        "window": "PT24H",
        "created": 8,
        "completed": 2,
        "cancelled": 1,
        "failed": 0,
        "sla_compliance": 0.5,
        "avg_wait_seconds": mean([(i.assigned_at - i.offered_at).total_seconds() for i in handed_out]),
        "avg_handle_seconds": mean([(i.completed_at - i.assigned_at).total_seconds() for i in done]),
        "per_user_load": [{"user": "alice", "open": 2}, {"user": "carol", "open": 1}],
    }


def test_queue_stats_by_hand_before_and_after_the_rollup(api, alice, sam, scene):
    want = expected(scene)
    for _ in ("pending deltas", "rolled up"):
        got = api(alice).get("/api/v1/queues/team-a-queue/stats")
        assert got.status_code == 200, got.content
        body = got.json()
        assert {k: body[k] for k in want} == want
        oldest = (timezone.now() - scene["offered"].created_at).total_seconds()
        assert 0 <= body["oldest_age_seconds"] <= oldest + 1
        assert body["window_start"].endswith(":00:00Z")
        # the same figures for everyone who sees the queue (the age may have ticked a second on)
        (theirs,) = api(sam).get("/api/v1/stats/queues").json()
        assert 0 <= theirs.pop("oldest_age_seconds") - body.pop("oldest_age_seconds") <= 1
        assert theirs == body
        rollup.rollup()


def test_window_counts_only_its_hours(api, sam, queue):
    old = timezone.now() - timedelta(days=3)
    factories.unrouted_item(queue=queue, created_at=old)  # a CREATED row, made three days ago
    assert api(sam).get("/api/v1/queues/team-a-queue/stats").json()["created"] == 0
    body = api(sam).get("/api/v1/queues/team-a-queue/stats?window=P7D").json()
    assert (body["created"], body["open"], body["window"]) == (1, 1, "PT168H")
    assert body["oldest_age_seconds"] >= 3 * 86400


@pytest.mark.parametrize("window", ["PT90M", "1 day", "P40D", "PT0S", "-PT1H", "", "P1Y"])
def test_a_bad_window_is_a_400_naming_it(api, sam, queue, window):
    for path in ("/api/v1/stats/queues", f"/api/v1/queues/{queue.name}/stats", "/api/v1/stats/users"):
        resp = api(sam).get(path, {"window": window})
        assert_field_error(assert_problem(resp, 400, "validation-error"), "window")


def test_unknown_and_repeated_parameters_are_refused(api, sam, queue):
    resp = api(sam).get("/api/v1/stats/queues?windw=PT1H")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "windw")
    resp = api(sam).get("/api/v1/stats/queues?window=PT1H&window=PT2H")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "window")


def test_users_by_hand(api, sam, alice, carol, scene):
    Profile.objects.update_or_create(user=alice, defaults={"capacity": 5})
    Profile.objects.update_or_create(user=carol, defaults={"out_of_office_from": timezone.now() - timedelta(hours=1)})
    body = api(sam).get("/api/v1/stats/users?queue=team-a-queue").json()
    on_time, late = scene["on_time"], scene["late"]
    assert body == [
        {
            "user": "alice",
            "open": 2,
            "capacity": 5,
            "completed_in_window": 1,
            "avg_handle_seconds": mean([(late.completed_at - late.assigned_at).total_seconds()]),
            "available": True,
        },
        {
            "user": "carol",
            "open": 1,
            "capacity": None,
            "completed_in_window": 1,
            "avg_handle_seconds": mean([(on_time.completed_at - on_time.assigned_at).total_seconds()]),
            "available": False,
        },
    ]
    assert api(sam).get("/api/v1/stats/users").json() == body  # sam sees every queue: the same people


def test_timeseries_by_hand(api, sam, queue, scene):
    factories.unrouted_item(queue=queue, created_at=timezone.now() - timedelta(days=3))
    body = api(sam).get("/api/v1/stats/timeseries?metric=created").json()
    assert len(body) == 25 and body[-1]["count"] == 8 and sum(p["count"] for p in body) == 8
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert body[-1]["start"] == hour.isoformat().replace("+00:00", "Z")
    since = (hour - timedelta(days=4)).isoformat().replace("+00:00", "Z")
    body = api(sam).get("/api/v1/stats/timeseries", {"metric": "created", "interval": "P1D", "since": since}).json()
    assert [p["count"] for p in body] == [0, 1, 0, 0, 8]
    rollup.rollup()
    for metric, n in (("completed", 2), ("breached", 2)):  # breached: both made past their deadline
        resp = api(sam).get("/api/v1/stats/timeseries", {"metric": metric, "queue": "team-a-queue"})
        assert sum(p["count"] for p in resp.json()) == n, metric


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "metric"),
        ({"metric": "opened"}, "metric"),
        ({"metric": "created", "interval": "PT30M"}, "interval"),
        ({"metric": "created", "since": "yesterday"}, "since"),
        ({"metric": "created", "since": "2000-01-01T00:00:00"}, "since"),  # no zone
        ({"metric": "created", "since": "1969-12-31T23:00:00Z"}, "since"),  # before the times the API takes
        ({"metric": "created", "queue": ""}, "queue"),
    ],
)
def test_timeseries_validation(api, sam, queue, query, field):
    resp = api(sam).get("/api/v1/stats/timeseries", query)
    assert_field_error(assert_problem(resp, 400, "validation-error"), field)


def test_timeseries_keeps_to_1000_buckets_and_the_past(api, sam, queue):
    old = api(sam).get("/api/v1/stats/timeseries?metric=created&since=1990-01-01T00:00:00Z").json()
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert len(old) == 1000 and old[-1]["start"] == hour.isoformat().replace("+00:00", "Z")
    future = api(sam).get("/api/v1/stats/timeseries?metric=created&since=2999-01-01T00:00:00Z")
    assert future.status_code == 200 and future.json() == []


def test_a_worker_sees_only_the_figures_of_its_queues(api, bob, team_b, scene):
    factories.queue("team-b-queue", groups=[team_b])
    assert [q["queue"] for q in api(bob).get("/api/v1/stats/queues").json()] == ["team-b-queue"]
    for path in (
        "/api/v1/queues/team-a-queue/stats",
        "/api/v1/stats/users?queue=team-a-queue",
        "/api/v1/stats/timeseries?metric=created&queue=team-a-queue",
    ):
        assert_problem(api(bob).get(path), 404, "not-found")
    assert [u["user"] for u in api(bob).get("/api/v1/stats/users").json()] == ["bob"]
    series = api(bob).get("/api/v1/stats/timeseries?metric=created").json()
    assert sum(p["count"] for p in series) == 0  # team A's eight items are not his to count


def test_anonymous_is_401(api, queue):
    for path in ("/api/v1/stats/queues", "/api/v1/stats/users", "/api/v1/stats/timeseries?metric=created"):
        assert_problem(api(None).get(path), 401, "unauthorized")


def test_age_distribution(queue, scene):
    factories.unrouted_item(queue=queue, created_at=timezone.now() - timedelta(days=4))
    buckets = {b["bucket"]: b["count"] for b in selectors.age_distribution([queue.pk])}
    assert buckets["3d-7d"] == 1 and sum(buckets.values()) == 6
    assert buckets["<1h"] + buckets["1h-4h"] == 5  # made this hour (or the last, on the hour)


def test_stats_queues_statement_budget(jwt_client, sam, bob, team_b, scene):
    """`GET /stats/queues` as API clients call it (a JWT): the user with its groups, the figures
    with the visible queues as their subquery, the access record; the same for a worker (whose
    visibility is a join on its groups) and whatever the number of queues."""
    factories.queue("team-b-queue", groups=[team_b])
    for user, want in ((sam, ["team-a-queue", "team-b-queue"]), (bob, ["team-b-queue"])):
        client = jwt_client(user)
        client.get("/api/v1/stats/queues")  # warm: the per-connection compiled statements
        with count_statements() as seen:
            resp = client.get("/api/v1/stats/queues")
        assert resp.status_code == 200 and [q["queue"] for q in resp.json()] == want
        user_sql, figures_sql, record_sql = seen.counted if len(seen) == 3 else (None, None, None)
        assert user_sql and user_sql.startswith('SELECT "auth_user"."id"'), seen.report()
        assert figures_sql.startswith("WITH d AS") and "workitems_queue" in figures_sql, seen.report()
        assert record_sql.startswith('INSERT INTO "audit_accessrecord"'), seen.report()
