"""OpenTelemetry tracing for every service (issue 15 item 1): one trace per report, from the
operator's POST through the outbox relay, Kafka, dispatch and notify, to each hub's webhook.

Off unless configured, by the standard variables only (no Homeward setting):

* `OTEL_SDK_DISABLED=true` turns it off whatever else is set;
* `OTEL_TRACES_EXPORTER` (comma-separated `otlp`, `console`; `none` is off) chooses exporters;
  unset, tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (OTLP over HTTP/protobuf);
* the OTLP exporter, the batch processor and the resource read their own `OTEL_*` variables
  (`OTEL_SERVICE_NAME` defaults to `homeward-<service>`; `OTEL_BSP_SCHEDULE_DELAY` etc.).

Context travels as W3C Trace Context: the `traceparent` (and `tracestate`) Kafka header, the
name the CloudEvents distributed-tracing extension gives it, set by FastStream's
KafkaTelemetryMiddleware on every broker publish and read on every consume; the same header on
every outgoing aiohttp request (webhooks, Apprise JSON targets); and, for the alert outbox, the
`traceparent` stored with the row (`inject` at append) from which the relay's publish span
continues the HTTP request's trace (`relay_span`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("homeward")
_state: dict[str, Any] = {"configured": None}

# Paths whose requests are not traced: probes and scrapes every few seconds would drown the
# traces an engineer is looking for.
EXCLUDED_URLS = "healthz,readyz,metrics"


def exporters(env: Mapping[str, str] | None = None) -> list[str]:
    """The span exporters the `OTEL_*` variables in `env` (default os.environ) ask for; empty:
    tracing is off."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = env.get("OTEL_TRACES_EXPORTER")
    if named is not None:
        return [n for n in (p.strip().lower() for p in named.split(",")) if n and n != "none"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return ["otlp"]
    return []


def enabled() -> bool:
    """Whether this process traces (decided by `setup`, else by the environment)."""
    if _state["configured"] is not None:
        return bool(_state["configured"])
    return bool(exporters())


def _exporter(name: str) -> Any:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console, none)")


def setup(service: str) -> bool:
    """Configure the process's tracer provider and the global instrumentations (aiohttp client,
    redis) when the environment asks for tracing; idempotent. Returns whether tracing is on.
    Raises ValueError for an exporter name it does not know. Connects to nothing: the exporter
    sends from its batch thread."""
    if _state["configured"] is not None:
        return bool(_state["configured"])
    names = exporters()
    _state["configured"] = bool(names)
    if not names:
        return False
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    os.environ.setdefault("OTEL_SERVICE_NAME", f"homeward-{service}")
    provider = TracerProvider(resource=Resource.create())
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    return True


def shutdown() -> None:
    """Flush and stop the exporters (at process exit)."""
    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


def instrument_app(app: Any) -> None:
    """Trace the FastAPI `app`'s requests (a server span per request, the W3C `traceparent` of
    the caller continued), except EXCLUDED_URLS; nothing when tracing is off."""
    if not enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=EXCLUDED_URLS,
                                       exclude_spans=["receive", "send"])


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream middlewares for a KafkaBroker: KafkaTelemetryMiddleware when tracing is on
    (a PRODUCER span per publish with `traceparent` injected into the Kafka headers, a
    CONSUMER span per message continuing the sender's trace)."""
    if not enabled():
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return (KafkaTelemetryMiddleware(include_messages_counters=False),)


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace's `traceparent` (and `tracestate`) to `headers`; nothing when
    tracing is off or no span is current."""
    if enabled():
        _PROPAGATOR.inject(headers)


def traceparent(headers: Mapping[str, Any]) -> str | None:
    """The `traceparent` in `headers` (str or bytes values), or None."""
    value = headers.get("traceparent")
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def relay_span(topic: str, key: str, headers: dict[str, str]) -> Span:
    """Start a PRODUCER span `<topic> publish` for one outbox row, child of the trace stored
    with the row (the HTTP request that filed it), and rewrite `headers` to carry this span as
    the consumer's parent. The caller ends it (`end_span`) once the broker has answered."""
    parent = _PROPAGATOR.extract(headers) if "traceparent" in headers else otel_context.Context()
    span = _TRACER.start_span(f"{topic} publish", context=parent, kind=SpanKind.PRODUCER,
                              attributes={"messaging.system": "kafka",
                                          "messaging.destination.name": topic,
                                          "messaging.operation": "publish",
                                          "messaging.kafka.message.key": key})
    _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span, parent))
    return span


def end_span(span: Span, error: BaseException | None = None) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


@contextmanager
def consumer_span(topic: str, headers: Mapping[str, Any] | None) -> Iterator[None]:
    """A CONSUMER span `<topic> process`, current while the block runs, continuing the trace
    whose W3C `traceparent` the producer put in the Kafka `headers` (str or bytes values) — for
    consumers outside FastStream (notify's delivery lanes, shared.kafka.BatchConsumer). Nothing
    when tracing is off or the headers carry no trace."""
    if not enabled() or not headers or traceparent(headers) is None:
        yield
        return
    carrier = {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
               for k, v in headers.items() if k in ("traceparent", "tracestate")}
    with _TRACER.start_as_current_span(
            f"{topic} process", context=_PROPAGATOR.extract(carrier), kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic,
                        "messaging.operation": "process"}):
        yield
