"""OpenTelemetry tracing across the bus, recorded by the SDK's in-memory exporter.

Real PostgreSQL, Redis and RabbitMQ: an API create is one trace from the request through its
SQL to the relay's publish; the trace travels in the event (`trace_id`, the `traceparent`
header), into webhooks, and back in from a command's `traceparent`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import amqp
import pytest
from django.conf import settings
from django.db import connection
from kombu import Connection
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pythonjsonlogger.json import JsonFormatter
from rest_framework.test import APIClient

from config import tracing
from events import bus, webhooks
from events.consumers import CommandConsumer
from events.models import OutboxEvent, Subscription
from events.runner import RelayProcess
from tests.events.conftest import manage_py, subprocess_env
from tests.events.receiver import Receiver

DB = pytest.mark.django_db(transaction=True)  # the relay and consumers use their own connections: committed rows

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans():
    """Tracing on for the test, into an in-memory exporter; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    connection.close()  # the next statement connects through the instrumented psycopg
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    connection.close()
    provider.shutdown()


def _hex(trace_id: int) -> str:
    return f"{trace_id:032x}"


def _traceparent(span) -> str:
    ctx = span.context
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


@DB
def test_one_api_create_is_one_trace_through_the_request_its_sql_and_the_relay_publish(
    spans, events_config, tap, svc, queue
):
    events_config({"relay": {"nudge": "none"}})
    t = tap("workitem.#")
    client = APIClient()  # made after install(): its handler loads the tracing middleware
    client.force_authenticate(svc)
    r = client.post(
        "/api/v1/workitems", {"workflow_id": "wf-trace", "task_name": "review", "queue": queue.name}, format="json"
    )
    assert r.status_code == 201, r.content
    assert RelayProcess(webhooks_enabled=False, workers=1).run(until_empty=True) == 1
    ((envelope, message),) = t.drain(expect=1)

    finished = spans.get_finished_spans()
    (server,) = [s for s in finished if s.kind == SpanKind.SERVER]
    assert server.parent is None
    assert (server.attributes["http.method"], server.attributes["http.route"]) == ("POST", "api/v1/workitems")
    trace_id = server.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    ids = {s.context.span_id for s in in_trace}
    # one trace: every span but the request's has its parent in it
    assert all(s.parent is not None and s.parent.span_id in ids for s in in_trace if s is not server)

    sql = [s for s in in_trace if s.attributes.get("db.system") == "postgresql"]
    assert any(
        "INSERT INTO" in s.attributes.get("db.statement", "") and "workitem" in s.attributes["db.statement"]
        for s in sql
    )
    assert all(s.parent.span_id == server.context.span_id for s in sql)

    (publish,) = [s for s in finished if s.kind == SpanKind.PRODUCER]
    assert publish.context.trace_id == trace_id
    assert publish.parent.span_id == server.context.span_id  # the context the outbox row kept
    assert publish.attributes["messaging.destination.name"] == t.exchange
    assert publish.attributes["messaging.message.id"] == envelope["event_id"]

    # the event carries the trace: its trace_id and the publish span's traceparent header
    assert envelope["trace_id"] == _hex(trace_id)
    assert message.headers["traceparent"] == _traceparent(publish)
    row = OutboxEvent.objects.get()
    assert row.traceparent == _traceparent(server)


@DB
def test_a_webhook_carries_the_events_trace_in_its_traceparent(spans, events_config, make_item, svc):
    events_config({"relay": {"nudge": "none"}})
    rec = Receiver()
    try:
        r = APIClient()
        r.force_authenticate(svc)
        assert (
            r.post(
                "/api/v1/subscriptions", {"url": rec.url, "event_types": ["workitem.created.v1"]}, format="json"
            ).status_code
            == 201
        )
        with tracing.continued("a change", parent=PARENT, kind=SpanKind.INTERNAL):
            make_item()
        assert RelayProcess(webhooks_enabled=True, workers=1).run(until_empty=True) == 1
        (req,) = rec.wait_for(1)
    finally:
        rec.close()
    (post,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT and s.name == "POST"]
    assert _hex(post.context.trace_id) == PARENT.split("-")[1]
    assert post.attributes["http.response.status_code"] == 200
    assert req["headers"]["traceparent"] == _traceparent(post)
    assert json.loads(req["body"])["trace_id"] == PARENT.split("-")[1]
    assert webhooks.verify(Subscription.objects.get().secret, req["headers"], req["body"])  # still signed


def _send_command(names, body: dict, headers: dict) -> None:
    with Connection(settings.AMQP_URL, connect_timeout=5) as conn:
        ch = conn.channel()
        bus.declare_command_queues(ch, queue=names["commands"], dead_letter_queue=names["dlq"])
        ch.basic_publish(
            amqp.Message(json.dumps(body).encode(), delivery_mode=2, application_headers=headers),
            exchange="",
            routing_key=names["commands"],
        )


def _consume_one(consumer: CommandConsumer) -> None:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while consumer.handled < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    consumer.stop.set()
    thread.join(timeout=10)
    assert consumer.handled == 1


@DB
@pytest.mark.parametrize("traced", [True, False], ids=["tracing-on", "tracing-off"])
def test_an_inbound_command_continues_the_trace_of_its_traceparent(
    request, traced, events_config, names, cleanup_queues, svc, queue
):
    exporter = request.getfixturevalue("spans") if traced else None
    events_config()
    cleanup_queues += [names["commands"], names["dlq"]]
    cmd = {
        "command_id": f"c-{uuid.uuid4().hex[:12]}",
        "command": "create",
        "actor": svc.username,
        "data": {"workflow_id": "wf-cmd", "task_name": "review", "queue": queue.name},
    }
    _send_command(names, cmd, {"traceparent": PARENT})
    _consume_one(CommandConsumer(stop=threading.Event()))

    trace_hex = PARENT.split("-")[1]
    outcome = OutboxEvent.objects.get(event_type="command.applied.v1")
    assert outcome.trace_id == trace_hex
    assert outcome.traceparent.startswith(f"00-{trace_hex}-")
    if traced:
        (consume,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
        assert f"{consume.parent.span_id:016x}" == PARENT.split("-")[2]
        assert outcome.traceparent == _traceparent(consume)
    else:  # nothing recorded, but the caller's context goes on as it came
        assert outcome.traceparent == PARENT


def test_log_lines_carry_the_trace_and_span_ids(spans):
    formatter = JsonFormatter(settings.LOGGING["formatters"]["json"]["fmt"])
    record_filter = tracing.TraceContextFilter()

    def line() -> dict:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
        record.request_id = ""
        record_filter.filter(record)
        return json.loads(formatter.format(record))

    assert (line()["trace_id"], line()["span_id"]) == ("", "")
    with tracing.continued("logged", parent=PARENT, kind=SpanKind.INTERNAL) as span:
        got = line()
    assert got["trace_id"] == PARENT.split("-")[1]
    assert got["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert "trace" in settings.LOGGING["handlers"]["console"]["filters"]


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "ws"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask_for_it(environ, on):
    assert tracing.requested(environ) is on


def test_an_otlp_protocol_this_build_cannot_speak_is_refused_by_name():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="OTEL_EXPORTER_OTLP_PROTOCOL=grpc"):
        tracing.exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(ImproperlyConfigured, match="OTEL_TRACES_EXPORTER=jaeger"):
        tracing.exporters({"OTEL_TRACES_EXPORTER": "jaeger"})
    (otlp,) = tracing.exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert type(otlp).__name__ == "OTLPSpanExporter"


PROBE = """
from django.test import Client
from config import tracing
print("enabled", tracing.enabled())
print("features", Client().get("/api/v1/features").status_code)  # 401: no credentials, traced all the same
print("health", Client().get("/health/live").status_code)
"""


class Collector:
    """An OTLP/HTTP trace receiver on loopback: what a collector's port 4318 gets, decoded."""

    def __init__(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.requests: list = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
                    outer.requests.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[str, str]]:
        """(service.name, span name) of every span received."""
        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                out += [(service, span.name) for ss in rs.scope_spans for span in ss.spans]
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("traced", [True, False], ids=["OTEL_EXPORTER_OTLP_ENDPOINT", "no OTEL variables"])
def test_a_process_traces_when_the_otel_variables_say_so(traced, events_config):
    """The real start-up path: the events app's ready() reads OTEL_*; the OTLP exporter sends the
    spans (http/protobuf) to a receiver on loopback when the process exits."""
    _, path = events_config()
    env = {k: v for k, v in subprocess_env(path).items() if not k.startswith("OTEL_")}
    collector = Collector()
    try:
        if traced:
            env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_SERVICE_NAME": "ws-probe"})
        done = subprocess.run([*manage_py(), "shell", "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    finally:
        collector.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"enabled {traced}" in done.stdout
    assert "features 401" in done.stdout and "health 200" in done.stdout
    received = collector.spans()
    assert (("ws-probe", "GET api/v1/features") in received) is traced
    assert not [name for _, name in received if "health" in name]  # the probes are not traced
    assert all(service == "ws-probe" for service, _ in received)
