"""An application's own jobs on envoi's queue: invoices generated in the background.

Run from this folder: `envoi worker --jobs invoices` (or ENVOI_JOBS=invoices). Each job gets envoi's
retries, dead letters, metrics, admin page and fallback; `POST /v1/jobs/GENERATE_INVOICE` validates
its body with `InvoiceData` when the API is started with the same `--jobs`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel, Field

from envoi import JobContext, PermanentDeliveryError, Retry, job

#: Where invoices go: a stand-in for your PDF generator and your storage.
INVOICE_DIR = Path(os.environ.get("INVOICE_DIR", "var/invoices"))
CURRENCIES = ("EUR", "USD")


class InvoiceData(BaseModel):
    orderId: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    amountCents: int = Field(gt=0)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")


@job("GENERATE_INVOICE", model=InvoiceData)
async def generate_invoice(data: InvoiceData, ctx: JobContext) -> dict[str, str]:
    """Write `INVOICE_DIR/{orderId}.txt` once: a retried or repeated job finds it and does nothing."""
    if data.currency not in CURRENCIES:
        # Retrying cannot help: straight to the dead letters, where an operator sees why.
        raise PermanentDeliveryError(f"no invoice layout for {data.currency}", channel="invoices")
    # Blocking work (files, a PDF library) goes to a thread: the worker runs other jobs meanwhile.
    status = await asyncio.to_thread(write_invoice, data)
    return {"invoice": f"{data.orderId}.txt", "status": status, "jobId": ctx.job_id}


def write_invoice(data: InvoiceData) -> str:
    INVOICE_DIR.mkdir(parents=True, exist_ok=True)
    invoice = INVOICE_DIR / f"{data.orderId}.txt"
    if invoice.exists():
        return "exists"
    # Invoice numbers must not skip or repeat: one numbering at a time, across workers.
    lock = INVOICE_DIR / "numbering.lock"
    try:
        lock.touch(exist_ok=False)
    except FileExistsError:
        # Another process is numbering: come back in a second rather than after the whole backoff.
        raise Retry(after=1, reason="invoice numbering busy") from None
    try:
        number = len(list(INVOICE_DIR.glob("*.txt"))) + 1
        amount = f"{data.amountCents // 100}.{data.amountCents % 100:02d} {data.currency}"
        invoice.write_text(f"Invoice {number:06d}\nOrder {data.orderId}\nTotal {amount}\n")
    finally:
        lock.unlink()
    return "written"
