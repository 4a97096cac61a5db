"""Every move of the delivery ledger from every status, on a real database, against an expected table
written out here (not read from `envoi.deliveries.TRANSITIONS`): the rules the ledger promises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from envoi.db.models import DeliveryStatus, MessageDelivery
from envoi.db.types import utcnow
from envoi.deliveries import FINAL_STATUSES, Claim, DeliveryLedger
from envoi.errors import DeferredError
from envoi.runtime import Envoi
from tests.channels.support import delivery

CLAIM = {"channel": "sms", "provider": "twilio", "recipient": "+33612345678"}

#: The states a row can be in, as seen by one run ("own": the lease this run holds).
STATES = [
    "PENDING",
    "SENDING_OWN",
    "SENDING_OWN_EXPIRED",
    "SENDING_OTHER",
    "SENT",
    "DELIVERED",
    "UNDELIVERED",
    "FAILED",
    "CANCELLED",
]
SENDING = ("SENDING_OWN", "SENDING_OWN_EXPIRED", "SENDING_OTHER")
UNCHANGED = "unchanged"

#: move -> {state: the status after it ("unchanged": the row is left as it was; "deferred": the claim
#: raised DeferredError)}. States not named are unchanged.
EXPECTED: dict[str, dict[str, str]] = {
    "claim": {
        "PENDING": "SENDING",
        "FAILED": "SENDING",
        "SENDING_OWN_EXPIRED": "SENDING",
        "SENDING_OWN": "deferred",
        "SENDING_OTHER": "deferred",
    },
    "renew": {"SENDING_OWN": "SENDING", "SENDING_OWN_EXPIRED": "SENDING"},
    "mark_sent": {
        "PENDING": "SENT",
        "SENDING_OWN": "SENT",
        "SENDING_OWN_EXPIRED": "SENT",
        "SENDING_OTHER": "SENT",
        "FAILED": "SENT",
        "CANCELLED": "SENT",
    },
    "mark_failed": {"SENDING_OWN": "FAILED", "SENDING_OWN_EXPIRED": "FAILED"},
    "cancel": {"PENDING": "CANCELLED", "FAILED": "CANCELLED"},
    "release": {"SENDING_OWN": "PENDING", "SENDING_OWN_EXPIRED": "PENDING"},
    "delivered": {**dict.fromkeys(SENDING, "DELIVERED"), "SENT": "DELIVERED", "DELIVERED": "DELIVERED"},
    "read": {**dict.fromkeys(SENDING, "DELIVERED"), "SENT": "DELIVERED", "DELIVERED": "DELIVERED"},
    "undelivered": {**dict.fromkeys(SENDING, "UNDELIVERED"), "SENT": "UNDELIVERED"},
    "failed": {**dict.fromkeys(SENDING, "UNDELIVERED"), "SENT": "UNDELIVERED"},
    "sent": {},  # Twilio's intermediate statuses change nothing
    "queued": {},
}


async def _row(envoi: Envoi, state: str, key: str) -> Claim:
    """A row in `state`, and the claim this run would hold on it."""
    now = utcnow()
    own = now + timedelta(seconds=60)
    lease: datetime | None = None
    status = state
    if state == "SENDING_OWN":
        status, lease = "SENDING", own
    elif state == "SENDING_OWN_EXPIRED":
        own = now - timedelta(seconds=1)
        status, lease = "SENDING", own
    elif state == "SENDING_OTHER":
        status, lease = "SENDING", now + timedelta(seconds=30)
    row = MessageDelivery(
        idempotency_key=key,
        status=status,
        lease_expires_at=lease,
        provider_message_id=f"SM-{key}",
        attempts=0,
        **CLAIM,
    )
    async with envoi.db.session() as session:
        session.add(row)
    return Claim(row.id, key, DeliveryStatus.SENDING, lease_expires_at=own)


def _act(ledger: DeliveryLedger, move: str, claim: Claim) -> Callable[[], Awaitable[Any]]:
    actions: dict[str, Callable[[], Awaitable[Any]]] = {
        "claim": lambda: ledger.claim(key=claim.key, **CLAIM),
        "renew": lambda: ledger.renew(claim),
        "mark_sent": lambda: ledger.mark_sent(
            claim, provider="twilio", provider_message_id=f"SM-{claim.key}"
        ),
        "mark_failed": lambda: ledger.mark_failed(claim, code="30008", message="unknown error"),
        "cancel": lambda: ledger.cancel(key=claim.key, **CLAIM, reason="SMS_ENABLED=false"),
        "release": lambda: ledger.release(claim),
    }
    provider = lambda: ledger.apply_provider_status(  # noqa: E731
        provider_message_id=f"SM-{claim.key}", status=move, error_code="30003"
    )
    return actions.get(move, provider)


@pytest.mark.parametrize("move", list(EXPECTED))
async def test_every_transition_of_the_ledger(envoi: Envoi, move: str) -> None:
    ledger = DeliveryLedger(envoi.db, lease_s=60)
    outcomes: dict[str, str] = {}
    for state in STATES:
        key = f"{move}-{state}"
        claim = await _row(envoi, state, key)
        before = await delivery(envoi, key)
        assert before is not None
        try:
            await _act(ledger, move, claim)()
        except DeferredError:
            outcomes[state] = "deferred"
            continue
        after = await delivery(envoi, key)
        assert after is not None
        changed = (after.status, after.lease_expires_at, after.updated_at) != (
            before.status,
            before.lease_expires_at,
            before.updated_at,
        )
        outcomes[state] = after.status if changed else UNCHANGED
    expected = {state: EXPECTED[move].get(state, UNCHANGED) for state in STATES}
    assert outcomes == expected


async def test_a_renewal_moves_the_lease_and_keeps_the_fencing_token(envoi: Envoi) -> None:
    ledger = DeliveryLedger(envoi.db, lease_s=60)
    claim = await ledger.claim(key="r", **CLAIM)
    first = claim.lease_expires_at
    assert first is not None and await ledger.renew(claim)
    assert claim.lease_expires_at is not None and claim.lease_expires_at > first
    # The renewed claim still fences: its failure is recorded.
    assert await ledger.mark_failed(claim, code="451", message="later")
    row = await delivery(envoi, "r")
    assert row is not None and row.status == "FAILED"


def test_final_statuses_are_the_ones_nothing_claims() -> None:
    claimable = sorted(s for s in DeliveryStatus if s not in FINAL_STATUSES)
    assert claimable == ["FAILED", "PENDING", "SENDING"]
