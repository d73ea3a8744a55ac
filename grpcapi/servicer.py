"""workstream.v1.WorkItems: the REST views' work over gRPC. Reads through workitems.selectors,
changes through workitems.services (the one way an item changes), the caller authenticated by
the REST authentication classes (grpcapi.auth) and throttled by the REST throttles, refusals as
status codes (grpcapi.errors).

Each call runs as an API request does: Django's database connections checked before and after
(close_old_connections: the server's worker threads are long-lived, as gunicorn's are), a
request id (`x-request-id` metadata, else a new one, sent back in the initial metadata) in the
audit and outbox rows, its own read-your-writes scope (config.db_router), the whole unit run
again on a transient database conflict (config.retry), and one access record (grpcapi.access).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator

import grpc
from django.db import close_old_connections, transaction
from django.http import JsonResponse
from django.utils import timezone
from google.protobuf import json_format
from rest_framework import exceptions as drf
from rest_framework.settings import api_settings

from api import idempotency
from api.pagination import Cursor
from api.problems import ProblemException
from archive.selectors import archived_item_get_for
from audit.models import AuditRecord
from config import context as request_context
from config import retry, wsconfig
from config.db_router import request_scope
from grpcapi import access, auth, errors
from grpcapi.gen import workitems_pb2 as pb
from grpcapi.gen import workitems_pb2_grpc as pb_grpc
from grpcapi.messages import event_message, item_message, request_body, struct_dict
from workitems import services
from workitems.api.serializers import item_representation
from workitems.errors import NotFound
from workitems.models import State
from workitems.selectors import work_item_get_for, work_item_list_for

SERVICE = pb.DESCRIPTOR.services_by_name["WorkItems"].full_name  # workstream.v1.WorkItems
DEFAULT_PAGE_SIZE = Cursor.page_size  # as REST's
MAX_ITEM_ID = 2**63 - 1


class Call:
    """What a method gets besides its request: the caller and the call's metadata."""

    def __init__(self, user, drf_request, metadata: dict[str, str], context: grpc.ServicerContext):
        self.user = user
        self.drf_request = drf_request
        self.metadata = metadata
        self.context = context


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {k.lower(): v for k, v in context.invocation_metadata() if isinstance(v, str)}


def _throttle(request) -> None:
    """The REST throttles (per client and role, shared counters): a refusal is rate-limited."""
    for cls in api_settings.DEFAULT_THROTTLE_CLASSES:
        throttle = cls()
        if not throttle.allow_request(request, None):
            raise drf.Throttled(throttle.wait())


def _begin(context: grpc.ServicerContext, method: str) -> tuple[str, dict[str, str], str]:
    metadata = _metadata(context)
    rid = request_context.clean_request_id(metadata.get("x-request-id"))
    context.send_initial_metadata((("x-request-id", rid),))
    return f"/{SERVICE}/{method}", metadata, rid


class Served:
    """One call's bookkeeping: who calls, how it ended (for the access log)."""

    def __init__(self, context: grpc.ServicerContext, method: str, request):
        self.at, self.started = timezone.now(), time.perf_counter()
        self.path, self.metadata, self.request_id = _begin(context, method)
        self.context, self.request = context, request
        self.drf_request = None
        self.status, self.problem = 200, ""

    def caller(self) -> Call:
        """The authenticated, throttled caller (or the refusal, raised)."""
        self.drf_request = auth.drf_request(self.metadata, path=self.path)
        user = auth.authenticate(self.drf_request)
        _throttle(self.drf_request)
        return Call(user, self.drf_request, self.metadata, self.context)

    def refuse(self, exc: Exception):
        """End the call with the status code of `exc`'s problem (raises)."""
        refused = errors.refusal(exc, instance=self.path)
        self.status, self.problem = refused.body["status"], errors.kind_of(refused)
        errors.abort(self.context, refused)

    def log(self) -> None:
        access.record(
            at=self.at,
            request_id=self.request_id,
            route=self.path,
            request=self.request,
            drf_request=self.drf_request,
            status=self.status,
            problem=self.problem,
            duration_ms=int((time.perf_counter() - self.started) * 1000),
            peer=self.context.peer(),
        )


@contextlib.contextmanager
def served(context: grpc.ServicerContext, method: str, request, *, writes: bool) -> Iterator[Served]:
    """Run a call as an API request runs: connections checked before and after, the request
    id and read-your-writes scope, one access record at the end."""
    close_old_connections()
    try:
        call = Served(context, method, request)
        with request_context.acting(channel="api", request_id=call.request_id), request_scope(wrote=writes):
            try:
                yield call
            finally:
                call.log()
    finally:
        close_old_connections()


def rpc(*, writes: bool) -> Callable:
    """A unary method `fn(self, request, call) -> response` run as an API request."""

    def wrap(fn):
        @functools.wraps(fn)
        def handler(self, request, context):
            with served(context, fn.__name__, request, writes=writes) as s:
                try:
                    call = s.caller()
                    return retry.retry_transient(lambda: fn(self, request, call), where="grpc")
                except Exception as exc:  # every refusal (and bug) is a status code
                    s.refuse(exc)

        return handler

    return wrap


def _version(request) -> int | None:
    return request.expected_version if request.HasField("expected_version") else None


def _item_id(value: int) -> int:
    if not 0 < value <= MAX_ITEM_ID:
        raise ProblemException(
            "validation-error",
            "id: a work item id (a positive integer)",
            errors=[{"field": "id", "message": "not an id"}],
        )
    return value


def _command(name: str, call: Call, request, **args) -> pb.WorkItem:
    item = services.COMMANDS[name](
        item_id=_item_id(request.id), actor=call.user, expected_version=_version(request), **args
    )
    return item_message(item, call.user)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        before = json.loads(raw)["before"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        before = None
    if not isinstance(before, int) or isinstance(before, bool) or not 0 < before <= MAX_ITEM_ID:
        raise ProblemException(
            "validation-error",
            "cursor is not valid: send the next_cursor of a page as it is",
            errors=[{"field": "cursor", "message": "invalid cursor"}],
        )
    return before


class WorkItemsServicer(pb_grpc.WorkItemsServicer):
    @rpc(writes=True)
    def Create(self, request, call):  # noqa: N802 - the proto's method names
        data = request_body(request)
        key = call.metadata.get("idempotency-key")
        if key is None:
            return item_message(services.work_item_create(actor=call.user, data=data), call.user)
        # The REST idempotency layer, as is: the key per client, a fingerprint of this method and
        # the request's bytes, the answer stored in the change's transaction and replayed.
        http = call.drf_request._request  # the key is among its headers (grpcapi.auth.drf_request)
        http._body = request.SerializeToString(deterministic=True)
        try:
            with transaction.atomic():
                idem = idempotency.begin(http)
                item = services.work_item_create(actor=call.user, data=data)
                representation = item_representation(item, call.user)
                idempotency.store(idem, JsonResponse(representation, status=201))
        except idempotency.Replay as replay:
            representation = json.loads(idempotency.record_body(replay.record))
            call.context.set_trailing_metadata(((idempotency.REPLAYED_HEADER.lower(), "true"),))
        return json_format.ParseDict(representation, pb.WorkItem(), ignore_unknown_fields=True)

    @rpc(writes=False)
    def Get(self, request, call):  # noqa: N802
        item_id = _item_id(request.id)
        try:
            return item_message(work_item_get_for(actor=call.user, item_id=item_id), call.user)
        except NotFound:
            # archived (archive_items): read-only, under the same visibility rule as REST's
            # fallback; the trailer `archived: true` says so, and nothing may be done to it
            message = item_message(archived_item_get_for(actor=call.user, item_id=item_id), call.user)
            del message.allowed_actions[:]
            call.context.set_trailing_metadata((("archived", "true"),))
            return message

    @rpc(writes=False)
    def List(self, request, call):  # noqa: N802
        size = request.page_size or DEFAULT_PAGE_SIZE
        largest = wsconfig.get().performance.maxPageSize
        if not 1 <= size <= largest:
            raise ProblemException(
                "validation-error",
                f"page_size must be 1 to {largest}",
                errors=[{"field": "page_size", "message": f"1 to {largest}"}],
            )
        unknown = sorted(set(request.state) - set(State.values))
        if unknown:
            raise ProblemException(
                "validation-error",
                f"state: unknown state(s) {', '.join(unknown)}; states: {', '.join(State.values)}",
                errors=[{"field": "state", "message": f"unknown state {s!r}"} for s in unknown],
            )
        qs = work_item_list_for(actor=call.user)
        if request.HasField("queue"):
            qs = qs.filter(queue__name=request.queue)
        if request.state:
            qs = qs.filter(state__in=list(request.state))
        if request.cursor:
            qs = qs.filter(pk__lt=decode_cursor(request.cursor))
        qs = qs.prefetch_related("candidate_users", "candidate_groups", "excluded_users").select_related(
            "queue__lifecycle", "task_type", "assignee", "reserved_for"
        )
        page = list(qs.order_by("-id")[: size + 1])
        more, page = len(page) > size, page[:size]
        return pb.ListWorkItemsResponse(
            items=[item_message(i, call.user) for i in page], next_cursor=encode_cursor(page[-1].pk) if more else ""
        )

    @rpc(writes=True)
    def Claim(self, request, call):  # noqa: N802
        return _command("claim", call, request)

    @rpc(writes=True)
    def ClaimNext(self, request, call):  # noqa: N802
        queue = request.queue if request.HasField("queue") else None
        item = services.work_item_claim_next(actor=call.user, queue=queue)
        return pb.ClaimNextResponse(item=item_message(item, call.user) if item is not None else None)

    @rpc(writes=True)
    def Start(self, request, call):  # noqa: N802
        return _command("start", call, request)

    @rpc(writes=True)
    def Complete(self, request, call):  # noqa: N802
        return _command("complete", call, request, result=struct_dict(request.result))

    @rpc(writes=True)
    def Fail(self, request, call):  # noqa: N802
        return _command("fail", call, request, reason=request.reason)

    @rpc(writes=True)
    def Cancel(self, request, call):  # noqa: N802
        return _command("cancel", call, request, reason=request.reason)

    def WatchItem(self, request, context):  # noqa: N802
        """The item's audit records after `after_seq`, then each new one, polled every
        `poll_interval` seconds, until the client cancels, its deadline passes or the stream has
        run `max_stream_seconds` (each open stream holds a worker thread). The item must
        be visible to the caller when the stream opens (else NOT_FOUND)."""
        with served(context, "WatchItem", request, writes=False) as s:
            try:
                item = work_item_get_for(actor=s.caller().user, item_id=_item_id(request.id))
            except Exception as exc:
                s.refuse(exc)
            yield from self._events(item.pk, request.after_seq, context)

    poll_interval = 0.5
    max_stream_seconds = 3600.0  # then the stream ends (OK); the client opens another from its last seq

    def _events(self, item_id: int, after: int, context) -> Iterator[pb.ItemEvent]:
        ends = time.monotonic() + self.max_stream_seconds
        while context.is_active() and time.monotonic() < ends:
            records = list(AuditRecord.objects.filter(work_item_id=item_id, seq__gt=after).order_by("seq")[:100])
            for record in records:
                after = record.seq
                yield event_message(record)
            close_old_connections()  # a long stream must not hold a connection past its age
            if not records:
                time.sleep(self.poll_interval)
