"""workstream.v1.WorkItems on the real server (tests/grpcapi/conftest.py): the lifecycle through
gRPC with a JWT and with an API key, refusals as status codes with their problem type, the
idempotency key, listing, and the health and reflection services."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from audit.models import AccessRecord, AuditRecord
from config import wsconfig
from grpcapi.gen import workitems_pb2 as pb
from tests.grpcapi.conftest import jwt_for
from tests.oidc_provider import Key
from workitems.models import WorkItem

PROBLEMS = "https://workstream.dev/problems/"


def create_request(queue, **fields) -> pb.CreateWorkItemRequest:
    req = pb.CreateWorkItemRequest(workflow_id="wf-grpc", task_name="review", queue=queue.name, **fields)
    req.context_data.update({"claim_id": 8812, "note": "ok"})
    return req


def refusal(excinfo) -> tuple[grpc.StatusCode, str, dict]:
    err = excinfo.value
    trailers = dict(err.trailing_metadata() or ())
    return err.code(), trailers.get("problem-type"), json.loads(trailers["problem-bin"])


@pytest.mark.parametrize("auth", ["jwt", "api-key", "x-api-key"])
def test_create_claim_next_start_complete(stub, svc, alice, queue, api_key_md, auth):
    def creds(user):
        if auth == "jwt":
            return jwt_for(user)
        return api_key_md(user, header="authorization" if auth == "api-key" else "x-api-key")

    engine, worker = creds(svc), creds(alice)
    created, call = stub.Create.with_call(create_request(queue, priority=70), metadata=engine)
    assert created.state == "OFFERED" and created.queue == queue.name and created.priority == 70
    assert created.context_data["claim_id"] == 8812 and not created.HasField("assignee")
    assert dict(call.initial_metadata())["x-request-id"]
    row = WorkItem.objects.get(pk=created.id)
    assert row.context_data == {"claim_id": 8812, "note": "ok"}  # a whole number stays an int

    claimed = stub.ClaimNext(pb.ClaimNextRequest(queue=queue.name), metadata=worker)
    assert claimed.HasField("item") and claimed.item.id == created.id
    assert claimed.item.assignee == "alice" and claimed.item.state == "ASSIGNED"
    assert "start" in claimed.item.allowed_actions
    started = stub.Start(pb.ItemActionRequest(id=created.id, expected_version=claimed.item.version), metadata=worker)
    assert started.state == "IN_PROGRESS" and started.HasField("started_at")
    done_req = pb.CompleteRequest(id=created.id)
    done_req.result.update({"approved": True, "amount": 1200})
    done = stub.Complete(done_req, metadata=worker)
    assert done.state == "COMPLETED" and dict(done.result) == {"approved": True, "amount": 1200}
    assert WorkItem.objects.get(pk=created.id).result == {"approved": True, "amount": 1200}
    actions = list(AuditRecord.objects.filter(work_item_id=created.id).order_by("seq").values_list("action", "channel"))
    assert [a for a, _ in actions][-3:] == ["claim", "start", "complete"] and {c for _, c in actions} == {"api"}
    assert stub.ClaimNext(pb.ClaimNextRequest(), metadata=worker).HasField("item") is False  # nothing left


def test_the_message_is_the_rest_representation(stub, svc, queue, api_as):
    created = stub.Create(create_request(queue), metadata=jwt_for(svc))
    rest = api_as(svc).get(f"/api/v1/workitems/{created.id}").json()
    from_grpc = stub.Get(pb.GetWorkItemRequest(id=created.id), metadata=jwt_for(svc))
    assert set(pb.WorkItem.DESCRIPTOR.fields_by_name) == set(rest)
    for name, value in rest.items():
        field = pb.WorkItem.DESCRIPTOR.fields_by_name[name]
        if value is None:
            assert not from_grpc.HasField(name), name
        elif field.message_type is not None:
            assert json.loads(json.dumps(dict(getattr(from_grpc, name)))) == value, name
        elif field.is_repeated:
            assert list(getattr(from_grpc, name)) == value, name
        else:
            assert getattr(from_grpc, name) == value, name


def test_unauthenticated_calls_are_refused(stub, svc, queue):
    with pytest.raises(grpc.RpcError) as none:
        stub.Create(create_request(queue))
    assert refusal(none)[:2] == (grpc.StatusCode.UNAUTHENTICATED, PROBLEMS + "unauthorized")
    for bad in (("authorization", "Bearer not-a-token"), ("authorization", "Api-Key nope.nope"), ("x-api-key", "x.y")):
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.Get(pb.GetWorkItemRequest(id=1), metadata=(bad,))
        assert refusal(excinfo)[:2] == (grpc.StatusCode.UNAUTHENTICATED, PROBLEMS + "unauthorized"), bad
    assert not WorkItem.objects.exists()


def test_refusals_map_to_status_codes_with_the_problem(stub, svc, alice, carol, queue):
    engine, worker = jwt_for(svc), jwt_for(alice)
    item = stub.Create(create_request(queue), metadata=engine)
    cases = [
        # (call, request, metadata, code, kind)
        (
            stub.Create,
            pb.CreateWorkItemRequest(workflow_id="wf", task_name="t", queue=queue.name, priority=101),
            engine,
            grpc.StatusCode.INVALID_ARGUMENT,
            "validation-error",
        ),
        (
            stub.Create,
            create_request(queue, callback_url="not a url"),
            engine,
            grpc.StatusCode.INVALID_ARGUMENT,
            "validation-error",
        ),
        (stub.Get, pb.GetWorkItemRequest(id=item.id + 1000), engine, grpc.StatusCode.NOT_FOUND, "not-found"),
        (stub.Get, pb.GetWorkItemRequest(id=-1), engine, grpc.StatusCode.INVALID_ARGUMENT, "validation-error"),
        (stub.Create, create_request(queue), worker, grpc.StatusCode.PERMISSION_DENIED, "not-allowed"),
        (
            stub.Start,
            pb.ItemActionRequest(id=item.id),
            worker,
            grpc.StatusCode.FAILED_PRECONDITION,
            "invalid-transition",
        ),
        (
            stub.Claim,
            pb.ItemActionRequest(id=item.id, expected_version=item.version + 5),
            worker,
            grpc.StatusCode.ABORTED,
            "stale-version",
        ),
        (
            stub.List,
            pb.ListWorkItemsRequest(state=["nonsense"]),
            engine,
            grpc.StatusCode.INVALID_ARGUMENT,
            "validation-error",
        ),
        (stub.List, pb.ListWorkItemsRequest(cursor="!!"), engine, grpc.StatusCode.INVALID_ARGUMENT, "validation-error"),
    ]
    for method, request, md, code, kind in cases:
        with pytest.raises(grpc.RpcError) as excinfo:
            method(request, metadata=md)
        got_code, got_type, problem = refusal(excinfo)
        assert (got_code, got_type) == (code, PROBLEMS + kind), (request, problem)
        assert problem["type"] == got_type and problem["detail"] == excinfo.value.details()
    stub.Claim(pb.ItemActionRequest(id=item.id), metadata=worker)
    with pytest.raises(grpc.RpcError) as taken:
        stub.Claim(pb.ItemActionRequest(id=item.id), metadata=jwt_for(carol))
    code, kind, problem = refusal(taken)
    assert (code, kind) == (grpc.StatusCode.FAILED_PRECONDITION, PROBLEMS + "already-claimed")
    assert problem["state"] == "ASSIGNED"  # the REST problem's members come along
    stub.Start(pb.ItemActionRequest(id=item.id), metadata=worker)
    failed = stub.Fail(pb.ReasonRequest(id=item.id, reason="cannot"), metadata=worker)
    assert failed.state == "FAILED" and failed.outcome_reason == "cannot"


def test_cancel_with_a_reason(stub, svc, queue):
    item = stub.Create(create_request(queue), metadata=jwt_for(svc))
    cancelled = stub.Cancel(pb.ReasonRequest(id=item.id, reason="withdrawn"), metadata=jwt_for(svc))
    assert cancelled.state == "CANCELLED" and cancelled.outcome_reason == "withdrawn"


def test_rate_limit_is_resource_exhausted(stub, svc, queue, ws_config):
    ws_config({"rateLimits": {"default": "2/minute", "perRole": {"service": "2/minute"}}})
    md = jwt_for(svc)
    item = stub.Create(create_request(queue), metadata=md)
    stub.Get(pb.GetWorkItemRequest(id=item.id), metadata=md)
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Get(pb.GetWorkItemRequest(id=item.id), metadata=md)
    code, kind, _ = refusal(excinfo)
    assert (code, kind) == (grpc.StatusCode.RESOURCE_EXHAUSTED, PROBLEMS + "rate-limited")
    assert int(dict(excinfo.value.trailing_metadata())["retry-after"]) > 0


def test_idempotency_key_replays_the_first_answer(stub, svc, queue):
    md = (*jwt_for(svc), ("idempotency-key", "create-8812"))
    first = stub.Create(create_request(queue), metadata=md)
    again, call = stub.Create.with_call(create_request(queue), metadata=md)
    assert again == first and dict(call.trailing_metadata()).get("idempotent-replayed") == "true"
    assert WorkItem.objects.count() == 1
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Create(create_request(queue, title="another"), metadata=md)
    assert refusal(excinfo)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, PROBLEMS + "idempotency-key-reused")
    assert WorkItem.objects.count() == 1


def test_list_filters_and_pages(stub, svc, alice, bob, queue, api_as):
    md = jwt_for(svc)
    ids = [stub.Create(create_request(queue), metadata=md).id for _ in range(5)]
    stub.Claim(pb.ItemActionRequest(id=ids[0]), metadata=jwt_for(alice))
    seen, cursor = [], ""
    while True:
        page = stub.List(
            pb.ListWorkItemsRequest(queue=queue.name, state=["OFFERED"], page_size=2, cursor=cursor), metadata=md
        )
        seen += [i.id for i in page.items]
        assert len(page.items) <= 2
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids[1:], reverse=True)  # newest first, each once, the claimed one left out
    assert [i.id for i in stub.List(pb.ListWorkItemsRequest(state=["ASSIGNED"]), metadata=md).items] == [ids[0]]
    assert not stub.List(pb.ListWorkItemsRequest(queue="no-such-queue"), metadata=md).items
    # A worker sees only what REST shows them (selectors.work_item_list_for): bob, of team B, nothing.
    for user in (alice, bob):
        rest = [i["id"] for i in api_as(user).get("/api/v1/workitems?page_size=200").json()["results"]]
        assert [i.id for i in stub.List(pb.ListWorkItemsRequest(page_size=200), metadata=jwt_for(user)).items] == rest
    assert not stub.List(pb.ListWorkItemsRequest(), metadata=jwt_for(bob)).items


def test_health_and_reflection(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "workstream.v1.WorkItems"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(
        reflect.ServerReflectionInfo(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="workstream.v1.WorkItems"),
                ]
            )
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"workstream.v1.WorkItems", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    files = answers[1].file_descriptor_response.file_descriptor_proto
    assert files and any(b"workstream/v1/workitems.proto" in f for f in files)


def test_every_call_has_an_access_record(stub, svc, queue, api_key_md):
    md = api_key_md(svc)
    item = stub.Create(create_request(queue), metadata=md)
    with pytest.raises(grpc.RpcError):
        stub.Get(pb.GetWorkItemRequest(id=item.id + 1000), metadata=md)
    with pytest.raises(grpc.RpcError):
        stub.Get(pb.GetWorkItemRequest(id=item.id))
    rows = list(
        AccessRecord.objects.filter(method="GRPC")
        .order_by("id")
        .values("route", "resource", "actor_username", "auth", "credential", "status", "problem", "request_id")
    )
    assert [(r["route"], r["status"], r["problem"], r["actor_username"], r["auth"]) for r in rows] == [
        ("/workstream.v1.WorkItems/Create", 200, "", "svc", "api-key"),
        ("/workstream.v1.WorkItems/Get", 404, "not-found", "svc", "api-key"),
        ("/workstream.v1.WorkItems/Get", 401, "unauthorized", "", ""),
    ]
    assert rows[1]["resource"] == {"id": item.id + 1000} and rows[0]["credential"].startswith("api-key:")
    assert all(r["request_id"] for r in rows)


def test_a_request_over_the_body_limit_is_refused(stub, svc, queue):
    req = create_request(queue)
    req.context_data.update({"blob": "x" * (wsconfig.get().performance.maxBodyBytes + 1)})
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Create(req, metadata=jwt_for(svc))
    assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not WorkItem.objects.exists()


def test_an_oidc_providers_token_authenticates(stub, queue, oidc, jwks):
    """The REST authentication classes, OIDC among them (tests/oidc_provider.py on loopback)."""
    key = Key("EC")
    jwks.publish(key)
    token = key.token(preferred_username="engine-oidc", roles=["service"])
    item = stub.Create(create_request(queue), metadata=(("authorization", f"Bearer {token}"),))
    assert item.state == "OFFERED" and "cancel" in item.allowed_actions
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Get(pb.GetWorkItemRequest(id=item.id), metadata=(("authorization", f"Bearer {key.token(aud='other')}"),))
    code, kind, problem = refusal(excinfo)
    assert (code, kind) == (grpc.StatusCode.UNAUTHENTICATED, PROBLEMS + "unauthorized") and "audience" in problem[
        "detail"
    ]


def test_an_archived_item_is_still_found_read_only(stub, svc, queue):
    from datetime import timedelta

    from django.utils import timezone

    from archive.services import archive_items

    created = stub.Create(create_request(queue), metadata=jwt_for(svc))
    stub.Cancel(pb.ReasonRequest(id=created.id, reason="withdrawn"), metadata=jwt_for(svc))
    WorkItem.objects.filter(pk=created.id).update(closed_at=timezone.now() - timedelta(days=120))
    assert archive_items(older_than=timedelta(days=90)).items == 1
    assert not WorkItem.objects.filter(pk=created.id).exists()
    item, call = stub.Get.with_call(pb.GetWorkItemRequest(id=created.id), metadata=jwt_for(svc))
    assert (item.id, item.state, list(item.allowed_actions)) == (created.id, "CANCELLED", [])
    assert ("archived", "true") in tuple(call.trailing_metadata())
    with pytest.raises(grpc.RpcError) as missing:
        stub.Get(pb.GetWorkItemRequest(id=created.id + 1000), metadata=jwt_for(svc))
    assert refusal(missing)[0] == grpc.StatusCode.NOT_FOUND
