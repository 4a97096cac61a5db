"""One rule for what envoi stores: valid Unicode, finite numbers a JavaScript reader keeps, bounded
nesting and size, single-line MIME headers. A 422 naming the field at the API (nothing enqueued); a
permanent error for a producer that writes to Redis itself (dead-lettered after one attempt)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from envoi.db.models import FailedJob
from envoi.errors import InvalidJobDataError
from envoi.notifications.jobs import parse_job
from envoi.runtime import Envoi
from envoi.validation import json_depth_exceeds
from tests.api.conftest import Api
from tests.dead_letters.support import rows, until
from tests.helpers import eventually
from tests.hostile.support import inbox_of, nested, nested_text, post_raw, producer, queued

INBOX = "/v1/users/u1/notifications"
EMAIL = {"to": "jane@example.com", "subject": "Hello", "html": "<p>Hi</p>"}
ATTACHMENT = {"filename": "a.txt", "contentType": "text/plain", "content": "aGk="}


def errors_of(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {error["path"]: error["reason"] for error in response.json()["errors"]}


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        (
            INBOX,
            {"title": "t", "message": "m", "metadata": {"note": "half \ud83d"}},
            "metadata",
            "valid Unicode",
        ),
        (INBOX, {"title": "t", "message": "m", "metadata": {"\udc00key": 1}}, "metadata", "valid Unicode"),
        (INBOX, {"title": "t\udfff", "message": "m"}, "title", "string"),
        ("/v1/jobs/SEND_EMAIL", {**EMAIL, "subject": "\ud800"}, "subject", "string"),
        (
            "/v1/jobs/SEND_SMS",
            {"to": "+33612345678", "message": "m", "metadata": {"x": ["\ud800"]}},
            "metadata",
            "valid Unicode",
        ),
        (
            "/v1/flows/verification-email",
            {"email": "j@example.com", "firstName": "J\ud800", "verificationToken": "t"},
            "firstName",
            "string",
        ),
    ],
)
async def test_lone_surrogate_is_a_422_naming_the_field(
    api: Api, path: str, body: dict[str, Any], field: str, reason: str
) -> None:
    response = await post_raw(api.client, path, body)
    errors = errors_of(response)
    assert any(p.startswith(field) and reason in r for p, r in errors.items()), errors
    assert await queued(api) == 0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"x": NaN}', "finite number"),
        (b'{"x": Infinity}', "finite number"),
        (b'{"x": [-Infinity]}', "finite number"),
        (b'{"x": 1e999}', "finite number"),
        (b'{"x": 9007199254740993}', "integers must be between"),
    ],
)
async def test_numbers_json_cannot_carry_are_a_422_not_dropped(api: Api, raw: bytes, reason: str) -> None:
    body = b'{"title": "t", "message": "m", "metadata": ' + raw + b"}"
    errors = errors_of(await post_raw(api.client, INBOX, body))
    assert reason in errors["metadata"]
    assert await queued(api) == 0


async def test_largest_safe_integer_and_ordinary_floats_are_kept(api: Api) -> None:
    metadata = {"big": 2**53 - 1, "ratio": 0.25, "tiny": 5e-324}
    response = await post_raw(api.client, INBOX, {"title": "t", "message": "m", "metadata": metadata})
    assert response.status_code == 202, response.text


async def test_metadata_may_nest_32_levels_not_33(api: Api) -> None:
    ok = await post_raw(api.client, INBOX, {"title": "t", "message": "m", "metadata": nested(32)})
    assert ok.status_code == 202, ok.text
    too_deep = await post_raw(api.client, INBOX, {"title": "t", "message": "m", "metadata": nested(33)})
    assert "must not nest more than 32 levels" in errors_of(too_deep)["metadata"]


@pytest.mark.parametrize("levels", [65, 256, 1000, 30_000])
async def test_deeply_nested_body_is_a_422_without_a_traceback(
    api: Api, levels: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = b'{"title": "t", "message": "m", "metadata": ' + nested_text(levels) + b"}"
    for path in (INBOX, "/v1/jobs/SEND_EMAIL", "/v1/flows/verification-email"):
        response = await post_raw(api.client, path, body)
        assert errors_of(response) == {"(root)": "must not nest more than 64 levels"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await queued(api) == 0


def test_depth_scan_ignores_brackets_inside_strings() -> None:
    inside = b'{"a": "' + b"[" * 500 + b'"}'
    assert not json_depth_exceeds(inside, 64)
    escaped = b'{"a": "\\"' + b"{" * 500 + b'"}'
    assert not json_depth_exceeds(escaped, 64)
    assert json_depth_exceeds(nested_text(65), 64)
    assert not json_depth_exceeds(nested_text(64), 64)


@pytest.mark.parametrize(
    "body",
    [
        b'"' + b'\\"' * 120_000 + b"[" * 65,  # an unterminated string full of escaped quotes
        b"[" * 30 + b'"' + b'\\"' * 120_000 + b"\\",  # the same, ending on a lone backslash
    ],
)
async def test_depth_scan_stays_linear_on_hostile_strings(api: Api, body: bytes) -> None:
    # Matching a string anew from every quote inside an unterminated one took 100 s for 80 KB.
    started = time.perf_counter()
    assert not json_depth_exceeds(body, 64)
    assert time.perf_counter() - started < 2
    response = await post_raw(api.client, INBOX, body)
    assert response.status_code == 422


async def test_metadata_over_max_metadata_bytes_is_a_422(
    make_api: Callable[..., Any], api_settings: Any
) -> None:
    api: Api = await make_api(api_settings.model_copy(update={"max_metadata_bytes": 200}))
    small = await post_raw(api.client, INBOX, {"title": "t", "message": "m", "metadata": {"x": "y" * 150}})
    assert small.status_code == 202
    large = await post_raw(api.client, INBOX, {"title": "t", "message": "m", "metadata": {"x": "é" * 150}})
    assert "at most 200 bytes" in errors_of(large)["metadata"]
    raw = await post_raw(
        api.client, "/v1/jobs/SEND_SMS", {"to": "+33612345678", "message": "m", "metadata": {"x": "y" * 300}}
    )
    assert "at most 200 bytes" in errors_of(raw)["metadata"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**EMAIL, "subject": "Hello\r\nBcc: victim@example.com"}, "subject"),
        ({**EMAIL, "subject": "Hello\nthere"}, "subject"),
        ({**EMAIL, "subject": "Hello\u2028there"}, "subject"),
        (
            {**EMAIL, "attachments": [{**ATTACHMENT, "filename": "a.txt\r\nContent-Type: text/html"}]},
            "attachments.0.filename",
        ),
        (
            {**EMAIL, "attachments": [{**ATTACHMENT, "contentType": "text/plain\nX-Evil: 1"}]},
            "attachments.0.contentType",
        ),
    ],
)
async def test_line_break_in_a_mime_header_is_a_422(api: Api, data: dict[str, Any], field: str) -> None:
    errors = errors_of(await post_raw(api.client, "/v1/jobs/SEND_EMAIL", data))
    assert "single line" in errors[field], errors
    assert await queued(api) == 0
    with pytest.raises(InvalidJobDataError) as caught:
        parse_job("SEND_EMAIL", data)
    assert field in caught.value.fields


FOREIGN_JOBS: list[tuple[str, dict[str, Any], str]] = [
    ("SEND_EMAIL", {**EMAIL, "subject": "Hi\r\nBcc: victim@example.com"}, "subject: must be a single line"),
    (
        "SEND_EMAIL",
        {**EMAIL, "attachments": [{**ATTACHMENT, "filename": "x\n.txt"}]},
        "attachments.0.filename",
    ),
    (
        "SEND_EMAIL",
        {**EMAIL, "attachments": [{**ATTACHMENT, "contentType": "a/b\r\n"}]},
        "attachments.0.contentType",
    ),
    (
        "CREATE_INAPP_NOTIFICATION",
        {"userId": "u1", "title": "t", "message": "m", "metadata": {"n": "\ud83d"}},
        "valid Unicode",
    ),
    (
        "CREATE_INAPP_NOTIFICATION",
        {"userId": "u1", "title": "t", "message": "m", "metadata": nested(40)},
        "nest more than 32",
    ),
    (
        "CREATE_INAPP_NOTIFICATION",
        {"userId": "u1", "title": "t", "message": "m", "metadata": nested(800)},
        "metadata: must",  # too deep and too large: the size is checked first
    ),
    (
        "CREATE_INAPP_NOTIFICATION",
        {"userId": "u1", "title": "t", "message": "m", "metadata": {"x": "y" * 600}},
        "metadata: must be at most 500 bytes",
    ),
    (
        "CREATE_INAPP_NOTIFICATION",
        {"userId": "u1", "title": "t", "message": "m" * 9000},
        "data: must be at most 8000 bytes",
    ),
    (
        "SEND_SMS",
        {"to": "+33612345678", "message": "m", "metadata": {"n": 2**60}},
        "integers must be between",
    ),
]


async def test_foreign_producer_bad_jobs_fail_once_and_the_worker_goes_on(
    make_settings: Callable[..., Any], make_envoi: Callable[..., Envoi], start_worker: Any
) -> None:
    settings = make_settings(max_metadata_bytes=500, max_job_data_bytes=8000)
    envoi = make_envoi(settings)
    queue = producer(settings)
    try:
        ids = {}
        for name, data, reason in FOREIGN_JOBS:
            ids[(await queue.add(name, data)).id] = reason
        good = await queue.add(
            "CREATE_INAPP_NOTIFICATION", {"userId": "u-good", "title": "ok", "message": "m"}
        )
        await start_worker(envoi)

        async def all_dead() -> list[FailedJob]:
            found = await rows(envoi)
            return found if len(found) >= len(FOREIGN_JOBS) else []

        dead = await until(all_dead, timeout=30, message="every bad job dead-lettered")
        await eventually(lambda: inbox_of(envoi, "u-good"), message="the valid job after the junk")
        assert len(await rows(envoi)) == len(FOREIGN_JOBS)
        for row in dead:
            assert row.attempts_made == 1, (row.job_id, row.error_message)
            assert ids[row.job_id] in row.error_message, row.error_message
        assert str(await queue.getJobState(good.id)) in ("completed", "unknown")
    finally:
        await queue.close()
