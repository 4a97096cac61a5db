"""A worker process for the SIGTERM test: its one job takes a while and writes a file when it ends."""

from __future__ import annotations

import asyncio
import sys
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
