"""Task types (issue 16): the defaults of a workflow's tasks, their API, registration of a whole
workflow, and how a create, masking and complete use them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audit.models import AuditRecord
from tests import factories
from tests.api.helpers import assert_field_error, assert_problem
from tests.querycount import count_statements
from tests.workitems.test_query_budget import BUDGET, fresh
from workitems import services
from workitems.errors import ValidationFailed
from workitems.models import TaskType, WorkItem

pytestmark = pytest.mark.django_db
BASE = "/api/v1/task-types"
RESULT_SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


@pytest.fixture
def review_type(svc, queue, team_b):
    """claims/review: team A's queue, priority 80, 2 h SLA, team B as candidates, a skill, a
    sensitive key and a result schema."""
    return services.task_type_create(
        actor=svc,
        data={
            "workflow_id": "claims",
            "task_name": "review",
            "queue": queue.name,
            "priority": 80,
            "sla": "PT2H",
            "candidate_groups": [team_b.name],
            "required_skills": ["german"],
            "sensitive_keys": ["iban"],
            "result_schema": RESULT_SCHEMA,
        },
    )


def create(actor, **body):
    return services.work_item_create(actor=actor, data={"workflow_id": "claims", "task_name": "review", **body})


# --- defaults on create -------------------------------------------------------------------------------


def test_a_create_without_a_queue_takes_every_default_of_its_task_type(svc, review_type, queue):
    item = create(svc)
    assert item.queue_id == queue.pk and item.task_type_id == review_type.pk
    assert item.priority == 80 and item.required_skills == ["german"]
    assert sorted(g.name for g in item.candidate_groups.all()) == ["team-b"]
    assert item.due_at == item.created_at + timedelta(hours=2)
    stored = WorkItem.objects.get(pk=item.pk)
    assert stored.task_type_id == review_type.pk and stored.priority == 80


def test_explicit_create_fields_win_over_the_task_type(svc, review_type, team_a):
    other = factories.queue("other-queue", groups=[team_a])
    due = "2030-01-01T00:00:00Z"
    item = create(
        svc, queue=other.name, priority=5, due_at=due, candidate_groups=["team-a"], required_skills=["french"]
    )
    assert item.queue_id == other.pk and item.priority == 5 and item.required_skills == ["french"]
    assert item.due_at.isoformat().startswith("2030-01-01T00:00:00")
    assert [g.name for g in item.candidate_groups.all()] == ["team-a"]
    assert item.task_type_id == review_type.pk  # the rest (masking, the result schema) still applies


def test_the_task_type_sla_wins_over_the_queue_sla(svc, team_a):
    q = factories.queue("slow", groups=[team_a], sla=timedelta(days=3))
    services.task_type_create(actor=svc, data={"workflow_id": "claims", "task_name": "review", "sla": "PT1H"})
    item = create(svc, queue=q.name)
    assert item.due_at == item.created_at + timedelta(hours=1)
    plain = services.work_item_create(actor=svc, data={"workflow_id": "claims", "task_name": "other", "queue": q.name})
    assert plain.due_at == plain.created_at + timedelta(days=3) and plain.task_type_id is None


def test_a_create_with_neither_queue_nor_task_type_is_the_same_400(api_as, svc):
    resp = api_as(svc).post("/api/v1/workitems", {"workflow_id": "nowhere", "task_name": "t"}, format="json")
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, "queue", "this field is required")
    assert not WorkItem.objects.exists()


def test_a_task_type_without_a_queue_still_needs_one_on_create(svc, queue):
    services.task_type_create(actor=svc, data={"workflow_id": "claims", "task_name": "review", "priority": 70})
    with pytest.raises(ValidationFailed) as caught:
        create(svc)
    assert caught.value.errors == [{"field": "queue", "message": "this field is required"}]
    assert create(svc, queue=queue.name).priority == 70


def test_an_inactive_task_type_is_not_applied(svc, review_type, queue):
    services.task_type_update(actor=svc, workflow_id="claims", task_name="review", data={"active": False})
    with pytest.raises(ValidationFailed):
        create(svc)
    item = create(svc, queue=queue.name)
    assert item.task_type_id is None and item.priority == 50


def test_bulk_create_applies_each_body_its_own_task_type(svc, review_type, queue, team_a):
    other = factories.queue("intake", groups=[team_a])
    services.task_type_create(
        actor=svc, data={"workflow_id": "claims", "task_name": "intake", "queue": other.name, "priority": 10}
    )
    items = services.work_item_create_many(
        actor=svc,
        items=[
            {"workflow_id": "claims", "task_name": "review"},
            {"workflow_id": "claims", "task_name": "intake"},
            {"workflow_id": "claims", "task_name": "review", "priority": 1},
        ],
    )
    assert [(i.queue.name, i.priority) for i in items] == [(queue.name, 80), ("intake", 10), (queue.name, 1)]
    with pytest.raises(ValidationFailed) as caught:
        services.work_item_create_many(
            actor=svc, items=[{"workflow_id": "claims", "task_name": "review"}, {"workflow_id": "x", "task_name": "y"}]
        )
    assert caught.value.errors == [{"field": "items[1].queue", "message": "this field is required"}]
    assert WorkItem.objects.count() == 3


def test_a_create_with_a_task_type_keeps_a_small_statement_budget(svc, review_type):
    """A create that takes its task type's defaults reads the task type and its groups: two
    statements on top of a plain create's (whose budget does not change: it learns there is no
    task type from the queue's read)."""
    actor = fresh(svc)
    with count_statements() as seen:
        item = create(actor)
    budget = BUDGET["create (task type)"]
    assert len(seen) <= budget, seen.report(f"create with a task type is over its budget of {budget}")
    assert item.priority == 80


def test_a_plain_create_sends_no_task_type_statement(svc, queue):
    """Whether a create has a task type is a subquery of the queue's read, not a statement of its
    own: a create of a task without one costs the same whether task types exist or not."""

    def plain_create() -> int:
        actor = fresh(svc)
        with count_statements() as seen:
            services.work_item_create(actor=actor, data=factories.item_body(queue))
        assert len(seen) <= BUDGET["create (pull queue)"], seen.report("plain create")
        return len(seen)

    without = plain_create()
    services.task_type_create(actor=svc, data={"workflow_id": "claims", "task_name": "review", "queue": queue.name})
    assert plain_create() == without


# --- masking and the result schema ----------------------------------------------------------------------


def test_the_task_type_sensitive_keys_add_to_the_queue_s(api_as, svc, alice, review_type, queue):
    queue.sensitive_keys = ["ssn"]
    queue.save()
    item = create(svc, context_data={"iban": "DE00", "ssn": "123", "city": "Bonn"})
    seen = api_as(alice).get(f"/api/v1/workitems/{item.pk}").json()["context_data"]
    assert seen == {"iban": "***", "ssn": "***", "city": "Bonn"}
    assert api_as(svc).get(f"/api/v1/workitems/{item.pk}").json()["context_data"]["iban"] == "DE00"
    listed = api_as(alice).get("/api/v1/workitems").json()["results"]
    assert [r["context_data"]["iban"] for r in listed] == ["***"]


def test_the_task_type_result_schema_replaces_the_lifecycle_s(svc, alice, review_type, queue):
    queue.lifecycle = factories.lifecycle(
        "strict", result_schema={"type": "object", "required": ["other"]}, start_step="optional"
    )
    queue.save()
    item = create(svc, candidate_groups=["team-a"], required_skills=[])
    item = services.work_item_claim(item_id=item.pk, actor=alice)
    with pytest.raises(ValidationFailed) as caught:
        services.work_item_complete(item_id=item.pk, actor=alice, result={"approved": "yes"})
    assert caught.value.errors[0]["field"] == "result.approved"
    done = services.work_item_complete(item_id=item.pk, actor=alice, result={"approved": True})
    assert done.state == "COMPLETED"  # the lifecycle's `other` is not asked for


def test_without_a_result_schema_the_lifecycle_s_applies(svc, alice, queue):
    queue.lifecycle = factories.lifecycle("strict", result_schema={"type": "object", "required": ["other"]})
    queue.save()
    services.task_type_create(actor=svc, data={"workflow_id": "claims", "task_name": "review", "queue": queue.name})
    item = services.work_item_start(
        item_id=services.work_item_claim(item_id=create(svc).pk, actor=alice).pk, actor=alice
    )
    with pytest.raises(ValidationFailed):
        services.work_item_complete(item_id=item.pk, actor=alice, result={})
    assert services.work_item_complete(item_id=item.pk, actor=alice, result={"other": 1}).state == "COMPLETED"


# --- the API ----------------------------------------------------------------------------------------------


def test_create_read_and_patch_over_the_api(api_as, svc, sam, queue, team_a):
    body = {
        "workflow_id": "claims",
        "task_name": "review",
        "workflow_name": "Claims",
        "queue": queue.name,
        "priority": 70,
        "sla": "PT4H",
        "candidate_groups": ["team-a"],
        "required_skills": ["german"],
        "sensitive_keys": ["iban"],
        "result_schema": RESULT_SCHEMA,
        "form": {"fields": [{"name": "note", "label": "Your note"}]},
    }
    resp = api_as(svc).post(BASE, body, format="json")
    assert resp.status_code == 201, resp.content
    assert resp["Location"] == f"{BASE}/claims/review"
    out = resp.json()
    assert {k: out[k] for k in body} == {**body, "sla": "P0DT04H00M00S"} and out["active"] is True
    assert api_as(sam).get(f"{BASE}/claims/review").json() == out
    assert [t["task_name"] for t in api_as(sam).get(BASE, {"workflow_id": "claims"}).json()] == ["review"]
    assert api_as(sam).get(BASE, {"workflow_id": "other"}).json() == []
    resp = api_as(sam).patch(f"{BASE}/claims/review", {"priority": 90, "queue": None}, format="json")
    assert resp.status_code == 200, resp.content
    assert (resp.json()["priority"], resp.json()["queue"]) == (90, None)
    tt = TaskType.objects.get()
    records = list(AuditRecord.objects.filter(stream=f"task_type:{tt.pk}").order_by("seq"))
    assert [r.action for r in records] == ["task_type.create", "task_type.update"]
    assert records[1].data["changes"] == {"priority": [70, 90], "queue": [queue.name, None]}
    assert records[1].actor_id == sam.pk


def test_a_second_create_of_the_same_key_is_a_conflict(api_as, svc):
    body = {"workflow_id": "claims", "task_name": "review"}
    assert api_as(svc).post(BASE, body, format="json").status_code == 201
    assert_problem(api_as(svc).post(BASE, body, format="json"), 409, "conflict")
    assert TaskType.objects.count() == 1


def test_workers_may_neither_read_nor_define_task_types(api_as, alice, svc):
    services.task_type_create(actor=svc, data={"workflow_id": "claims", "task_name": "review"})
    assert_problem(api_as(alice).get(BASE), 403, "not-allowed")
    assert_problem(api_as(alice).get(f"{BASE}/claims/review"), 403, "not-allowed")
    resp = api_as(alice).patch(f"{BASE}/claims/review", {"priority": 1}, format="json")
    assert_problem(resp, 403, "not-allowed")
    assert_problem(api_as(alice).post(BASE, {"workflow_id": "a", "task_name": "b"}, format="json"), 403, "not-allowed")
    assert_problem(
        api_as(alice).post("/api/v1/workflows", {"id": "a", "tasks": [{"name": "b"}]}, format="json"),
        403,
        "not-allowed",
    )
    assert TaskType.objects.get().priority is None


def test_an_unknown_task_type_is_a_404(api_as, sam):
    assert_problem(api_as(sam).get(f"{BASE}/nope/nothing"), 404, "not-found")
    assert_problem(api_as(sam).patch(f"{BASE}/nope/nothing", {"priority": 1}, format="json"), 404, "not-found")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"queue": "missing"}, "queue", "unknown queue 'missing'"),
        ({"priority": 101}, "priority", "from 0 to 100"),
        ({"priority": True}, "priority", "from 0 to 100"),
        ({"sla": "4 hours"}, "sla", "ISO 8601 duration"),
        ({"result_schema": {"type": "nonsense"}}, "result_schema", "not a valid JSON Schema"),
        ({"result_schema": "yes"}, "result_schema", "JSON Schema"),
        ({"candidate_groups": ["ghosts"]}, "candidate_groups", "unknown groups: ghosts"),
        ({"required_skills": "german"}, "required_skills", "list"),
        ({"sensitive_keys": [""]}, "sensitive_keys", "list"),
        (
            {"form": {"fields": [{"name": "missing"}]}, "result_schema": RESULT_SCHEMA},
            "form.fields[0].name",
            "not a property",
        ),
        ({"form": {"layout": "grid"}}, "form", "fields"),
        ({"form": {"fields": [{"name": "a", "colour": "red"}]}}, "form.fields[0]", "name, label and help"),
        ({"workflow_id": "a/b"}, "workflow_id", '"/"'),
        ({"task_name": ""}, "task_name", "1 to 200"),
        ({"task_name": "x" * 201}, "task_name", "1 to 200"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(api_as, svc, queue, body, field, message):
    before = AuditRecord.objects.count()
    resp = api_as(svc).post(BASE, {"workflow_id": "claims", "task_name": "review", **body}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), field, message)
    assert not TaskType.objects.exists() and AuditRecord.objects.count() == before


def test_a_bad_patch_changes_nothing(api_as, svc, review_type):
    resp = api_as(svc).patch(f"{BASE}/claims/review", {"priority": 50, "result_schema": {"type": 3}}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "result_schema")
    resp = api_as(svc).patch(f"{BASE}/claims/review", {"task_name": "other"}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "task_name", "cannot change")
    review_type.refresh_from_db()
    assert review_type.priority == 80 and review_type.task_name == "review"
    assert AuditRecord.objects.filter(action="task_type.update").count() == 0


# --- POST /workflows -----------------------------------------------------------------------------------------


def workflow(**tasks):
    return {"id": "claims", "name": "Claims", "tasks": [{"name": n, **d} for n, d in tasks.items()]}


def test_a_workflow_registers_its_task_types_in_one_call(api_as, svc, queue):
    body = workflow(intake={"queue": queue.name, "priority": 20}, review={"queue": queue.name, "sla": "PT8H"})
    resp = api_as(svc).post("/api/v1/workflows", body, format="json")
    assert resp.status_code == 200, resp.content
    out = resp.json()
    assert (out["id"], out["name"], out["created"], out["updated"]) == ("claims", "Claims", ["intake", "review"], [])
    assert [(t["task_name"], t["workflow_name"], t["priority"]) for t in out["task_types"]] == [
        ("intake", "Claims", 20),
        ("review", "Claims", None),
    ]
    item = create(svc, task_name="intake")
    assert item.queue_id == queue.pk and item.priority == 20


def test_a_repost_upserts_replaces_definitions_and_keeps_unlisted_task_types(api_as, svc, queue):
    first = workflow(intake={"queue": queue.name, "priority": 20}, review={"queue": queue.name})
    api_as(svc).post("/api/v1/workflows", first, format="json")
    again = api_as(svc).post("/api/v1/workflows", first, format="json").json()
    assert (again["created"], again["updated"], again["unchanged"]) == ([], [], ["intake", "review"])
    audited = AuditRecord.objects.filter(stream__startswith="task_type:").count()
    assert audited == 2  # the re-post of the same body wrote nothing

    second = workflow(intake={"queue": queue.name}, approve={"priority": 99})
    out = api_as(svc).post("/api/v1/workflows", second, format="json").json()
    assert (out["created"], out["updated"], out["unchanged"]) == (["approve"], ["intake"], [])
    kept = {t.task_name: t for t in TaskType.objects.filter(workflow_id="claims")}
    assert set(kept) == {"intake", "review", "approve"}
    assert kept["intake"].priority is None  # a field the new definition leaves out is reset
    assert kept["review"].active and kept["review"].queue_id == queue.pk  # unlisted: kept as it was


def test_a_workflow_with_one_bad_task_writes_nothing(api_as, svc, queue):
    body = workflow(intake={"queue": queue.name}, review={"queue": "missing", "priority": 500})
    resp = api_as(svc).post("/api/v1/workflows", body, format="json")
    problem = assert_problem(resp, 400, "validation-error")
    assert_field_error(problem, "tasks[1].queue", "unknown queue")
    assert_field_error(problem, "tasks[1].priority")
    resp = api_as(svc).post(
        "/api/v1/workflows", {"id": "claims", "tasks": [{"name": "a"}, {"name": "a"}]}, format="json"
    )
    assert_field_error(assert_problem(resp, 400, "validation-error"), "tasks[1].name", "listed twice")
    resp = api_as(svc).post("/api/v1/workflows", {"id": "claims", "tasks": []}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "tasks")
    assert not TaskType.objects.exists() and not AuditRecord.objects.filter(stream__startswith="task_type:").exists()


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "https://example.com/schema.json"}, "only references inside the schema"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "does not resolve"),
        ({"properties": {"a": {"$id": "https://x/", "type": "string"}}}, "$id below the root"),
    ],
)
def test_a_result_schema_whose_references_would_not_resolve_is_refused(api_as, svc, schema, message):
    """Such a schema passes the metaschema but would fail every complete (a 500), or fetch from elsewhere."""
    body = {"workflow_id": "claims", "task_name": "review", "result_schema": schema}
    resp = api_as(svc).post(BASE, body, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "result_schema", message)
    ok = {"$defs": {"yes": {"type": "boolean"}}, "properties": {"approved": {"$ref": "#/$defs/yes"}}}
    assert api_as(svc).post(BASE, {**body, "result_schema": ok}, format="json").status_code == 201
