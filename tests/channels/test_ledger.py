"""The delivery ledger on a real database: keys, claims, leases, races, and the original system's bug."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import exists, update

from envoi.config import Settings
from envoi.db.models import DeliveryStatus, MessageDelivery, WebhookEndpoint
from envoi.db.types import utcnow
from envoi.deliveries import DeliveryLedger, IdempotencyKeyConflictError, Move, delivery_key
from envoi.errors import DeferredError
from envoi.notifications.jobs import JobMetadata
from envoi.queue.names import JobName
from envoi.runtime import Envoi
from tests.channels.support import EMAIL_TO, context, delivery, email_data
from tests.fixtures.smtp import SmtpSink

CLAIM = {"channel": "email", "provider": "smtp", "recipient": EMAIL_TO}


def meta(**values: Any) -> JobMetadata:
    return JobMetadata.model_validate(values)


def key(metadata: JobMetadata | None, *, job_id: str = "7", created_at_ms: int = 1000) -> str:
    return delivery_key(
        channel="sms",
        recipient="+33612345678",
        queue="notifications",
        job_id=job_id,
        created_at_ms=created_at_ms,
        idempotency_key=metadata.idempotency_key if metadata else None,
        flow=metadata.flow if metadata else None,
        entity_id=metadata.entity_id if metadata else None,
    )


def test_key_rules() -> None:
    assert key(meta(idempotencyKey="given", templateKey="t", userId="u")) == "given"
    assert key(meta(templateKey="reminder_24h", appointmentId="a1", userId="u1")) == (
        "reminder_24h:a1:sms:+33612345678"
    )
    assert key(meta(template="welcome", userId="u1")) == "welcome:u1:sms:+33612345678"
    # An id the producer names beyond the known ones is more specific than the user.
    assert key(meta(templateKey="invite", invitationId="i9", userId="u1")) == "invite:i9:sms:+33612345678"
    assert key(meta(templateKey="t", notificationId="n1", appointmentId="a1")).startswith("t:n1:")
    # No flow or no entity: the job's own id, the same on every retry of that job; bullmq's counter
    # ids (digits) with the job's creation time, a producer's own ids as given.
    assert key(meta(userId="u1")) == "job:notifications:7:1000"
    assert key(meta(templateKey="t")) == "job:notifications:7:1000"
    assert key(None, job_id="42", created_at_ms=5) == "job:notifications:42:5"
    assert key(None, job_id="delivery:org1:ab12", created_at_ms=5) == "job:notifications:delivery:org1:ab12"
    long = key(meta(templateKey="t" * 300, userId="u"))
    assert long.startswith("sha256:") and len(long) <= 255
    assert long == key(meta(templateKey="t" * 300, userId="u"))


def make_ledger(envoi: Envoi, lease_s: float = 300) -> DeliveryLedger:
    return DeliveryLedger(envoi.db, lease_s=lease_s)


async def insert_row(envoi: Envoi, key: str, status: DeliveryStatus, **values: Any) -> MessageDelivery:
    row = MessageDelivery(idempotency_key=key, status=status, **CLAIM, **values)
    async with envoi.db.session() as session:
        session.add(row)
    return row


async def test_first_claim_creates_the_row_sending(envoi: Envoi) -> None:
    claim = await make_ledger(envoi).claim(key="k", **CLAIM, template_key="welcome")
    assert claim.acquired and claim.lease_expires_at is not None
    row = await delivery(envoi, "k")
    assert row is not None
    assert (row.status, row.template_key, row.attempts) == ("SENDING", "welcome", 0)


async def test_a_fresh_pending_row_is_claimed_and_sent(
    delivery_settings: Settings, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    """The original system skipped any PENDING delivery younger than five minutes: the first send
    itself. Here a row created a moment ago, PENDING, is claimed and the message leaves."""
    envoi: Envoi = make_envoi(delivery_settings)
    await insert_row(envoi, "fresh", DeliveryStatus.PENDING)
    result = await envoi.registry.run(
        context(JobName.SEND_EMAIL, email_data(metadata={"idempotencyKey": "fresh"}))
    )
    assert result["status"] == "sent"
    assert len(smtp_sink.messages) == 1
    row = await delivery(envoi, "fresh")
    assert row is not None and row.status == "SENT" and row.sent_at is not None


@pytest.mark.parametrize("status", [DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED])
async def test_final_rows_are_not_claimed(envoi: Envoi, status: DeliveryStatus) -> None:
    await insert_row(envoi, "done", status, provider_message_id="SM1")
    claim = await make_ledger(envoi).claim(key="done", **CLAIM)
    assert not claim.acquired
    assert (claim.status, claim.provider_message_id) == (status, "SM1")


async def test_a_live_lease_defers_until_its_end_and_an_expired_one_is_taken_over(envoi: Envoi) -> None:
    ledger = make_ledger(envoi)
    first = await ledger.claim(key="k", **CLAIM)
    with pytest.raises(DeferredError) as raised:
        await ledger.claim(key="k", **CLAIM)
    assert raised.value.until == first.lease_expires_at
    # The first worker died: its lease runs out.
    async with envoi.db.session() as session:
        await session.execute(
            update(MessageDelivery).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    second = await ledger.claim(key="k", **CLAIM)
    assert second.acquired and second.lease_expires_at != first.lease_expires_at
    # The first worker's late failure does not overwrite the second's claim.
    assert await ledger.mark_failed(first, code="451", message="late") is False
    assert await ledger.mark_sent(second, provider="smtp", provider_message_id="<m@envoi>") is True
    row = await delivery(envoi, "k")
    assert row is not None and (row.status, row.provider_message_id, row.attempts) == ("SENT", "<m@envoi>", 1)


async def test_failed_rows_are_claimed_again_and_count_attempts(envoi: Envoi) -> None:
    ledger = make_ledger(envoi)
    claim = await ledger.claim(key="k", **CLAIM)
    assert await ledger.mark_failed(claim, code="451", message="4.7.1 Try again later") is True
    row = await delivery(envoi, "k")
    assert row is not None and (row.status, row.error_code, row.attempts) == ("FAILED", "451", 1)
    again = await ledger.claim(key="k", **CLAIM)
    assert again.acquired
    await ledger.mark_sent(again, provider="smtp", provider_message_id="<m@envoi>")
    row = await delivery(envoi, "k")
    assert row is not None and (row.status, row.error_code, row.attempts) == ("SENT", None, 2)


async def test_concurrent_claims_have_one_winner(envoi: Envoi) -> None:
    ledger = make_ledger(envoi)

    async def attempt() -> bool:
        try:
            return (await ledger.claim(key="race", **CLAIM)).acquired
        except DeferredError:
            return False

    outcomes = await asyncio.gather(*(attempt() for _ in range(8)))
    assert outcomes.count(True) == 1


async def test_concurrent_takeover_of_a_failed_row_has_one_winner(envoi: Envoi) -> None:
    await insert_row(envoi, "failed", DeliveryStatus.FAILED, attempts=1)
    ledger = make_ledger(envoi)

    async def attempt() -> bool:
        try:
            return (await ledger.claim(key="failed", **CLAIM)).acquired
        except DeferredError:
            return False

    outcomes = await asyncio.gather(*(attempt() for _ in range(8)))
    assert outcomes.count(True) == 1


async def test_a_given_key_reused_for_another_message_is_refused(envoi: Envoi) -> None:
    ledger = make_ledger(envoi)
    await ledger.claim(key="shared", **CLAIM)
    with pytest.raises(IdempotencyKeyConflictError, match=r"email to j\*\*\*@example.com"):
        await ledger.claim(key="shared", channel="sms", provider="twilio", recipient="+33612345678")


async def test_cancel_keeps_a_sent_row(envoi: Envoi) -> None:
    ledger = make_ledger(envoi)
    assert await ledger.cancel(key="c", **CLAIM, reason="SMS_ENABLED=false") == DeliveryStatus.CANCELLED
    await insert_row(envoi, "s", DeliveryStatus.SENT)
    assert await ledger.cancel(key="s", **CLAIM, reason="SMS_ENABLED=false") == DeliveryStatus.SENT


async def test_suppress_is_final_keeps_a_sent_row_and_turns_a_failed_one_with_its_reason(
    envoi: Envoi,
) -> None:
    ledger = make_ledger(envoi)
    opted_out = {"reason": "the recipient opted out", "code": "RECIPIENT_OPTED_OUT", "move": Move.SUPPRESS}
    assert await ledger.cancel(key="p", **CLAIM, **opted_out) == DeliveryStatus.SUPPRESSED
    await insert_row(envoi, "s", DeliveryStatus.SENT)
    assert await ledger.cancel(key="s", **CLAIM, **opted_out) == DeliveryStatus.SENT
    await insert_row(envoi, "f", DeliveryStatus.FAILED)
    assert await ledger.cancel(key="f", **CLAIM, **opted_out) == DeliveryStatus.SUPPRESSED
    row = await ledger.get("f")
    assert row is not None and (row.error_code, row.error_message) == (
        "RECIPIENT_OPTED_OUT",
        "the recipient opted out",
    )
    # Final: nothing claims it again.
    claim = await ledger.claim(key="p", **CLAIM)
    assert not claim.acquired and claim.status is DeliveryStatus.SUPPRESSED


async def test_mark_sent_asking_reads_the_condition_in_the_same_statement(envoi: Envoi) -> None:
    """The SENT move also answers a question on another table (the handlers ask whether an endpoint is
    enabled); it records exactly what `mark_sent` records, and answers nothing when the row did not move."""
    ledger = make_ledger(envoi)
    anyone = exists().where(WebhookEndpoint.enabled.is_(True))
    claim = await ledger.claim(key="k", **CLAIM)
    assert await ledger.mark_sent_asking(
        claim, provider="smtp", provider_message_id="<m@envoi>", ask=anyone
    ) == (
        True,
        False,
    )
    row = await delivery(envoi, "k")
    assert row is not None and (row.status, row.provider_message_id, row.attempts, row.lease_expires_at) == (
        "SENT",
        "<m@envoi>",
        1,
        None,
    )
    async with envoi.db.session() as session:
        session.add(
            WebhookEndpoint(url="https://8.8.8.8/", events=["message.sent"], secret="s", enabled=True)
        )
    other = await ledger.claim(key="k2", **CLAIM)
    assert await ledger.mark_sent_asking(other, provider="smtp", provider_message_id=None, ask=anyone) == (
        True,
        True,
    )
    # Already SENT and then DELIVERED: a late SENT does not move it back, and asks nothing.
    await ledger.apply_provider_status(provider_message_id="<m@envoi>", status="delivered", error_code=None)
    assert await ledger.mark_sent_asking(
        claim, provider="smtp", provider_message_id="<m@envoi>", ask=anyone
    ) == (
        False,
        None,
    )
