"""Tracing end to end: an API request, its enqueue, the job in a real worker and the SMTP call to the
sink are spans of one trace, linked parent to child; a recipient never shows in clear; off means none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from envoi.config import Settings
from envoi.masking import mask_recipient
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.tracing import TRACE_CONTEXT_OPTION
from tests.api.conftest import API_KEY, Api
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import eventually
from tests.interop.support import node
from tests.tracing.conftest import by_name

pytestmark = pytest.mark.usefixtures("spans")

TO = "jane.doe@example.com"
REQUEST = "POST /v1/jobs/{jobName}"
ENQUEUE = f"add {NOTIFICATIONS_QUEUE}.SEND_EMAIL"
JOB = f"process {NOTIFICATIONS_QUEUE}.SEND_EMAIL"
PROVIDER = "send smtp"


@pytest.fixture
def make_traced_api(make_api: Callable[..., Any], make_delivery_settings: Callable[..., Settings]) -> Any:
    async def factory(**overrides: Any) -> Api:
        settings = make_delivery_settings(envoi_api_key=API_KEY, job_attempts=1, **overrides)
        api: Api = await make_api(settings)
        return api

    return factory


def raw_queue(settings: Settings) -> Queue:
    """bullmq itself, as another producer (or an inspector) uses it: no envoi, no trace context."""
    connection = settings.redis.connection_kwargs(connect_timeout_s=1)
    return Queue(NOTIFICATIONS_QUEUE, {"connection": connection, "prefix": settings.redis_prefix})


def email(to: str = TO, subject: str = "Your receipt") -> dict[str, Any]:
    return {"to": to, "subject": subject, "html": "<p>secret body 4242</p>"}


def everything_said(span: ReadableSpan) -> str:
    """Every attribute, event and status text of a span, as one string to search."""
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    return json.dumps([span.name, dict(span.attributes or {}), events, span.status.description], default=str)


async def finished(exporter: InMemorySpanExporter, *names: str) -> dict[str, ReadableSpan]:
    return await eventually(
        lambda: (found := by_name(exporter)) and all(n in found for n in names) and found,
        timeout=15,
        message=f"spans {names}",
    )


async def test_a_request_its_enqueue_the_job_and_the_smtp_call_are_one_trace_parent_to_child(
    make_traced_api: Any, start_worker: Any, smtp_sink: SmtpSink, spans: InMemorySpanExporter
) -> None:
    api = await make_traced_api(otel_enabled=True)
    await start_worker(api.envoi)

    answer = await api.client.post("/v1/jobs/SEND_EMAIL", json=email())
    assert answer.status_code == 202, answer.text
    await eventually(lambda: smtp_sink.messages, timeout=15, message="the email at the sink")
    found = await finished(spans, REQUEST, ENQUEUE, JOB, PROVIDER)

    request, enqueue, job, provider = (found[n] for n in (REQUEST, ENQUEUE, JOB, PROVIDER))
    assert {s.context.trace_id for s in (request, enqueue, job, provider)} == {request.context.trace_id}
    assert request.parent is None
    assert enqueue.parent is not None and enqueue.parent.span_id == request.context.span_id
    assert job.parent is not None and job.parent.span_id == enqueue.context.span_id
    assert provider.parent is not None and provider.parent.span_id == job.context.span_id
    assert (request.kind, enqueue.kind, job.kind, provider.kind) == (
        SpanKind.SERVER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CLIENT,
    )
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 202
    job_id = answer.json()["jobId"]
    assert enqueue.attributes is not None and enqueue.attributes["messaging.message.id"] == job_id
    assert job.attributes is not None and job.attributes["messaging.message.id"] == job_id
    assert provider.attributes is not None
    assert provider.attributes["envoi.provider"] == "smtp"
    assert provider.attributes["envoi.recipient"] == mask_recipient(TO)
    for span in spans.get_finished_spans():
        said = everything_said(span)
        assert TO not in said and "jane.doe" not in said, span.name
        assert "secret body" not in said and "Your receipt" not in said, span.name


async def test_a_caller_traceparent_is_continued_by_the_request_span(
    make_traced_api: Any, spans: InMemorySpanExporter
) -> None:
    api = await make_traced_api(otel_enabled=True)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    header = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    answer = await api.client.post("/v1/jobs/SEND_EMAIL", json=email(), headers=header)
    assert answer.status_code == 202
    found = await finished(spans, REQUEST, ENQUEUE)
    assert f"{found[REQUEST].context.trace_id:032x}" == trace_id
    assert found[REQUEST].parent is not None and f"{found[REQUEST].parent.span_id:016x}" == "00f067aa0ba902b7"


async def test_the_trace_context_rides_in_the_job_options_not_in_its_data(
    make_traced_api: Any, spans: InMemorySpanExporter
) -> None:
    """bullmq-otel's place (`tm`, Node's `telemetry.metadata`): the job's data is what the producer sent."""
    api = await make_traced_api(otel_enabled=True)
    answer = await api.client.post("/v1/jobs/SEND_EMAIL", json=email())
    queue = raw_queue(api.envoi.settings)
    try:
        job = await queue.getJob(answer.json()["jobId"])
    finally:
        await queue.close()
    carrier = json.loads(job.opts[TRACE_CONTEXT_OPTION])
    enqueue = by_name(spans)[ENQUEUE]
    ctx = enqueue.context
    assert carrier["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    assert set(job.data) == {"to", "subject", "html"}


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="no-context"),
        pytest.param({TRACE_CONTEXT_OPTION: "not json"}, id="not-json"),
        pytest.param(
            {TRACE_CONTEXT_OPTION: json.dumps({"traceparent": "00-zz-yy-01"})}, id="bad-traceparent"
        ),
        pytest.param({TRACE_CONTEXT_OPTION: json.dumps(["a", 1])}, id="not-an-object"),
        pytest.param({TRACE_CONTEXT_OPTION: "x" * 100_000}, id="huge"),
        pytest.param({TRACE_CONTEXT_OPTION: 12}, id="a-number"),
    ],
)
async def test_a_job_from_a_producer_without_a_usable_context_gets_a_span_of_a_new_trace(
    make_traced_api: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
    spans: InMemorySpanExporter,
    extra: dict[str, Any],
) -> None:
    api = await make_traced_api(otel_enabled=True)
    await start_worker(api.envoi)
    queue = raw_queue(api.envoi.settings)
    try:
        await queue.add("SEND_EMAIL", email(), {"attempts": 1, **extra})
    finally:
        await queue.close()
    found = await finished(spans, JOB, PROVIDER)
    assert found[JOB].parent is None
    assert found[PROVIDER].parent is not None and found[PROVIDER].parent.span_id == found[JOB].context.span_id
    assert len(smtp_sink.messages) == 1


async def test_a_provider_failure_is_recorded_masked_on_the_provider_and_job_spans(
    make_traced_api: Any, start_worker: Any, smtp_sink: SmtpSink, spans: InMemorySpanExporter
) -> None:
    api = await make_traced_api(otel_enabled=True)
    await start_worker(api.envoi)
    smtp_sink.fail_next(code=550, text=f"5.1.1 <{TO}>: no such mailbox")
    answer = await api.client.post("/v1/jobs/SEND_EMAIL", json=email())
    assert answer.status_code == 202
    found = await finished(spans, JOB, PROVIDER)
    assert found[PROVIDER].status.status_code is StatusCode.ERROR
    assert found[JOB].status.status_code is StatusCode.ERROR
    assert found[PROVIDER].attributes is not None and "error.type" in found[PROVIDER].attributes
    for span in spans.get_finished_spans():
        said = everything_said(span)
        assert TO not in said and "jane.doe" not in said, (span.name, said)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="OTEL_ENABLED-unset"),
        pytest.param({"otel_enabled": True, "otel_sdk_disabled": True}, id="OTEL_SDK_DISABLED"),
    ],
)
async def test_tracing_off_makes_no_span(
    make_traced_api: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
    spans: InMemorySpanExporter,
    overrides: dict[str, Any],
) -> None:
    api = await make_traced_api(**overrides)
    await start_worker(api.envoi)
    answer = await api.client.post("/v1/jobs/SEND_EMAIL", json=email())
    assert answer.status_code == 202
    await eventually(lambda: smtp_sink.messages, timeout=15, message="the email at the sink")
    await eventually(lambda: api.envoi.queue.counts(NOTIFICATIONS_QUEUE), message="Redis answers")
    assert spans.get_finished_spans() == ()


def test_without_the_otel_extra_envoi_imports_runs_and_refuses_to_turn_tracing_on() -> None:
    """The SDK made unimportable in a fresh interpreter, as on an install without the extra (the API alone
    comes with FastAPI)."""
    script = """
import sys
sys.modules["opentelemetry.sdk"] = None
import envoi.api.app, envoi.worker, envoi.runtime
from envoi import tracing
from envoi.errors import ConfigError
assert not tracing.AVAILABLE
assert not tracing.configure(enabled=False)
with tracing.span("x") as span:
    assert span is None
opts = {}
tracing.inject(opts)
assert opts == {} and tracing.extract({"tm": "x"}) is None
try:
    tracing.configure(enabled=True)
except ConfigError as exc:
    print(exc)
else:
    raise SystemExit("tracing turned on without the extra")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "pip install 'envoi[otel]'" in done.stdout


CLI = """
import sys
if sys.argv[1] == "no-sdk":
    sys.modules["opentelemetry.sdk"] = None
from envoi.cli import main
sys.argv = ["envoi", "worker"]
main()
"""


@pytest.mark.parametrize(
    ("case", "env", "said"),
    [
        pytest.param("no-sdk", {}, "pip install 'envoi[otel]'", id="without-the-extra"),
        pytest.param(
            "sdk",
            {"OTEL_TRACES_EXPORTER": "nosuch"},
            "OTEL_TRACES_EXPORTER=nosuch",
            id="exporter-not-installed",
        ),
    ],
)
def test_tracing_asked_for_and_impossible_is_one_line_and_exit_2(
    tmp_path: Path, case: str, env: dict[str, str], said: str
) -> None:
    environment = {**os.environ, "OTEL_ENABLED": "true", **env}
    done = subprocess.run(
        [sys.executable, "-c", CLI, case],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr


async def test_node_bullmq_reads_envoi_trace_context_as_its_telemetry_metadata_and_the_reverse(
    make_traced_api: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
    spans: InMemorySpanExporter,
    node_bullmq: Path,
    redis_url: str,
) -> None:
    """Across Node: a job envoi added carries the context where bullmq-otel looks (`opts.telemetry.metadata`);
    a job a Node producer added with bullmq-otel's metadata is processed by envoi in that trace."""
    api = await make_traced_api(otel_enabled=True)
    prefix = api.envoi.settings.redis_prefix
    answer = await api.client.post("/v1/jobs/SEND_EMAIL", json=email())
    metadata = await node(node_bullmq, "trace_context.js", redis_url, prefix, "read", answer.json()["jobId"])
    enqueue = by_name(spans)[ENQUEUE]
    assert json.loads(metadata)["traceparent"].split("-")[1:3] == [
        f"{enqueue.context.trace_id:032x}",
        f"{enqueue.context.span_id:016x}",
    ]

    spans.clear()
    await start_worker(api.envoi)
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    traceparent = f"00-{trace_id}-{parent_id}-01"
    data = json.dumps(email())
    await node(node_bullmq, "trace_context.js", redis_url, prefix, "add", "SEND_EMAIL", data, traceparent)
    # The worker takes the job envoi added above too: this one is told apart by its trace.
    job = await eventually(
        lambda: next(
            (
                s
                for s in spans.get_finished_spans()
                if s.name == JOB and f"{s.context.trace_id:032x}" == trace_id
            ),
            None,
        ),
        timeout=15,
        message="the Node-produced job's span in the Node producer's trace",
    )
    assert job.parent is not None and f"{job.parent.span_id:016x}" == parent_id
    assert job.parent.is_remote


async def test_a_batch_is_one_bulk_span_whose_every_job_runs_under_it(
    make_traced_api: Any, start_worker: Any, smtp_sink: SmtpSink, spans: InMemorySpanExporter
) -> None:
    api = await make_traced_api(otel_enabled=True)
    await start_worker(api.envoi)
    items = [email(to=f"user{i}@example.com") for i in range(3)]
    answer = await api.client.post("/v1/jobs/SEND_EMAIL/batch", json={"items": items})
    assert answer.status_code == 202, answer.text
    await eventually(lambda: len(smtp_sink.messages) == 3, timeout=15, message="three emails at the sink")
    bulk_name = f"addBulk {NOTIFICATIONS_QUEUE}.SEND_EMAIL"
    found = await eventually(
        lambda: (
            (done := spans.get_finished_spans())
            and sum(s.name == PROVIDER for s in done) == 3
            and sum(s.name == JOB for s in done) == 3
            and done
        ),
        timeout=15,
        message="three job and provider spans",
    )
    [bulk] = [s for s in found if s.name == bulk_name]
    jobs = [s for s in found if s.name == JOB]
    assert all(j.parent is not None and j.parent.span_id == bulk.context.span_id for j in jobs)
    assert {s.context.trace_id for s in found} == {bulk.context.trace_id}
    for span in found:
        assert "@example.com" not in everything_said(span).replace("***@example.com", ""), span.name


async def test_an_sms_gets_a_twilio_span_with_the_number_masked(
    make_traced_api: Any, start_worker: Any, twilio_server: TwilioServer, spans: InMemorySpanExporter
) -> None:
    api = await make_traced_api(otel_enabled=True)
    await start_worker(api.envoi)
    phone, code = "+33612345678", "Your code is 918273"
    answer = await api.client.post("/v1/jobs/SEND_SMS", json={"to": phone, "message": code})
    assert answer.status_code == 202, answer.text
    sms_job = f"process {NOTIFICATIONS_QUEUE}.SEND_SMS"
    found = await finished(spans, sms_job, "send twilio")
    twilio = found["send twilio"]
    assert twilio.parent is not None and twilio.parent.span_id == found[sms_job].context.span_id
    assert twilio.attributes is not None and twilio.attributes["envoi.recipient"] == mask_recipient(phone)
    assert twilio_server.messages
    for span in spans.get_finished_spans():
        said = everything_said(span)
        assert phone not in said and "612345678" not in said and "918273" not in said, span.name


async def test_a_job_run_inline_has_its_provider_span_under_the_enqueue_span(
    make_traced_api: Any, smtp_sink: SmtpSink, spans: InMemorySpanExporter
) -> None:
    """QUEUE_ENABLED=false: the job runs in the request; no job span, the SMTP call under the enqueue."""
    api = await make_traced_api(otel_enabled=True, queue_enabled=False)
    answer = await api.client.post("/v1/jobs/SEND_EMAIL", json=email())
    assert answer.status_code < 300, answer.text
    found = await finished(spans, REQUEST, ENQUEUE, PROVIDER)
    assert JOB not in found
    assert (
        found[PROVIDER].parent is not None
        and found[PROVIDER].parent.span_id == found[ENQUEUE].context.span_id
    )
    assert len(smtp_sink.messages) == 1
