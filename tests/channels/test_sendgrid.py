"""SendGrid specifics: the request as SendGrid documents it (the ledger's key in custom_args), its answers
mapped into the error tree, and its rate-limit reset honoured when no Retry-After is given."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from envoi.channels.email_sendgrid import IDEMPOTENCY_ARG, sendgrid_error
from envoi.channels.mime import REFERENCE_HEADER, reference
from envoi.config import Settings
from envoi.errors import PermanentDeliveryError, TransientDeliveryError
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.email_api_support import email_api
from tests.channels.support import EMAIL_TO, Recorder, context, email_data
from tests.fixtures.sendgrid import SendGridServer
from tests.helpers import eventually


async def test_request_is_what_sendgrid_documents(
    sendgrid_server: SendGridServer, make_delivery_settings: Any, make_envoi: Any
) -> None:
    api = email_api("sendgrid", sendgrid_server)
    settings = make_delivery_settings(**api.settings(email_reply_to="Support <support@envoi.test>"))
    envoi: Envoi = make_envoi(settings)
    data = email_data(metadata={"idempotencyKey": "confirm-a1"})
    result = await envoi.registry.run(context(JobName.SEND_EMAIL, data))
    [request] = sendgrid_server.requests
    assert request.headers["authorization"] == f"Bearer {sendgrid_server.api_key}"
    assert request.body == {
        "personalizations": [{"to": [{"email": EMAIL_TO}]}],
        "from": {"email": "no-reply@envoi.test", "name": "envoi"},
        "reply_to": {"email": "support@envoi.test", "name": "Support"},
        "subject": "Votre rendez-vous",
        "content": [
            {"type": "text/plain", "value": "Bonjour Jeanne"},
            {"type": "text/html", "value": "<p>Bonjour Jeanne</p>"},
        ],
        "headers": {REFERENCE_HEADER: reference("confirm-a1")},
        "custom_args": {IDEMPOTENCY_ARG: "confirm-a1"},
    }
    assert result["providerMessageId"] == sendgrid_server.messages[0]["id"]


async def test_html_only_email_is_accepted(
    sendgrid_server: SendGridServer, make_delivery_settings: Any, make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(**email_api("sendgrid", sendgrid_server).settings()))
    await envoi.registry.run(context(JobName.SEND_EMAIL, email_data(text=None)))
    [sent] = sendgrid_server.messages
    assert sent["content"] == [{"type": "text/html", "value": "<p>Bonjour Jeanne</p>"}]


async def test_429_waits_for_the_rate_limit_reset(
    sendgrid_server: SendGridServer, make_delivery_settings: Any, make_envoi: Any, start_worker: Any
) -> None:
    settings: Settings = make_delivery_settings(**email_api("sendgrid", sendgrid_server).settings())
    envoi: Envoi = make_envoi(settings)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    reset = int(time.time()) + 3  # whole epoch seconds, as SendGrid sends it: 2 to 3 s from now
    sendgrid_server.fail_next(status=429, headers={"X-RateLimit-Reset": str(reset)})
    started_at = time.monotonic()
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
    await eventually(lambda: sendgrid_server.messages, timeout=15, message="sent after the reset")
    assert time.monotonic() - started_at >= 1.9
    assert sendgrid_server.statuses() == [429, 202]
    assert recorder.failures == []


def _answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "http://sendgrid.test/v3/mail/send")
    if body is None:
        return httpx.Response(status, text="", headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, TransientDeliveryError),
        (500, TransientDeliveryError),
        (502, TransientDeliveryError),
        (503, TransientDeliveryError),
        (400, PermanentDeliveryError),
        (401, PermanentDeliveryError),
        (403, PermanentDeliveryError),
        (413, PermanentDeliveryError),
    ],
)
def test_answers_map_into_the_error_tree(status: int, kind: type) -> None:
    error = sendgrid_error(
        _answer(status, {"errors": [{"message": "m", "field": "from.email", "help": None}]})
    )
    assert type(error) is kind
    assert (error.code, error.channel) == (str(status), "email")
    assert str(error) == f"SendGrid answered {status}: from.email: m"


def test_retry_after_wins_over_the_reset_and_a_bad_reset_is_ignored() -> None:
    later = str(int(time.time()) + 60)
    both = sendgrid_error(_answer(429, {"errors": []}, **{"Retry-After": "2", "X-RateLimit-Reset": later}))
    assert isinstance(both, TransientDeliveryError) and both.retry_after == 2.0
    garbage = sendgrid_error(_answer(429, None, **{"X-RateLimit-Reset": "soon"}))
    assert isinstance(garbage, TransientDeliveryError) and garbage.retry_after is None
    assert str(garbage) == "SendGrid answered 429: Too Many Requests"
