"""Twilio status callbacks: signature checked over the public URL, ledger rows moved by MessageSid."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from envoi.api.twilio import expected_signature
from envoi.db.models import DeliveryStatus, MessageDelivery
from tests.api.conftest import API_URL, TWILIO_TOKEN, Api

PATH = "/v1/webhooks/twilio/status"


def test_signature_matches_twilios_documented_example() -> None:
    # The example of Twilio's own helper libraries' test suites.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert expected_signature("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


async def add_delivery(api: Api, sid: str, status: str = DeliveryStatus.SENT) -> str:
    async with api.envoi.db.session() as session:
        row = MessageDelivery(
            idempotency_key=f"key-{sid}",
            channel="sms",
            provider="twilio",
            recipient="+33612345678",
            status=status,
            provider_message_id=sid,
        )
        session.add(row)
    return row.id


async def status_of(api: Api, row_id: str) -> MessageDelivery:
    async with api.envoi.db.session() as session:
        row = await session.scalar(select(MessageDelivery).where(MessageDelivery.id == row_id))
        assert row is not None
        return row


async def callback(api: Api, params: dict[str, str], signature: str | None = None) -> Any:
    signature = signature or expected_signature(TWILIO_TOKEN, API_URL + PATH, params.items())
    return await api.anonymous.post(PATH, data=params, headers={"X-Twilio-Signature": signature})


async def test_delivered_moves_the_row(api: Api) -> None:
    row_id = await add_delivery(api, "SM001")
    response = await callback(api, {"MessageSid": "SM001", "MessageStatus": "delivered", "AccountSid": "AC1"})
    assert response.status_code == 204
    assert (await status_of(api, row_id)).status == DeliveryStatus.DELIVERED


async def test_read_counts_as_delivered(api: Api) -> None:
    row_id = await add_delivery(api, "SM002")
    await callback(api, {"MessageSid": "SM002", "MessageStatus": "read"})
    assert (await status_of(api, row_id)).status == DeliveryStatus.DELIVERED


async def test_undelivered_records_the_error_code(api: Api) -> None:
    row_id = await add_delivery(api, "SM003")
    response = await callback(
        api, {"MessageSid": "SM003", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    assert response.status_code == 204
    row = await status_of(api, row_id)
    assert row.status == DeliveryStatus.UNDELIVERED
    assert row.error_code == "30003"


async def test_intermediate_status_and_late_failure_change_nothing(api: Api) -> None:
    row_id = await add_delivery(api, "SM004", status=DeliveryStatus.DELIVERED)
    await callback(api, {"MessageSid": "SM004", "MessageStatus": "sent"})
    await callback(api, {"MessageSid": "SM004", "MessageStatus": "failed", "ErrorCode": "30008"})
    assert (await status_of(api, row_id)).status == DeliveryStatus.DELIVERED


async def test_bad_signature_is_403_and_changes_nothing(api: Api) -> None:
    row_id = await add_delivery(api, "SM005")
    params = {"MessageSid": "SM005", "MessageStatus": "failed", "ErrorCode": "30003"}
    forged = await callback(api, params, signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert forged.status_code == 403
    # Signed over another URL (the internal one, not API_URL): refused too.
    internal = expected_signature(TWILIO_TOKEN, "http://localhost" + PATH, params.items())
    assert (await callback(api, params, signature=internal)).status_code == 403
    unsigned = await api.anonymous.post(PATH, data=params)
    assert unsigned.status_code == 403
    assert (await status_of(api, row_id)).status == DeliveryStatus.SENT


async def test_unknown_sid_is_acknowledged(api: Api) -> None:
    response = await callback(api, {"MessageSid": "SM404", "MessageStatus": "delivered"})
    assert response.status_code == 204
