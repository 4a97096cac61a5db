"""OpenTelemetry spans, off unless the `otel` extra is installed and OTEL_ENABLED=true.

The only module that imports `opentelemetry`: without the extra every function here is a no-op (the
same shared null context manager, no allocation), and so it is with the extra and tracing off.

The trace context crosses Redis in the job's bullmq options, under `tm` (`TRACE_CONTEXT_OPTION`): a JSON
string of the W3C carrier (`{"traceparent": "00-…", "tracestate": "…"}`). That is where Node BullMQ
keeps `opts.telemetry.metadata` in Redis and the format bullmq-otel writes and reads, so a trace goes
on across a Node producer or a Node worker that uses bullmq-otel. The job's data is left alone: its
models (and Node consumers) see the same fields with tracing on or off.

Process-wide, as OpenTelemetry's own provider is: the last `Envoi` built decides (`configure`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any

from envoi.errors import ConfigError
from envoi.masking import mask_text

try:
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

    AVAILABLE = True
except ImportError:  # the `otel` extra is not installed: tracing stays off
    AVAILABLE = False

log = logging.getLogger("envoi.tracing")

#: The bullmq job option holding the trace context: Node BullMQ's encoded name of `telemetry.metadata`.
TRACE_CONTEXT_OPTION = "tm"
#: A carrier larger than this is not read (a traceparent is 55 characters, a tracestate 512 at most).
MAX_CARRIER_CHARS = 2048
#: The name envoi's spans are recorded under (the instrumentation scope).
SCOPE = "envoi"

_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()
_tracer: Tracer | None = None


def configure(*, enabled: bool, exporter: str = "otlp") -> bool:
    """Turn tracing on or off for this process; True when on.

    On, envoi uses the global tracer provider when the application (or `opentelemetry-instrument`)
    set one; else it sets an SDK provider exporting through `exporter`, an OTEL_TRACES_EXPORTER name
    looked up among the installed exporters (`console` comes with the SDK, `otlp` with
    opentelemetry-exporter-otlp). `ConfigError` when on without the extra or without that exporter."""
    global _tracer
    if not enabled:
        _tracer = None
        return False
    if not AVAILABLE:
        raise ConfigError("OTEL_ENABLED=true needs the `otel` extra: pip install 'envoi[otel]'")
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider(resource=Resource.create())
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
        trace.set_tracer_provider(provider)
        log.info("Tracing on: spans exported through %s", exporter)
    _tracer = trace.get_tracer(SCOPE)
    return True


def _exporter(name: str) -> Any:
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={name}: no such span exporter installed "
            f"(console comes with the SDK; otlp with opentelemetry-exporter-otlp)"
        )
    return next(iter(found)).load()()


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    *,
    kind: str = "internal",
    attributes: Mapping[str, str | int] | None = None,
    parent: Any = None,
    expected: tuple[type[BaseException], ...] = (),
) -> contextlib.AbstractContextManager[Any]:
    """A span made current for the block, or a shared no-op when tracing is off. `kind`: internal,
    server, client, producer, consumer. `parent`: a context from `extract` (None: the current one).
    A failure is recorded as the error's class and its masked message, never its arguments; an
    `expected` one (a job postponed, not failed) leaves the span's status unset."""
    if _tracer is None:
        return _NOOP
    return _recorded(_tracer, name, SpanKind[kind.upper()], attributes or {}, parent, expected)


@contextlib.contextmanager
def _recorded(
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, str | int],
    parent: Any,
    expected: tuple[type[BaseException], ...],
) -> Iterator[Any]:
    # record_exception=False: OpenTelemetry's own record holds str(exc), which may quote a recipient.
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=dict(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except expected:
            raise
        except BaseException as exc:
            fail(current, exc)
            raise


def fail(current: Any, exc: BaseException) -> None:
    """Mark a span failed by `exc`: its class and masked message (addresses and phones masked)."""
    if current is None:
        return
    current.set_attribute("error.type", type(exc).__name__)
    current.set_status(Status(StatusCode.ERROR, mask_text(str(exc))[:200]))


def inject(opts: dict[str, Any]) -> None:
    """Put the current trace context into a job's bullmq options (`TRACE_CONTEXT_OPTION`)."""
    if _tracer is None:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if carrier:
        opts[TRACE_CONTEXT_OPTION] = json.dumps(carrier, separators=(",", ":"))


def extract(opts: Mapping[str, Any] | None) -> Any:
    """The trace context a job's options carry, else an empty one: the job's span then starts a new
    trace (not a child of whatever the worker's task holds). Anything malformed counts as absent."""
    if _tracer is None:
        return None
    raw = (opts or {}).get(TRACE_CONTEXT_OPTION)
    carrier: Any = None
    if isinstance(raw, str) and len(raw) <= MAX_CARRIER_CHARS:
        with contextlib.suppress(ValueError):
            carrier = json.loads(raw)
    if not isinstance(carrier, dict):
        return Context()
    strings = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
    return propagate.extract(strings, context=Context())


def extract_headers(headers: Mapping[str, str]) -> Any:
    """The trace context of an incoming HTTP request (W3C `traceparent`), else None (the current one)."""
    if _tracer is None or not headers:
        return None
    return propagate.extract(headers)
