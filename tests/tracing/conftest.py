"""The SDK's in-memory exporter behind the process's tracer provider, set once (OpenTelemetry allows one
per process); each test starts with no spans. envoi finds this provider set and uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from envoi import tracing
from tests.api.conftest import make_api  # the API's fixture, reused here
from tests.interop.conftest import node_bullmq  # Node BullMQ, installed once

__all__ = ["by_name", "make_api", "node_bullmq", "spans"]

_EXPORTER = InMemorySpanExporter()


def _install() -> None:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _install()
    _EXPORTER.clear()
    yield _EXPORTER
    # Later tests of this process build Envoi with tracing off, which turns it off; say so anyway.
    tracing.configure(enabled=False)
    _EXPORTER.clear()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}
