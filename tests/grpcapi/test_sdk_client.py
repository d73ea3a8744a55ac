"""workstream_client.grpc.GrpcClient against the real gRPC server: the lifecycle with an API key
and with a JWT, the REST SDK's errors and WorkItem objects, idempotent creates, mTLS, and the
watch stream of an item's events."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import workstream_client as wc
from rest_framework_simplejwt.tokens import AccessToken
from workstream_client.grpc import GrpcClient, as_dict, pb

from grpcapi.server import Tls
from grpcapi.servicer import WorkItemsServicer
from workitems.models import WorkItem

CREATE = {"workflow_id": "wf-sdk", "task_name": "review", "context_data": {"claim_id": 7, "ratio": 0.5}}


def test_lifecycle_and_errors(server, svc, alice, carol, queue, api_key_md):
    key = api_key_md(svc)[0][1].removeprefix("Api-Key ")
    with (
        GrpcClient(server.target, api_key=key) as engine,
        GrpcClient(server.target, token=str(AccessToken.for_user(alice))) as worker,
    ):
        item = engine.create_work_item(queue=queue.name, priority=60, **CREATE)
        assert isinstance(item, wc.WorkItem) and item.state == "OFFERED" and item.priority == 60
        assert item.context_data == {"claim_id": 7, "ratio": 0.5}
        assert engine.get_work_item(item.id) == item
        assert [i.id for i in engine.iter_work_items(queue=queue.name, state="OFFERED", page_size=1)] == [item.id]

        claimed = worker.claim_next(queue=queue.name)
        assert claimed.id == item.id and claimed.assignee == "alice"
        with pytest.raises(wc.StaleVersionError) as stale:
            worker.start(item.id, expected_version=claimed.version - 1)
        assert stale.value.grpc_code == grpc.StatusCode.ABORTED and stale.value.request_id
        started = worker.start(item.id, expected_version=claimed.version)
        done = worker.complete(item.id, {"approved": True})
        assert (started.state, done.state, done.raw["result"]) == ("IN_PROGRESS", "COMPLETED", {"approved": True})
        assert worker.claim_next() is None
        with GrpcClient(server.target, token=str(AccessToken.for_user(carol))) as other:
            with pytest.raises(wc.InvalidTransitionError) as refused:
                other.claim(item.id)
            assert refused.value.allowed_actions is not None
        with pytest.raises(wc.NotFoundError):
            engine.get_work_item(item.id + 1000)
        with pytest.raises(wc.ValidationError) as invalid:
            engine.create_work_item(queue=queue.name, priority=500, **CREATE)
        assert invalid.value.errors and invalid.value.errors[0]["field"] == "priority"
    with GrpcClient(server.target) as anonymous, pytest.raises(wc.UnauthorizedError):
        anonymous.get_work_item(item.id)


def test_as_dict_is_the_rest_representation(server, svc, queue, api_as):
    with GrpcClient(server.target, token=str(AccessToken.for_user(svc))) as engine:
        item = engine.create_work_item(queue=queue.name, **CREATE)
        message = engine._call("Get", pb.GetWorkItemRequest(id=item.id))
    assert as_dict(message) == api_as(svc).get(f"/api/v1/workitems/{item.id}").json()


def test_a_create_sent_again_with_its_key_makes_one_item(server, svc, queue):
    with GrpcClient(server.target, token=str(AccessToken.for_user(svc))) as engine:
        first = engine.create_work_item(queue=queue.name, idempotency_key="k-1", **CREATE)
        again = engine.create_work_item(queue=queue.name, idempotency_key="k-1", **CREATE)
        assert again == first and WorkItem.objects.count() == 1
        with pytest.raises(wc.IdempotencyKeyReusedError):
            engine.create_work_item(queue=queue.name, idempotency_key="k-1", title="other", **CREATE)


def test_mtls_client(start_server, pki, svc, queue):
    server = start_server(Tls(pki.server_cert, pki.server_key, client_ca=pki.ca))
    token = str(AccessToken.for_user(svc))
    with GrpcClient(
        f"localhost:{server.port}",
        token=token,
        root_certificates=pki.ca.read_bytes(),
        certificate_chain=pki.client_cert.read_bytes(),
        private_key=pki.client_key.read_bytes(),
        retries=0,
    ) as engine:
        assert engine.create_work_item(queue=queue.name, **CREATE).state == "OFFERED"
    with GrpcClient(f"localhost:{server.port}", token=token, root_certificates=pki.ca.read_bytes(), retries=0) as bare:
        with pytest.raises(grpc.RpcError) as excinfo:
            bare.get_work_item(1)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE


def test_watch_streams_past_and_new_events(server, svc, alice, queue):
    with (
        GrpcClient(server.target, token=str(AccessToken.for_user(svc))) as engine,
        GrpcClient(server.target, token=str(AccessToken.for_user(alice))) as worker,
    ):
        item = engine.create_work_item(queue=queue.name, **CREATE)
        events = engine.watch(item.id, timeout=20)
        first = next(events)
        assert first["action"] == "create" and first["seq"] == 1 and first["actor"] == "svc"
        seen = [first]
        while seen[-1]["to_state"] != "OFFERED":  # creation's own records (create, offer)
            seen.append(next(events))
        # Changes made while the stream is open arrive on it.
        threading.Timer(0.3, lambda: worker.claim(item.id)).start()
        claim = next(events)
        assert (claim["action"], claim["actor"], claim["to_state"]) == ("claim", "alice", "ASSIGNED")
        events.close()
        # From a sequence number: only what came after it.
        resumed = engine.watch(item.id, after_seq=claim["seq"] - 1, timeout=1.5)
        assert [e["seq"] for e in resumed] == [claim["seq"]]  # and the deadline ends it
        with pytest.raises(wc.NotFoundError):
            next(engine.watch(item.id + 1000, timeout=5))


def test_a_watch_ends_after_the_longest_a_stream_runs(server, svc, queue, monkeypatch):
    monkeypatch.setattr(WorkItemsServicer, "max_stream_seconds", 1.0)
    with GrpcClient(server.target, token=str(AccessToken.for_user(svc))) as engine:
        item = engine.create_work_item(queue=queue.name, **CREATE)
        started = time.monotonic()
        events = list(engine.watch(item.id, timeout=60))
        took = time.monotonic() - started
    assert [e["action"] for e in events][:1] == ["create"]
    assert took < 30, "the stream ran to the client's deadline: the server did not end it"
