"""The relay's direct property serialization is byte for byte what py-amqp writes."""

from __future__ import annotations

import amqp
import pytest

from events.bus import OutgoingMessage, encode_properties


def _reference(m: OutgoingMessage) -> bytes:
    props = {"content_type": m.content_type, "delivery_mode": 2, "message_id": m.message_id}
    if m.headers:
        props["application_headers"] = m.headers
    if m.correlation_id:
        props["correlation_id"] = m.correlation_id
    if m.timestamp is not None:
        props["timestamp"] = m.timestamp
    if m.type:
        props["type"] = m.type
    if m.app_id:
        props["app_id"] = m.app_id
    return amqp.Message(m.body, **props)._serialize_properties()


@pytest.mark.parametrize(
    "message",
    [
        OutgoingMessage(routing_key="a", body=b"{}", message_id="id-1"),
        OutgoingMessage(
            routing_key="workitem.created.v1",
            body=b"{}",
            message_id="7d1c1f5e-0000-4000-8000-000000000001",
            headers={"aggregate_type": "workitem", "aggregate_id": "42", "sequence": 3, "big": 2**40, "neg": -5},
            type="workitem.created.v1",
            correlation_id="corr-ünïcode",
            timestamp=1_790_000_000,
            app_id="workstream",
        ),
        OutgoingMessage(routing_key="a", body=b"x", message_id="m", headers={"flag": True}, app_id="p"),
    ],
)
def test_properties_match_py_amqp(message):
    assert encode_properties(message) == _reference(message)
