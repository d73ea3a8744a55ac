"""Messages of workstream.v1 built from, and read into, what the REST API uses: a WorkItem is
`item_representation` (masking and allowed actions as REST's), a create request becomes the
REST create body."""

from __future__ import annotations

from google.protobuf import json_format, struct_pb2

from audit.models import AuditRecord
from grpcapi.gen import workitems_pb2 as pb
from workitems.api.serializers import audit_representation, item_representation


def item_message(item, actor) -> pb.WorkItem:
    """The item as `actor` may see it: the REST representation, member for member (a null is an
    unset optional field). A member REST gains before the proto does is left out, not an error
    (tests/grpcapi/test_messages.py keeps the two equal)."""
    return json_format.ParseDict(item_representation(item, actor), pb.WorkItem(), ignore_unknown_fields=True)


def event_message(record: AuditRecord) -> pb.ItemEvent:
    return json_format.ParseDict(audit_representation(record), pb.ItemEvent(), ignore_unknown_fields=True)


def _integral(value):
    """A Struct keeps every number as a double: 8812 arrives as 8812.0. A whole number within
    float's exact range is given back as an int, as the same value in REST's JSON would be."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def struct_dict(value: struct_pb2.Struct) -> dict:
    return _integral(json_format.MessageToDict(value))


def request_body(message) -> dict:
    """The REST body of a request message: each field set (an unset optional or empty list is a
    member not sent), Structs as JSON objects."""
    body = {}
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Struct":
            body[field.name] = struct_dict(value)
        elif field.is_repeated:
            body[field.name] = list(value)
        else:
            body[field.name] = value
    return body
