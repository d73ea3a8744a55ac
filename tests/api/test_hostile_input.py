"""Hostile but well-formed input (issue 10, items 2 and 7): every one is a 4xx problem that
names what is wrong, never a 500, and nothing is written.

- times at the edge of the calendar (a year PostgreSQL keeps but Python cannot read) and
  impossible dates, everywhere a time comes in: create, bulk create, the bus, availability,
  list filters, cursors and the admin (model validators);
- lone UTF-16 surrogates, deep nesting and non-finite numbers in JSON bodies;
- forged cursors whose value has the wrong type for the ordering;
- If-Match with non-ASCII digits or thousands of digits;
- huge durations on queue fields;
- a JWT whose user id is not an integer.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from directory.admin import ProfileForm
from directory.models import Profile
from events import inbound
from events.models import InboxCommand
from tests.api.helpers import assert_field_error, assert_problem, create_body, item_state
from workitems.models import Queue, WorkItem

# Times a year PostgreSQL keeps (or an offset pushes past Python's calendar), before 1970,
# or after the accepted range (docs/api.md, "Conventions": 1970-01-01Z to 2999-12-31Z).
EDGE_TIMES = [
    "0001-01-01T00:00:00+14:00",  # year 0 in UTC
    "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
    "9999-12-31T23:59:59Z",  # readable, but past the range
    "3000-01-01T00:00:00Z",
    "2999-12-31T23:59:59-00:01",  # 3000 in UTC
    "1969-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00+00:01",  # 1969 in UTC
]
# Not a time at all for Python: year 10000, impossible dates and offsets, non-ASCII digits.
IMPOSSIBLE_TIMES = [
    "10000-01-01T00:00:00Z",
    "+10000-01-01T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-13-01T10:00:00Z",
    "2026-04-31T10:00:00+02:00",
    "2026-01-01T24:00:01Z",
    "2026-01-01T10:00:00+25:00",
    "2026-01-01T10:00:00-24:30",
    "٢٠٢٦-01-01T10:00:00Z",
]
BAD_TIMES = EDGE_TIMES + IMPOSSIBLE_TIMES
SANE_EDGES = ["1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z", "2999-12-31T00:00:00-14:00", "2100-06-30T12:00:00+14:00"]


def _raw_post(client, url: str, text: str, **extra):
    """POST `text` as it is (json.dumps would refuse or normalise what is tested)."""
    return client.generic("POST", url, text.encode("utf-8"), content_type="application/json", **extra)


# --- times: create, bulk, bus ------------------------------------------------------------


@pytest.mark.parametrize("field", ["due_at", "follow_up_at"])
@pytest.mark.parametrize("raw", BAD_TIMES)
def test_create_refuses_a_time_out_of_range_naming_the_field(api, svc, queue, field, raw):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, **{field: raw}), format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), field)
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z"])
@pytest.mark.parametrize(("position", "field"), [(1, "due_at"), (2, "follow_up_at"), (0, "due_at")])
def test_bulk_create_refuses_the_batch_naming_the_item(api, svc, queue, raw, position, field):
    items = [create_body(queue), create_body(queue), create_body(queue)]
    items[position][field] = raw
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": items}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), f"items[{position}].{field}")
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-07-20T20:17:00Z"])
def test_bus_create_with_a_time_out_of_range_is_rejected(svc, queue, raw):
    cmd = inbound.parse(
        json.dumps(
            {
                "command_id": uuid.uuid4().hex,
                "command": "create",
                "actor": svc.username,
                "data": create_body(queue, due_at=raw),
            }
        ).encode()
    )
    assert inbound.apply(cmd) == inbound.REJECTED
    error = InboxCommand.objects.get(command_id=cmd["command_id"]).error
    assert error["type"] == "validation-error"
    assert [e["field"] for e in error["errors"]] == ["due_at"]
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("due", SANE_EDGES)
def test_an_item_with_a_far_but_sane_due_date_reads_lists_claims_and_cancels(api, svc, alice, sam, queue, due):
    created = api(svc).post("/api/v1/workitems", create_body(queue, due_at=due), format="json")
    assert created.status_code == 201, created.content
    item_id = created.json()["id"]
    other = api(svc).post("/api/v1/workitems", create_body(queue), format="json").json()["id"]
    assert api(alice).get(f"/api/v1/workitems/{item_id}").status_code == 200
    for ordering in ("due_at", "-due_at"):
        seen, url = [], f"/api/v1/workitems?ordering={ordering}&page_size=1"
        while url:
            page = api(alice).get(url)
            assert page.status_code == 200, page.content
            seen += [i["id"] for i in page.json()["results"]]
            url = page.json()["next"]
        assert sorted(seen) == sorted([item_id, other])
    assert api(alice).get(f"/api/v1/workitems?due_after={due.replace('+', '%2B')}").status_code == 200
    claimed = api(alice).post("/api/v1/workitems/claim-next", {"queue": queue.name}, format="json")
    assert claimed.status_code == 200, claimed.content
    assert api(alice).post(f"/api/v1/workitems/{item_id}/claim").status_code in (200, 409)
    cancelled = api(sam).post(f"/api/v1/workitems/{item_id}/cancel", {"reason": "done"}, format="json")
    assert cancelled.status_code == 200, cancelled.content
    assert item_state(item_id)[0] == "CANCELLED"


# --- times: availability, filters, cursors, admin ---------------------------------------------


@pytest.mark.parametrize("field", ["out_of_office_from", "out_of_office_until"])
@pytest.mark.parametrize("raw", BAD_TIMES)
def test_availability_refuses_a_time_out_of_range_naming_the_field(api, alice, field, raw):
    body = {"available": False, field: raw}
    resp = api(alice).patch(f"/api/v1/users/{alice.username}/availability", body, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), field)
    profile = Profile.objects.filter(user=alice).first()
    assert profile is None or profile.out_of_office_from is None


@pytest.mark.parametrize("param", ["due_before", "due_after", "created_before", "created_after"])
@pytest.mark.parametrize("raw", BAD_TIMES)
def test_a_list_filter_with_a_time_out_of_range_is_400(api, sam, make_item, param, raw):
    make_item(due_at=(timezone.now() + timedelta(days=30)).isoformat())
    resp = api(sam).get("/api/v1/workitems", {param: raw})
    assert_field_error(assert_problem(resp, 400, "validation-error"), param)


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+14:00", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59-14:00"])
def test_the_audit_time_filters_use_the_same_bound(api, sam, raw):
    for param in ("after", "before"):
        assert_field_error(assert_problem(api(sam).get("/api/v1/audit", {param: raw}), 400, "validation-error"), param)


def _cursor(value, *, kind="v", pk=1, reverse=0) -> str:
    raw = json.dumps({"k": kind, "v": value, "i": pk, "r": reverse}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("ordering", "token"),
    [
        # times the cursor cannot hold
        ("due_at", _cursor("0001-01-01T00:00:00+14:00", kind="dt")),
        ("due_at", _cursor("9999-12-31T23:59:59-14:00", kind="dt")),
        ("-created_at", _cursor("2026-02-30T00:00:00+00:00", kind="dt")),
        ("created_at", _cursor("2026-01-01T00:00:00+25:00", kind="dt")),
        # a value of the wrong type for the ordering
        ("priority", _cursor("abc")),
        ("priority", _cursor("2026-01-01T00:00:00+00:00", kind="dt")),
        ("priority", _cursor(10**30)),
        ("priority", _cursor(True)),
        ("due_at", _cursor(5)),
        ("-created_at", _cursor("not a time")),
        ("-created_at", _cursor(None)),
        ("-created_at", _cursor([1])),
        ("-created_at", _cursor("2026-01-01T00:00:00+00:00", pk=10**30, kind="dt")),
    ],
)
def test_a_forged_cursor_is_400_not_500(api, sam, make_item, ordering, token):
    make_item()
    resp = api(sam).get("/api/v1/workitems", {"ordering": ordering, "cursor": token})
    assert_field_error(assert_problem(resp, 400, "validation-error"), "cursor")


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/api/v1/users", _cursor(12)),
        ("/api/v1/users", _cursor("\ud800")),
        ("/api/v1/users", _cursor("a\u0000")),
        ("/api/v1/groups", _cursor("2026-01-01T00:00:00+00:00", kind="dt")),
        ("/api/v1/audit", _cursor("seven")),
        ("/api/v1/audit", _cursor(1.5)),
        ("/api/v1/notifications", _cursor("x")),
    ],
)
def test_a_forged_cursor_on_other_lists_is_400(api, sam, path, token):
    resp = api(sam).get(path, {"cursor": token})
    assert_field_error(assert_problem(resp, 400, "validation-error"), "cursor")


MODEL_EDGES = ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z"]


def _assert_full_clean_refuses(instance, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        instance.full_clean(exclude=[f.name for f in type(instance)._meta.fields if f.name != field])
    assert field in exc.value.message_dict, exc.value.message_dict


@pytest.mark.parametrize("raw", MODEL_EDGES)
def test_profile_validators_refuse_times_out_of_range(alice, raw):
    """What the admin's profile form (a ModelForm: full_clean) and any full_clean refuse."""
    for field in ("out_of_office_from", "out_of_office_until"):
        _assert_full_clean_refuses(Profile(user=alice, **{field: parse_datetime(raw)}), field)


@pytest.mark.parametrize("raw", MODEL_EDGES)
def test_work_item_validators_refuse_times_out_of_range(queue, raw):
    """What any full_clean of an item (a form of the admin, a script) refuses."""
    for field in ("due_at", "follow_up_at"):
        item = WorkItem(workflow_id="w", task_name="t", queue=queue, **{field: parse_datetime(raw)})
        _assert_full_clean_refuses(item, field)


def test_the_time_range_validator_takes_the_edges_of_the_range(queue):
    for raw in SANE_EDGES:
        WorkItem(workflow_id="w", task_name="t", queue=queue, due_at=parse_datetime(raw)).full_clean(
            exclude=[f.name for f in WorkItem._meta.fields if f.name != "due_at"]
        )


@pytest.mark.parametrize("raw", ["1969-12-31 23:00:00", "0001-01-01 00:00:00", "3000-01-01 00:00:00"])
def test_the_admin_profile_form_refuses_a_time_out_of_range(alice, raw):
    profile, _ = Profile.objects.get_or_create(user=alice)
    for field in ("out_of_office_from", "out_of_office_until"):
        form = ProfileForm(data={"skills": "{}", field: raw}, instance=profile)
        assert not form.is_valid()
        assert field in form.errors, form.errors
    profile.refresh_from_db()
    assert (profile.out_of_office_from, profile.out_of_office_until) == (None, None)


# --- JSON bodies: surrogates, nesting, numbers --------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"title": "a\\ud800b"}', "title"),
        ('{"description": "\\udfff"}', "description"),
        ('{"context_data": {"k": "\\ud83d"}}', "context_data.k"),
        ('{"context_data": {"\\udc00": 1}}', "context_data.\\udc00"),
        ('{"context_data": {"list": ["ok", "\\ud800\\ud800"]}}', "context_data.list[1]"),
        ('{"candidate_users": ["\\ud800"]}', "candidate_users[0]"),
    ],
)
def test_a_lone_surrogate_in_a_create_body_is_400_naming_the_field(api, svc, queue, text, field):
    base = json.dumps(create_body(queue))[:-1]  # the body without its closing brace
    resp = _raw_post(api(svc), "/api/v1/workitems", base + ", " + text[1:])
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, field, "surrogate")
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize(
    ("path", "text", "field"),
    [
        ("/api/v1/workitems/{id}/cancel", '{"reason": "\\ud800"}', "reason"),
        ("/api/v1/workitems/{id}/complete", '{"result": {"\\ud800": 1}}', "result.\\ud800"),
        ("/api/v1/workitems/claim-next", '{"queue": "\\udfff"}', "queue"),
        ("/api/v1/queues", '{"name": "q1", "description": "\\ud800"}', "description"),
        ("/api/v1/subscriptions", '{"url": "https://example.com/\\ud800", "events": ["*"]}', "url"),
        ("/api/v1/workitems/bulk", '{"items": [{"title": "\\ud800"}]}', "items[0].title"),
        ("/api/v1/auth/token", '{"username": "\\ud800", "password": "x"}', "username"),
    ],
)
def test_a_lone_surrogate_anywhere_is_400(api, admin, make_item, path, text, field):
    item = make_item()
    resp = _raw_post(api(admin), path.format(id=item.pk), text)
    assert_field_error(assert_problem(resp, 400, "validation-error"), field, "surrogate")
    assert item_state(item.pk)[0] == "OFFERED"


def test_a_lone_surrogate_in_an_availability_patch_is_400(api, alice):
    resp = api(alice).generic(
        "PATCH",
        f"/api/v1/users/{alice.username}/availability",
        b'{"available": false, "delegate": "\\ud800"}',
        content_type="application/json",
    )
    assert_field_error(assert_problem(resp, 400, "validation-error"), "delegate", "surrogate")


@pytest.mark.parametrize("depth", [65, 200, 5000, 100_000])
def test_deeply_nested_json_is_400(api, svc, queue, depth):
    nested = "[" * depth + "]" * depth
    base = json.dumps(create_body(queue))[:-1]
    resp = _raw_post(api(svc), "/api/v1/workitems", base + ', "context_data": {"deep": ' + nested + "}}")
    body = assert_problem(resp, 400, "validation-error")
    assert "nested deeper than 64 levels" in body["detail"]
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("path", ["/api/v1/workitems/{id}/complete", "/api/v1/queues", "/api/v1/auth/token"])
def test_deep_nesting_is_400_on_every_body(api, admin, make_item, path):
    item = make_item()
    resp = _raw_post(api(admin), path.format(id=item.pk), '{"x": ' + '{"k": ' * 3000 + "1" + "}" * 3000 + "}")
    assert_problem(resp, 400, "validation-error", detail_contains="nested deeper")
    assert item_state(item.pk)[0] == "OFFERED"


def test_nesting_within_the_limit_is_stored(api, svc, queue):
    nested = {"a": 1}
    for _ in range(60):
        nested = {"n": nested}
    resp = api(svc).post("/api/v1/workitems", create_body(queue, context_data=nested), format="json")
    assert resp.status_code == 201, resp.content
    assert WorkItem.objects.get().context_data == nested


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" * 5000])
def test_a_number_json_cannot_carry_is_400(api, svc, queue, number):
    base = json.dumps(create_body(queue))[:-1]
    resp = _raw_post(api(svc), "/api/v1/workitems", base + ', "context_data": {"n": ' + number + "}}")
    assert_problem(resp, 400, "malformed-request", detail_contains="JSON")
    assert not WorkItem.objects.exists()


# --- If-Match --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ['"١"', '"١٢"', '"²"', '"１"', '"' + "1" * 5000 + '"', '"' + "9" * 11 + '"', '"1' + "0" * 30 + '"', '"-1"', '"+1"'],
)
def test_if_match_with_odd_digits_never_matches(api, alice, make_item, header):
    """The item is at version 1: none of these tags is `"1"`, so each fails the precondition."""
    item = make_item()
    resp = api(alice).post(f"/api/v1/workitems/{item.pk}/claim", HTTP_IF_MATCH=header)
    assert_problem(resp, 412, "stale-version", detail_contains="ASCII digits")
    assert item_state(item.pk) == ("OFFERED", 1, None)


def test_if_match_with_the_version_still_matches(api, alice, make_item):
    item = make_item()
    assert api(alice).post(f"/api/v1/workitems/{item.pk}/claim", HTTP_IF_MATCH=' "1" ').status_code == 200


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["sla", "reservation_timeout"])
@pytest.mark.parametrize(
    "raw", ["P999999999999D", "PT99999999999999H", "PT9999999999999999999999M", "P99999999D", "P367D", "P١D", "P0D"]
)
def test_a_duration_out_of_range_is_400(api, admin, queue, field, raw):
    created = api(admin).post("/api/v1/queues", {"name": "durations", field: raw}, format="json")
    assert_field_error(assert_problem(created, 400, "validation-error"), field, "at most 366 days")
    assert not Queue.objects.filter(name="durations").exists()
    changed = api(admin).patch(f"/api/v1/queues/{queue.name}", {field: raw}, format="json")
    assert_field_error(assert_problem(changed, 400, "validation-error"), field)
    queue.refresh_from_db()
    assert getattr(queue, field) is None


def test_the_longest_duration_still_gives_items_a_due_date(api, admin, svc):
    resp = api(admin).post("/api/v1/queues", {"name": "year", "sla": "P366D"}, format="json")
    assert resp.status_code == 201, resp.content
    created = api(svc).post("/api/v1/workitems", create_body(Queue.objects.get(name="year")), format="json")
    assert created.status_code == 201, created.content
    due = parse_datetime(created.json()["due_at"])
    assert timedelta(days=365) < due - timezone.now() <= timedelta(days=366)


# --- JWT user ids ----------------------------------------------------------------------------

ODD_USER_IDS = ["abc", "", "1.5", "١", 1.5, [1], {"id": 1}, True, 0, -1, 10**30, None]


@pytest.mark.parametrize("user_id", ODD_USER_IDS, ids=repr)
def test_an_access_token_whose_user_id_is_not_an_integer_is_401(api, alice, user_id):
    token = AccessToken()
    token["user_id"] = user_id
    resp = api().get("/api/v1/workitems", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_problem(resp, 401, "unauthorized", detail_contains="user id")


@pytest.mark.parametrize("user_id", [*ODD_USER_IDS, 987654321], ids=repr)
def test_a_refresh_token_whose_user_id_is_not_a_user_is_401(api, alice, user_id):
    token = RefreshToken()
    token["user_id"] = user_id
    resp = api().post("/api/v1/auth/token/refresh", {"refresh": str(token)}, format="json")
    assert_problem(resp, 401, "unauthorized")


def test_a_token_naming_the_user_by_its_id_as_a_string_still_works(api, alice):
    token = AccessToken.for_user(alice)
    token["user_id"] = str(alice.pk)
    assert api().get("/api/v1/workitems", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    refresh = RefreshToken.for_user(alice)
    assert api().post("/api/v1/auth/token/refresh", {"refresh": str(refresh)}, format="json").status_code == 200
