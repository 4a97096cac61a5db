"""An application's jobs module, as a user writes one: loaded through ENVOI_JOBS by the tests of
`test_custom_jobs.py`. What each handler saw is kept in `CALLS` (cleared by the tests' fixture)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from envoi import JobContext, PermanentDeliveryError, Retry, TransientDeliveryError, job


@dataclass(frozen=True)
class Call:
    name: str
    payload: Any
    context: JobContext
    at: float


CALLS: list[Call] = []


def calls(name: str) -> list[Call]:
    return [call for call in CALLS if call.name == name]


class InvoiceData(BaseModel):
    orderId: str = Field(min_length=1)
    amountCents: int = Field(gt=0)


class Attempts(BaseModel):
    #: How many attempts fail before one succeeds (a large number: all of them).
    failures: int = 1
    after: float = 0.0


@job("GENERATE_INVOICE", model=InvoiceData)
async def generate_invoice(data: InvoiceData, ctx: JobContext) -> dict[str, str]:
    CALLS.append(Call("GENERATE_INVOICE", data, ctx, time.monotonic()))
    return {"invoice": f"INV-{data.orderId}"}


@job("CHARGE_CARD", model=Attempts)
async def charge_card(data: Attempts, ctx: JobContext) -> None:
    CALLS.append(Call("CHARGE_CARD", data, ctx, time.monotonic()))
    raise PermanentDeliveryError("card declined (do not honor)", channel="payments", code="05")


@job("PUSH_TO_CRM", model=Attempts)
async def push_to_crm(data: Attempts, ctx: JobContext) -> str:
    CALLS.append(Call("PUSH_TO_CRM", data, ctx, time.monotonic()))
    if ctx.attempt <= data.failures:
        raise TransientDeliveryError(f"CRM answered 503 (attempt {ctx.attempt})", channel="crm", code="503")
    return "pushed"


@job("CALL_PARTNER", model=Attempts)
async def call_partner(data: Attempts, ctx: JobContext) -> str:
    CALLS.append(Call("CALL_PARTNER", data, ctx, time.monotonic()))
    if ctx.attempt <= data.failures:
        raise Retry(after=data.after, reason="partner rate limit")
    return "called"


@job("PING_PARTNER", queue="webhooks")
async def ping_partner(data: dict[str, Any], ctx: JobContext) -> None:
    CALLS.append(Call("PING_PARTNER", data, ctx, time.monotonic()))
