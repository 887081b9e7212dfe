"""Tracing with OpenTelemetry (docs/behaviour.md §6.2): the W3C trace context (`traceparent`,
`tracestate`) taken from the caller or started here, one span per request and one per upstream
attempt, the context sent to the CRM on every attempt, and the spans exported in batches over
OTLP/HTTP (protobuf).

On when the environment names an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none`. The SDK reads the other `OTEL_*` variables itself: the service
name and resource attributes, the sampler, the batches, the exporter's headers and timeout.

Off, a request costs a header lookup and makes no SDK object. A caller's `traceparent` then
goes on to the CRM as it came, as W3C asks of a hop that does not trace.

Spans hold templates, names and numbers: never a path with its ids, a query, a header or a
body, so neither secrets nor customer data."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from multidict import CIMultiDictProxy
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway import logs, shipped
from gateway.text import is_text

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

W3C = TraceContextTextMapPropagator()
PROTOCOL = "http/protobuf"  # the one OTLP protocol the gateway ships an exporter for
FLUSH_SECONDS = 3.0  # at shutdown, the longest the last spans may take to reach the collector
NAME = "crm-gateway"  # the instrumentation's name, and the service's unless OTEL_* names one
# A caller's malformed trace context is its own affair: ignored, not a warning line each time.
for _quiet in ("opentelemetry.trace.propagation.tracecontext", "opentelemetry.trace.span"):
    logging.getLogger(_quiet).setLevel(logging.ERROR)


class _Headers(Getter[Any]):
    """A request's headers for the propagator: every value of a name (tracestate may come in
    several), and a value that is not text (lone surrogates) as absent."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        values = carrier.getall(key, None) if isinstance(carrier, CIMultiDictProxy) else None
        if values is None:
            value = carrier.get(key)
            values = None if value is None else [value]
        found = [v for v in values or () if is_text(v)]
        return found or None

    def keys(self, carrier: Any) -> list[str]:
        return list(carrier.keys())


HEADERS = _Headers()


def settings(env: Mapping[str, str]) -> tuple[bool, str | None]:
    """Whether tracing is on, and why not when the environment asks for what the gateway
    cannot do (an exporter or protocol it does not ship)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False, None
    names = {n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")} - {""}
    names = names or {"otlp"}
    if "none" in names or not collector(env):
        return False, None
    if names != {"otlp"}:
        return False, f"OTEL_TRACES_EXPORTER={','.join(sorted(names))}: only otlp is shipped"
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", PROTOCOL
    )
    if protocol.strip() != PROTOCOL:
        return False, f"OTLP protocol {protocol!r}: only {PROTOCOL} is shipped"
    return True, None


def collector(env: Mapping[str, str]) -> str | None:
    """Where spans go: the traces endpoint, or the base endpoint and `/v1/traces`."""
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return traces or (base.rstrip("/") + "/v1/traces" if base else None)


class Tracing:
    """This process's tracing: on (a tracer whose spans are batched to an OTLP collector) or
    off (``provider`` None)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.tracer: Tracer | None = None
        if provider is not None:
            self.tracer = provider.get_tracer(NAME, shipped.version())

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Tracing:
        """As the `OTEL_*` variables say; a line says so when tracing is on, or asked for in a
        way the gateway cannot honour."""
        env = os.environ if env is None else env
        on, problem = settings(env)
        if problem is not None:
            logs.get().warning("tracing_off", detail=problem)
        if not on:
            return cls()
        for name in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
            for header in env.get(name, "").split(","):
                logs.redactor.add(header.partition("=")[2].strip())  # a collector's key, likely
        tracing = cls(_provider())
        where = urlsplit(collector(env) or "")
        logs.get().info(
            "tracing_on",
            collector=f"{where.scheme}://{where.hostname}:{where.port or ''}".rstrip(":"),
            service=tracing.service,
            sampler=env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        )
        return tracing

    @property
    def on(self) -> bool:
        return self.tracer is not None

    @property
    def service(self) -> str | None:
        if self.provider is None:
            return None
        return str(self.provider.resource.attributes.get("service.name"))

    def begin(
        self, headers: Mapping[str, str], method: str, route: str, operation: str, request_id: str
    ) -> RequestTrace | None:
        """A request's trace, current until its `end`; None while tracing is off and the caller
        sent no valid `traceparent` (the cost of tracing off: this lookup). ``route`` is the
        path's template."""
        tracer = self.tracer
        if tracer is None and "traceparent" not in headers:
            return None
        caller = W3C.extract(headers, getter=HEADERS)
        if tracer is None:
            parent = trace.get_current_span(caller).get_span_context()
            if not parent.is_valid:
                return None
            carried: dict[str, str] = {}
            W3C.inject(carried, caller)
            return RequestTrace(None, None, caller, parent, carried)
        attributes = {
            "http.request.method": method,
            "http.route": route,
            "crm_gateway.operation": operation,
            "crm_gateway.request_id": request_id,
        }
        span = tracer.start_span(f"{method} {route}", caller, SpanKind.SERVER, attributes)
        context = trace.set_span_in_context(span, caller)
        return RequestTrace(tracer, span, context, span.get_span_context(), None)

    async def close(self) -> None:
        """Send the spans still queued (at most FLUSH_SECONDS), then stop."""
        provider, self.provider, self.tracer = self.provider, None, None
        if provider is None:
            return
        # On a thread of its own that does not hold the process up: the SDK's shutdown waits
        # for as long as the exporter retries a collector that does not answer.
        flush = threading.Thread(target=provider.shutdown, name="tracing-flush", daemon=True)
        flush.start()
        await asyncio.to_thread(flush.join, FLUSH_SECONDS)


def _provider() -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.version": shipped.version(), "process.pid": os.getpid()})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": NAME}))
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


_current: ContextVar[RequestTrace | None] = ContextVar("request_trace", default=None)


def _hex(context: SpanContext) -> tuple[str, str]:
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class RequestTrace:
    """One request's place in a trace: its span (None while tracing is off: the caller's
    context is passed on), what its upstream attempts hang under, and the ids its log line
    carries. Current from `Tracing.begin` until `end`."""

    def __init__(
        self,
        tracer: Tracer | None,
        span: Span | None,
        context: Context,
        ids: SpanContext,
        carried: dict[str, str] | None,
    ) -> None:
        self.tracer, self.span, self.context, self.carried = tracer, span, context, carried
        self.trace_id, self.span_id = _hex(ids)
        self._token: Token[RequestTrace | None] | None = _current.set(self)

    def end(self, status: int | None, attributes: dict[str, Any]) -> None:
        """``status`` None: the request ended without an answer (cancelled)."""
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        span = self.span
        if span is None:
            return
        if status is None:
            span.set_status(Status(StatusCode.ERROR, "cancelled"))
        else:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(attributes)
        span.end()

    def attempt(self, name: str, attributes: dict[str, Any]) -> AttemptTrace:
        assert self.tracer is not None, "no attempt spans while tracing is off"
        span = self.tracer.start_span(name, self.context, SpanKind.CLIENT, attributes)
        headers: dict[str, str] = {}
        W3C.inject(headers, trace.set_span_in_context(span, self.context))
        return AttemptTrace(span, headers, _hex(span.get_span_context())[1])


class AttemptTrace:
    """One upstream attempt's span and the trace context it sends to the CRM."""

    def __init__(self, span: Span | None, headers: dict[str, str], span_id: str | None) -> None:
        self.span, self.headers, self.span_id = span, headers, span_id

    def end(self, status: int | str) -> None:
        span = self.span
        if span is None:
            return
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
        else:
            span.set_attribute("error.type", status)  # timeout, garbage, a connection error
        if not isinstance(status, int) or status >= 400:
            span.set_status(Status(StatusCode.ERROR))
        span.end()


def attempt(
    upstream: str, method: str, route: str, number: int, retry_reason: str | None
) -> AttemptTrace | None:
    """The span of an upstream attempt of the current request (None outside one, or while
    neither tracing nor the caller asked for a trace). ``route`` is the path's template."""
    current = _current.get()
    if current is None:
        return None
    if current.tracer is None:
        return AttemptTrace(None, current.carried or {}, None)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.template": route,
        "crm_gateway.upstream": upstream,
        "crm_gateway.attempt": number,
    }
    if number > 1:
        attributes["http.request.resend_count"] = number - 1
    if retry_reason:
        attributes["crm_gateway.retry_reason"] = retry_reason
    return current.attempt(f"{method} {route}", attributes)
