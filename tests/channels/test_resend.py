"""Resend specifics: the request as Resend documents it, its answers mapped into the error tree, and its
Idempotency-Key making a retry after a lost answer send once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from envoi.channels.email_resend import idempotency_header, resend_error
from envoi.channels.mime import REFERENCE_HEADER, reference
from envoi.errors import PermanentDeliveryError, TransientDeliveryError
from envoi.queue.names import JobName
from envoi.runtime import Envoi
from tests.channels.email_api_support import email_api
from tests.channels.support import DIRECT_KEY, EMAIL_TO, context, delivery, email_data
from tests.fixtures.resend import ResendServer


async def test_request_is_what_resend_documents(
    resend_server: ResendServer, make_delivery_settings: Any, make_envoi: Any
) -> None:
    api = email_api("resend", resend_server)
    settings = make_delivery_settings(**api.settings(email_reply_to="support@envoi.test"))
    envoi: Envoi = make_envoi(settings)
    data = email_data(metadata={"idempotencyKey": "confirm-a1"})
    result = await envoi.registry.run(context(JobName.SEND_EMAIL, data))
    [request] = resend_server.requests
    assert request.headers["authorization"] == f"Bearer {resend_server.api_key}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "confirm-a1"
    assert request.body == {
        "from": "envoi <no-reply@envoi.test>",
        "to": [EMAIL_TO],
        "subject": "Votre rendez-vous",
        "html": "<p>Bonjour Jeanne</p>",
        "text": "Bonjour Jeanne",
        "reply_to": "support@envoi.test",
        "headers": {REFERENCE_HEADER: reference("confirm-a1")},
    }
    assert result["providerMessageId"] == resend_server.messages[0]["id"]


async def test_retry_after_a_lost_answer_sends_once(
    resend_server: ResendServer, make_delivery_settings: Any, make_envoi: Any
) -> None:
    """Resend took the email but the answer came too late: the retry carries the same Idempotency-Key
    and gets the first email's id back; one email leaves."""
    envoi: Envoi = make_envoi(
        make_delivery_settings(**email_api("resend", resend_server).settings(email_api_timeout_s=0.3))
    )
    resend_server.fail_next(status=200, delay=1.5)
    with pytest.raises(TransientDeliveryError):
        await envoi.registry.run(context(JobName.SEND_EMAIL, email_data()))
    result = await envoi.registry.run(context(JobName.SEND_EMAIL, email_data(), attempt=2))
    [sent] = resend_server.messages
    assert result["providerMessageId"] == sent["id"]
    assert [r.headers["idempotency-key"] for r in resend_server.requests] == [DIRECT_KEY] * 2
    row = await delivery(envoi, DIRECT_KEY)
    assert row is not None and (row.status, row.provider_message_id) == ("SENT", sent["id"])


def _answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "http://resend.test/emails")
    if body is None:
        return httpx.Response(status, text="<html>proxy error</html>", headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "name", "kind"),
    [
        (429, "rate_limit_exceeded", TransientDeliveryError),
        (500, "internal_server_error", TransientDeliveryError),
        (503, None, TransientDeliveryError),
        (409, "concurrent_idempotent_requests", TransientDeliveryError),
        (409, "invalid_idempotent_request", PermanentDeliveryError),
        (400, "validation_error", PermanentDeliveryError),
        (401, "missing_api_key", PermanentDeliveryError),
        (403, "invalid_api_key", PermanentDeliveryError),
        (422, "invalid_from_address", PermanentDeliveryError),
    ],
)
def test_answers_map_into_the_error_tree(status: int, name: str | None, kind: type) -> None:
    body = {"statusCode": status, "name": name, "message": "m"} if name else None
    error = resend_error(_answer(status, body))
    assert type(error) is kind
    assert error.code == (name or str(status)) and error.channel == "email"


def test_retry_after_is_kept() -> None:
    error = resend_error(
        _answer(429, {"name": "rate_limit_exceeded", "message": "slow down"}, **{"Retry-After": "7"})
    )
    assert isinstance(error, TransientDeliveryError) and error.retry_after == 7.0
    assert str(error) == "Resend answered 429: slow down"


def test_idempotency_header_is_the_key_or_its_digest() -> None:
    assert idempotency_header("welcome:u1:email:jane@example.com") == "welcome:u1:email:jane@example.com"
    unicode_key = idempotency_header("bienvenue:é")
    assert unicode_key.startswith("sha256:") and unicode_key.isascii()
    assert idempotency_header("bienvenue:é") == unicode_key
