"""OpenTelemetry tracing: off unless the standard `OTEL_*` environment variables ask for it.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); off with
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The OTLP exporter speaks http/protobuf
(port 4318); the SDK reads the rest itself: `OTEL_SERVICE_NAME` (default `workstream`),
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_HEADERS`,
`OTEL_BSP_*`. `setup()` runs once per process (the events app's `ready()`, before the web
process loads its middleware) and instruments Django (a server span per request), psycopg (a
span per SQL statement, its text without the parameters' values), Celery (task publish and run)
and redis-py; the health probes and metric scrapes are not traced (`DEFAULT_EXCLUDED_URLS`).

The trace crosses the bus: an outbox row keeps the W3C `traceparent` of the change that wrote it,
the relay publishes each event in a span that is a child of that context and sends the span's
`traceparent` as an AMQP header (and the webhook sender its own in the webhook's headers), and the
consumers continue the trace of a message's `traceparent` header. With tracing off nothing is
recorded or exported, but a message's `traceparent` still travels: a command that brings one
writes its outcome event under it, and the relay and the webhook sender pass a stored one on.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACER_NAME = "workstream"
DEFAULT_SERVICE_NAME = "workstream"
# Requests not traced unless OTEL_PYTHON_DJANGO_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) says
# otherwise: the probes and scrapes, every few seconds from every kubelet and Prometheus.
DEFAULT_EXCLUDED_URLS = "/health(/live|/ready)?/?$,/metrics/?$"
_PROPAGATOR = TraceContextTextMapPropagator()

_provider = None  # the SDK TracerProvider in force (None: tracing is off)
_instrumentors: list = []


def requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment turns tracing on (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def exporters(environ: Mapping[str, str] = os.environ) -> list:
    """The span exporters `OTEL_TRACES_EXPORTER` names (default `otlp`); ImproperlyConfigured
    naming what is wrong for an exporter or OTLP protocol this build does not ship."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    out = []
    for name in names or ["otlp"]:
        if name == "otlp":
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
            ).strip()
            if protocol not in ("", "http/protobuf"):
                raise ImproperlyConfigured(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: the OTLP exporter here speaks http/protobuf "
                    "(the collector's port 4318); set it to http/protobuf or leave it unset"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(OTLPSpanExporter())
        elif name == "console":
            out.append(ConsoleSpanExporter())
        else:
            raise ImproperlyConfigured(f"OTEL_TRACES_EXPORTER={name}: known exporters are otlp, console and none")
    return out


def make_provider(environ: Mapping[str, str] = os.environ):
    """A TracerProvider with the environment's resource (service.name defaulting to `workstream`),
    sampler and exporters (each behind a batch processor)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters(environ):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on for this process when the environment asks for it; True when it is on."""
    if _provider is not None:
        return True
    if not requested(environ):
        return False
    provider = make_provider(environ)
    trace.set_tracer_provider(provider)
    install(provider)
    log.info("tracing on: spans exported through %s", environ.get("OTEL_TRACES_EXPORTER", "otlp"))
    return True


def install(provider) -> None:
    """Record spans to `provider`: instrument Django, psycopg, Celery and redis-py with it.

    Django's instrumentation adds its middleware to settings.MIDDLEWARE, so a handler that has
    already loaded its middleware (a running test client) does not see it; connections opened
    before this are not traced either.
    """
    global _provider
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    uninstall()
    _provider = provider
    excluded = (
        os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS")
        or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
        or DEFAULT_EXCLUDED_URLS
    )
    DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=excluded)
    _instrumentors.append(DjangoInstrumentor())
    for instrumentor in (PsycopgInstrumentor(), CeleryInstrumentor(), RedisInstrumentor()):
        instrumentor.instrument(tracer_provider=provider)
        _instrumentors.append(instrumentor)


def uninstall() -> None:
    """Undo `install` (tests): the instrumentations removed, spans no longer recorded."""
    global _provider
    while _instrumentors:
        _instrumentors.pop().uninstrument()
    _provider = None


def enabled() -> bool:
    return _provider is not None


def current_provider():
    """The SDK TracerProvider in force, or None (tracing off)."""
    return _provider


def tracer() -> trace.Tracer:
    """The project's tracer: the provider in force, else the API's (no-op unless one is set)."""
    return (_provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)


@contextlib.contextmanager
def sql_span(statement: str, conn_info=None) -> Iterator[None]:
    """A client span for one SQL statement sent outside psycopg's instrumented cursors (the
    prepared statements of config.sqlcache): named and attributed as the instrumentation names
    its own (first word; `db.system`, `db.statement` without the values, `db.name`). Nothing
    when tracing is off."""
    if _provider is None:
        yield
        return
    attributes = {"db.system": "postgresql", "db.statement": statement}
    if conn_info is not None:
        attributes.update({"db.name": conn_info.dbname, "net.peer.name": conn_info.host})
    name = statement.split(None, 1)[0] if statement.strip() else "postgresql"
    with tracer().start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
        yield


# --- W3C trace context ------------------------------------------------------------------------


def traceparent_of(span: Span | None = None) -> str:
    """The W3C `traceparent` of `span` (default: the current one), or "" when there is none."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span) if span is not None else None)
    return carrier.get("traceparent", "")


def trace_id_of(traceparent: str) -> str:
    """The 32-hex-digit trace id of a `traceparent`, or ""."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) >= 4 and len(parts[1]) == 32 else ""


def context_from(traceparent: str | bytes | None) -> Context:
    """The context whose parent is `traceparent` (an empty one, a new root, when it is missing or invalid)."""
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii", "replace")
    if not traceparent or not isinstance(traceparent, str):
        return Context()
    return _PROPAGATOR.extract({"traceparent": traceparent.strip()}, context=Context())


def start_span(name: str, *, parent: str | bytes | None, kind: SpanKind, attributes: dict | None = None) -> Span:
    """A span (not made current) whose parent is the `traceparent` given; the caller ends it."""
    return tracer().start_span(name, context=context_from(parent), kind=kind, attributes=attributes)


@contextlib.contextmanager
def continued(
    name: str, *, parent: str | bytes | None, kind: SpanKind, attributes: dict | None = None
) -> Iterator[Span]:
    """Run a block in a current span that continues `parent` (a `traceparent`), or a new trace."""
    with tracer().start_as_current_span(name, context=context_from(parent), kind=kind, attributes=attributes) as s:
        yield s


def end_span(span: Span, error: str | None = None) -> None:
    if error:
        span.set_status(Status(StatusCode.ERROR, error[:500]))
    span.end()


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, empty outside a span) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            ctx = trace.get_current_span().get_span_context()
            record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else ""
            record.span_id = f"{ctx.span_id:016x}" if ctx.is_valid else ""
        return True
