"""A worker process for the shutdown tests: SLOW takes a while (awaiting) and writes a file when it ends;
BLOCK blocks the event loop itself (a CPU-bound or blocking job)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from envoi.cli import configure_logging
from envoi.config import load_settings
from envoi.queue.jobs import HandlerRegistry, JobContext
from envoi.runtime import Envoi
from envoi.worker import Worker

registry = HandlerRegistry()


@registry.handler("SLOW")
async def slow(_data: object, context: JobContext) -> str:
    Path(context.data["started"]).write_text("started")
    await asyncio.sleep(float(context.data["seconds"]))  # the work itself, not a synchronisation
    Path(context.data["done"]).write_text("done")
    return "ok"


@registry.handler("BLOCK")
async def block(_data: object, context: JobContext) -> str:
    Path(context.data["started"]).write_text("started")
    time.sleep(float(context.data["seconds"]))  # blocks the event loop on purpose
    return "ok"


async def main() -> None:
    configure_logging()
    envoi = Envoi(load_settings(), registry=registry)
    try:
        await Worker(envoi).run_until_signalled()
    finally:
        await envoi.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
