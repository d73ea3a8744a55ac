"""The access log (issue 10, item 13): one record per API request, refused ones included, with
who, which operation on which resource, the outcome and the request id; never a body, a query
value or an address (unless configured); readable by supervisors at GET /audit/access and in
the admin; purged after the retention."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from api.models import ServiceApiKey
from audit import tasks
from audit.models import AccessRecord, AuditRecord
from audit.services import access_log_purge, audit_verify
from tests.api.conftest import bearer
from tests.api.helpers import assert_problem, create_body
from tests.querycount import count_statements

pytestmark = pytest.mark.django_db
MARK = "do-not-log-me-7c1f"  # put into bodies, query values and passwords: never in a record


def record_of(resp) -> AccessRecord:
    """The one access record of the request that answered `resp`."""
    (record,) = AccessRecord.objects.filter(request_id=resp["X-Request-ID"])
    return record


def fields_of(record: AccessRecord) -> dict:
    return {f.attname: getattr(record, f.attname) for f in record._meta.fields}


def assert_no_mark(record: AccessRecord) -> None:
    assert MARK not in json.dumps(fields_of(record), default=str), fields_of(record)


# --- one record per request, with the right fields --------------------------------------------


def test_a_201_is_recorded_with_its_caller_operation_and_outcome_but_not_its_body(api, svc, queue):
    body = create_body(queue, context_data={"note": MARK}, title=MARK)
    before = AccessRecord.objects.count()
    resp = api(svc).post("/api/v1/workitems", body, format="json")
    assert resp.status_code == 201
    assert AccessRecord.objects.count() == before + 1
    rec = record_of(resp)
    assert (rec.method, rec.route, rec.resource, rec.status, rec.problem) == ("POST", "/api/v1/workitems", {}, 201, "")
    assert (rec.actor_id, rec.actor_username) == (svc.pk, "svc")
    assert rec.request_id == resp["X-Request-ID"] and rec.operation == "POST /api/v1/workitems"
    assert abs((timezone.now() - rec.at).total_seconds()) < 60 and rec.duration_ms >= 0
    assert rec.ip is None and rec.params == []
    assert_no_mark(rec)


def test_401s_record_no_identity_and_no_credential(api, alice):
    for client in (
        api(None),
        APIClient(HTTP_AUTHORIZATION="Bearer not-a-token"),
        APIClient(HTTP_AUTHORIZATION=f"Api-Key {MARK}"),
    ):
        resp = client.get("/api/v1/workitems")
        assert_problem(resp, 401, "unauthorized")
        rec = record_of(resp)
        assert (rec.status, rec.problem, rec.actor_id, rec.actor_username, rec.auth) == (
            401,
            "unauthorized",
            None,
            "",
            "",
        )
        assert rec.route == "/api/v1/workitems"
        assert_no_mark(rec)


def test_a_failed_login_records_neither_the_username_nor_the_password(db):
    resp = APIClient().post("/api/v1/auth/token", {"username": MARK, "password": MARK}, format="json")
    assert resp.status_code == 401
    rec = record_of(resp)
    assert (rec.route, rec.status, rec.problem, rec.actor_username) == ("/api/v1/auth/token", 401, "unauthorized", "")
    assert_no_mark(rec)


def test_a_403_names_the_caller_and_the_problem(api, alice):
    resp = api(alice).get("/api/v1/audit")
    assert_problem(resp, 403, "not-allowed")
    rec = record_of(resp)
    assert (rec.route, rec.status, rec.problem, rec.actor_username) == ("/api/v1/audit", 403, "not-allowed", "alice")


def test_a_404_keeps_the_route_pattern_and_the_resource_id_apart(api, alice):
    resp = api(alice).get("/api/v1/workitems/987654")
    assert_problem(resp, 404, "not-found")
    rec = record_of(resp)
    assert (rec.route, rec.resource, rec.status, rec.problem) == (
        "/api/v1/workitems/{item_id}",
        {"item_id": 987654},
        404,
        "not-found",
    )
    # a path no route matches: no route, and nothing of the path either
    resp = api(alice).get(f"/api/v1/{MARK}")
    rec = record_of(resp)
    assert (rec.route, rec.resource, rec.status, rec.problem) == ("", {}, 404, "not-found")
    assert_no_mark(rec)
    # a username in the path is the resource; NUL cannot reach the database
    resp = api(alice).get("/api/v1/users/nobody%00here")
    assert record_of(resp).resource == {"username": "nobodyhere"}


def test_a_409_and_a_412_are_recorded_with_the_action_as_resource(api, alice, carol, make_item):
    item = make_item()
    assert api(alice).post(f"/api/v1/workitems/{item.pk}/claim").status_code == 200
    lost = api(carol).post(f"/api/v1/workitems/{item.pk}/claim")
    assert_problem(lost, 409, "already-claimed")
    rec = record_of(lost)
    assert rec.route == "/api/v1/workitems/{item_id}/{action}"
    assert (rec.resource, rec.status, rec.problem, rec.actor_username) == (
        {"item_id": item.pk, "action": "claim"},
        409,
        "already-claimed",
        "carol",
    )
    stale = api(alice).post(f"/api/v1/workitems/{item.pk}/start", HTTP_IF_MATCH='"1"')
    assert_problem(stale, 412, "stale-version")
    rec = record_of(stale)
    assert (rec.resource, rec.status, rec.problem) == ({"item_id": item.pk, "action": "start"}, 412, "stale-version")


def test_a_429_is_recorded_and_so_is_every_request_before_it(api, api_config, alice):
    api_config({"rateLimits": {"default": "2/m"}})
    cache.delete(f"throttle:user:{alice.pk}")
    client = api(alice)
    answers = [client.get("/api/v1/queues") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [(record_of(r).status, record_of(r).problem) for r in answers] == [
        (200, ""),
        (200, ""),
        (429, "rate-limited"),
    ]


def test_refusals_of_the_middleware_are_recorded_too(api, api_config, svc, queue):
    api_config({"performance": {"maxBodyBytes": 1024}})
    resp = api(svc).post("/api/v1/workitems", create_body(queue, title="x" * 2000), format="json")
    rec = record_of(resp)
    assert (rec.status, rec.problem, rec.route) == (413, "payload-too-large", "/api/v1/workitems")
    api_config({"features": {"restApi": False}})
    resp = api(svc).get("/api/v1/queues")
    assert (record_of(resp).status, record_of(resp).problem) == (404, "feature-disabled")


def test_query_parameters_are_recorded_by_name_only(api, sam):
    resp = api(sam).get(f"/api/v1/workitems?workflow_id={MARK}&page_size=5")
    assert resp.status_code == 200
    rec = record_of(resp)
    assert rec.params == ["page_size", "workflow_id"]
    assert_no_mark(rec)
    # a name that is not an identifier (here refused as unknown, 400) is written as "?"
    resp = api(sam).get(f"/api/v1/workitems?{MARK}@example.com=1&workflow_id=a")
    rec = record_of(resp)
    assert (rec.status, rec.params) == (400, ["?", "workflow_id"])
    assert_no_mark(rec)


def test_how_the_caller_authenticated_is_recorded_by_the_credentials_id_only(alice, svc):
    header = bearer(alice)
    rec = record_of(APIClient(HTTP_AUTHORIZATION=header).get("/api/v1/workitems"))
    token = header.split()[1]
    assert (rec.auth, rec.credential) == ("jwt", f"jwt:{AccessToken(token)['jti']}")  # the token's id
    assert token not in json.dumps(fields_of(rec), default=str)
    _, key = ServiceApiKey.objects.create_key(name="engine", user=svc)
    resp = APIClient(HTTP_AUTHORIZATION=f"Api-Key {key}").get("/api/v1/workitems")
    rec = record_of(resp)
    assert (rec.auth, rec.credential) == ("api-key", f"api-key:{key.split('.')[0]}")
    assert key not in json.dumps(fields_of(rec), default=str)


def test_addresses_only_when_configured(api, api_config, alice):
    assert record_of(api(alice).get("/api/v1/queues")).ip is None
    api_config({"accessLog": {"recordIp": True}})
    assert record_of(api(alice).get("/api/v1/queues")).ip == "127.0.0.1"
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert record_of(api(alice).get("/api/v1/queues", **forwarded)).ip == "127.0.0.1"  # not a trusted proxy
    api_config({"accessLog": {"recordIp": True}, "rateLimits": {"trustedProxies": ["127.0.0.1"]}})
    assert record_of(api(alice).get("/api/v1/queues", **forwarded)).ip == "203.0.113.7"


def test_switched_off_nothing_is_recorded_and_outside_the_api_nothing_either(api, api_config, alice, client):
    client.get("/health/live")
    assert not AccessRecord.objects.exists()
    api_config({"accessLog": {"enabled": False}})
    assert api(alice).get("/api/v1/queues").status_code == 200
    assert not AccessRecord.objects.exists()


def test_one_insert_per_request_and_none_into_the_change_audit(api, sam):
    client = api(sam)
    client.get("/api/v1/queues")  # the caller's roles are cached after the first request
    audit_before = AuditRecord.objects.count()
    with count_statements(connection) as seen:  # Django's query log has no text for a prepared statement
        assert client.get("/api/v1/queues").status_code == 200
    inserts = [sql for sql in seen.counted if sql.startswith("INSERT")]
    assert len(inserts) == 1 and inserts[0].startswith('INSERT INTO "audit_accessrecord"'), inserts
    assert AuditRecord.objects.count() == audit_before and audit_verify().ok


def test_a_record_that_cannot_be_written_is_logged_not_lost_silently(api, alice, caplog):
    """The table is renamed away inside the test's transaction: the write fails for real."""
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE audit_accessrecord RENAME TO audit_accessrecord_away")
    try:
        with caplog.at_level(logging.ERROR, logger="api.access_log"):
            resp = api(alice).get("/api/v1/queues")
    finally:
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE audit_accessrecord_away RENAME TO audit_accessrecord")
    assert resp.status_code == 200
    (logged,) = [r for r in caplog.records if r.getMessage() == "access record not written"]
    kept = json.loads(logged.access_record)
    assert (kept["route"], kept["status"], kept["request_id"], kept["actor_username"]) == (
        "/api/v1/queues",
        200,
        resp["X-Request-ID"],
        "alice",
    )


# --- reading it -------------------------------------------------------------------------------


@pytest.fixture
def logged(api, alice, carol, svc, make_item):
    """A few requests of several callers and outcomes; returns their responses by name."""
    item = make_item()
    return {
        "alice_claim": api(alice).post(f"/api/v1/workitems/{item.pk}/claim"),
        "carol_claim": api(carol).post(f"/api/v1/workitems/{item.pk}/claim"),  # 409
        "alice_audit": api(alice).get("/api/v1/audit"),  # 403
        "svc_list": api(svc).get("/api/v1/workitems"),
        "anonymous": api(None).get("/api/v1/queues"),  # 401
    }


@pytest.mark.parametrize("who", ["alice", "svc"])
def test_workers_and_service_clients_cannot_read_the_access_log(api, logged, who, request):
    assert_problem(api(request.getfixturevalue(who)).get("/api/v1/audit/access"), 403, "not-allowed")
    assert_problem(api(None).get("/api/v1/audit/access"), 401, "unauthorized")


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.content
    return [r["request_id"] for r in resp.json()["results"]]


def test_supervisors_read_it_newest_first_and_filter_it(api, sam, admin, logged):
    rid = {name: r["X-Request-ID"] for name, r in logged.items()}
    c = api(sam)
    every = c.get("/api/v1/audit/access").json()["results"]
    assert [r["request_id"] for r in every][:5] == [rid[n] for n in reversed(list(rid))]
    claim = next(r for r in every if r["request_id"] == rid["carol_claim"])
    assert claim == {
        "id": claim["id"],
        "at": claim["at"],
        "request_id": rid["carol_claim"],
        "operation": "POST /api/v1/workitems/{item_id}/{action}",
        "method": "POST",
        "route": "/api/v1/workitems/{item_id}/{action}",
        "resource": {"item_id": claim["resource"]["item_id"], "action": "claim"},
        "params": [],
        "user": "carol",
        "auth": "session",
        "credential": "",
        "status": 409,
        "problem": "already-claimed",
        "duration_ms": claim["duration_ms"],
        "ip": None,
    }
    assert claim["at"].endswith("Z")
    assert ids(c.get("/api/v1/audit/access?user=alice")) == [rid["alice_audit"], rid["alice_claim"]]
    assert ids(c.get("/api/v1/audit/access?status=409")) == [rid["carol_claim"]]
    assert set(ids(c.get("/api/v1/audit/access?status=4xx"))) == {
        rid["carol_claim"],
        rid["alice_audit"],
        rid["anonymous"],
    }
    assert ids(c.get("/api/v1/audit/access?problem=unauthorized")) == [rid["anonymous"]]
    assert ids(c.get("/api/v1/audit/access?method=POST&user=carol")) == [rid["carol_claim"]]
    assert ids(c.get("/api/v1/audit/access?route=/api/v1/workitems")) == [rid["svc_list"]]
    assert ids(c.get(f"/api/v1/audit/access?request_id={rid['svc_list']}")) == [rid["svc_list"]]
    at = AccessRecord.objects.get(request_id=rid["alice_audit"]).at
    after = c.get("/api/v1/audit/access", {"after": at.isoformat(), "user": "alice"})
    assert ids(after) == [rid["alice_audit"]]
    before = c.get("/api/v1/audit/access", {"before": at.isoformat(), "user": "alice"})
    assert ids(before) == [rid["alice_claim"]]
    assert ids(api(admin).get("/api/v1/audit/access?user=svc")) == [rid["svc_list"]]


def test_pages_follow_the_cursor(api, sam, logged):
    c = api(sam)
    seen, url = [], "/api/v1/audit/access?page_size=2"
    while url:
        page = c.get(url).json()
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) >= 5


@pytest.mark.parametrize(
    "query, field",
    [("status=40", "status"), ("status=6xx", "status"), ("status=abc", "status"), ("after=yesterday", "after")],
)
def test_bad_filters_are_400_naming_them(api, sam, query, field):
    body = assert_problem(api(sam).get(f"/api/v1/audit/access?{query}"), 400, "validation-error")
    assert field in json.dumps(body)
    body = assert_problem(api(sam).get("/api/v1/audit/access?colour=red"), 400, "validation-error")
    assert "colour" in body["detail"]


def test_the_admin_shows_it_read_only(admin_client, api, alice):
    resp = api(alice).get("/api/v1/queues")
    rec = record_of(resp)
    assert admin_client.get("/admin/audit/accessrecord/").status_code == 200
    page = admin_client.get(f"/admin/audit/accessrecord/{rec.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(f"/admin/audit/accessrecord/{rec.pk}/change/", {}).status_code == 403
    assert admin_client.post(f"/admin/audit/accessrecord/{rec.pk}/delete/", {"post": "yes"}).status_code == 403


# --- retention --------------------------------------------------------------------------------


def test_the_purge_removes_records_past_the_retention_and_keeps_the_rest(api, api_config, alice):
    api_config({"accessLog": {"retentionDays": 7}})
    for _ in range(3):
        api(alice).get("/api/v1/queues")
    now = timezone.now()
    rows = list(AccessRecord.objects.order_by("id"))
    for rec, age in zip(rows, (timedelta(days=30), timedelta(days=7, seconds=1), timedelta(days=6)), strict=True):
        AccessRecord.objects.filter(pk=rec.pk).update(at=now - age)
    assert access_log_purge(now=now, batch=1) == 2
    assert list(AccessRecord.objects.values_list("id", flat=True)) == [rows[2].pk]
    api_config({"accessLog": {"retentionDays": 5}})
    assert tasks.purge_access_log.apply().get() == 1 and not AccessRecord.objects.exists()
    job = settings.CELERY_BEAT_SCHEDULE["audit-purge-access-log"]
    assert job["task"] == tasks.purge_access_log.name and job["schedule"] <= 24 * 3600
