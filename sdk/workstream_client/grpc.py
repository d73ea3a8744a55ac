"""A client of the gRPC API (workstream.v1.WorkItems), for ``pip install workstream-client[grpc]``.

from workstream_client.grpc import GrpcClient

with GrpcClient("workstream.example.com:50051", api_key="...", tls=True) as ws:
    item = ws.create_work_item(workflow_id="wf-1", task_name="review", queue="claims")
    item = ws.claim_next(queue="claims")

It answers with the same ``WorkItem`` objects as the REST clients, and raises the same errors:
a refusal's problem (the server sends it in the ``problem-bin`` trailer) becomes the SDK error of
its kind (``NotFoundError``, ``StaleVersionError``…), with the gRPC status code in ``grpc_code``.
A create carries an ``idempotency-key`` (one is made when none is given) and is sent again with
the same key when the server was unreachable, so a lost answer does not make a second item.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from ._gen import workitems_pb2 as pb
from ._gen import workitems_pb2_grpc as pb_grpc
from .errors import WorkstreamError, error_from_problem
from .models import WorkItem

__all__ = ["GrpcClient", "as_dict", "pb"]


def _integral(value: Any) -> Any:
    """A Struct keeps numbers as doubles: a whole number is given back as the int REST sends."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def as_dict(message: Any) -> dict[str, Any]:
    """A WorkItem (or ItemEvent) message as the REST representation: every field, an unset
    optional or message field as None, Structs as JSON objects."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and not field.is_repeated:
            out[field.name] = _integral(json_format.MessageToDict(value)) if message.HasField(field.name) else None
        elif field.is_repeated:
            out[field.name] = list(value)
        elif field.has_presence and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = value
    return out


def _error(exc: grpc.RpcError) -> WorkstreamError | grpc.RpcError:
    trailers = dict(exc.trailing_metadata() or ())
    raw = trailers.get("problem-bin")
    if raw is None:
        return exc  # not a refusal of the API (the channel failed): the gRPC error itself
    problem = json.loads(raw)
    retry_after = trailers.get("retry-after")
    error = error_from_problem(
        problem,
        request_id=dict(exc.initial_metadata() or ()).get("x-request-id"),
        retry_after=float(retry_after) if retry_after else None,
    )
    error.grpc_code = exc.code()  # type: ignore[attr-defined]
    return error


class GrpcClient:
    """workstream.v1.WorkItems over one channel. Credentials: ``api_key`` (sent as
    ``authorization: Api-Key <key>``) or ``token`` (a JWT access token: ``Bearer``). TLS:
    ``tls=True`` (the system's roots, or ``root_certificates``), and for mTLS the client's
    ``certificate_chain`` and ``private_key`` (PEM bytes)."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        channel: grpc.Channel | None = None,
    ) -> None:
        if api_key and token:
            raise ValueError("give api_key or token, not both")
        self._auth = (("authorization", f"Api-Key {api_key}"),) if api_key else ()
        if token:
            self._auth = (("authorization", f"Bearer {token}"),)
        if channel is None:
            if tls or root_certificates or certificate_chain:
                creds = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
                channel = grpc.secure_channel(target, creds)
            else:
                channel = grpc.insecure_channel(target)
        self._channel = channel
        self._stub = pb_grpc.WorkItemsStub(channel)
        self.timeout = timeout
        self.retries = retries

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, request: Any, *, metadata: Sequence[tuple[str, str]] = (), retry: bool = False) -> Any:
        method = getattr(self._stub, name)
        for attempt in range(self.retries + 1 if retry else 1):
            try:
                return method(request, metadata=(*self._auth, *metadata), timeout=self.timeout)
            except grpc.RpcError as exc:
                if retry and exc.code() == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    time.sleep(min(2.0, 0.1 * 2**attempt))
                    continue
                raise _error(exc) from exc
        raise AssertionError("unreachable")

    def _item(self, message: pb.WorkItem) -> WorkItem:
        return WorkItem.from_dict(as_dict(message))

    def create_work_item(self, *, idempotency_key: str | None = None, **fields: Any) -> WorkItem:
        """Create an item: the REST create body's members as keyword arguments."""
        request = json_format.ParseDict(fields, pb.CreateWorkItemRequest())
        key = idempotency_key or str(uuid.uuid4())
        return self._item(self._call("Create", request, metadata=(("idempotency-key", key),), retry=True))

    def get_work_item(self, item_id: int) -> WorkItem:
        return self._item(self._call("Get", pb.GetWorkItemRequest(id=item_id)))

    def iter_work_items(
        self, *, queue: str | None = None, state: str | Sequence[str] = (), page_size: int = 0
    ) -> Iterator[WorkItem]:
        """Every item the caller may see (newest first), page after page."""
        states = [state] if isinstance(state, str) else list(state)
        cursor = ""
        while True:
            request = pb.ListWorkItemsRequest(queue=queue, state=states, page_size=page_size, cursor=cursor)
            page = self._call("List", request)
            yield from (self._item(m) for m in page.items)
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def claim(self, item_id: int, *, expected_version: int | None = None) -> WorkItem:
        return self._item(self._call("Claim", pb.ItemActionRequest(id=item_id, expected_version=expected_version)))

    def claim_next(self, *, queue: str | None = None) -> WorkItem | None:
        """The best item the caller may take, claimed; None when there is nothing to claim."""
        answer = self._call("ClaimNext", pb.ClaimNextRequest(queue=queue))
        return self._item(answer.item) if answer.HasField("item") else None

    def start(self, item_id: int, *, expected_version: int | None = None) -> WorkItem:
        return self._item(self._call("Start", pb.ItemActionRequest(id=item_id, expected_version=expected_version)))

    def complete(
        self, item_id: int, result: dict[str, Any] | None = None, *, expected_version: int | None = None
    ) -> WorkItem:
        request = pb.CompleteRequest(id=item_id, expected_version=expected_version)
        request.result.update(result or {})
        return self._item(self._call("Complete", request))

    def fail(self, item_id: int, reason: str = "", *, expected_version: int | None = None) -> WorkItem:
        request = pb.ReasonRequest(id=item_id, reason=reason, expected_version=expected_version)
        return self._item(self._call("Fail", request))

    def cancel(self, item_id: int, reason: str = "", *, expected_version: int | None = None) -> WorkItem:
        request = pb.ReasonRequest(id=item_id, reason=reason, expected_version=expected_version)
        return self._item(self._call("Cancel", request))

    def watch(self, item_id: int, *, after_seq: int = 0, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The item's events (audit records as REST's history shows them, without the hash
        chain), oldest first, then each new one, until ``timeout`` seconds pass (None: until the
        iterator is closed). Ending by the deadline ends the iteration; a refusal raises."""
        stream = self._stub.WatchItem(
            pb.WatchItemRequest(id=item_id, after_seq=after_seq), metadata=self._auth, timeout=timeout
        )
        try:
            for event in stream:
                yield as_dict(event)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise _error(exc) from exc
        finally:
            stream.cancel()
