"""Encrypted context keys over gRPC: the same representation as REST (the clear value for the
creating client and the sensitive readers, `***encrypted***` for the rest, UNAVAILABLE with the
problem when the key ring cannot decrypt)."""

from __future__ import annotations

import json

import grpc
import pytest

from config import contextkeys
from grpcapi.gen import workitems_pb2 as pb
from tests import factories
from tests.grpcapi.conftest import jwt_for
from workitems import crypto
from workitems.models import WorkItem

SSN = "123-45-6789"


@pytest.fixture
def hr(settings, team_a):
    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("k1"))
    return factories.queue("hr", groups=[team_a], encrypted_keys=["ssn"])


def test_grpc_reads_the_clear_value_only_for_those_allowed(stub, settings, svc, alice, sam, hr):
    req = pb.CreateWorkItemRequest(workflow_id="wf", task_name="review", queue="hr")
    req.context_data.update({"ssn": SSN, "name": "Ada"})
    created = stub.Create(req, metadata=jwt_for(svc))
    assert dict(created.context_data) == {"ssn": SSN, "name": "Ada"}
    assert crypto.is_sealed(WorkItem.objects.get(pk=created.id).context_data["ssn"])
    get = pb.GetWorkItemRequest(id=created.id)
    assert dict(stub.Get(get, metadata=jwt_for(sam)).context_data)["ssn"] == SSN
    assert dict(stub.Get(get, metadata=jwt_for(alice)).context_data) == {"ssn": crypto.ENCRYPTED_MARK, "name": "Ada"}
    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("k2"))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Get(get, metadata=jwt_for(sam))
    trailers = dict(refused.value.trailing_metadata() or ())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert trailers["problem-type"] == "https://workstream.dev/problems/encryption-unavailable"
    assert "encrypted with key 'k1'" in json.loads(trailers["problem-bin"])["detail"]
