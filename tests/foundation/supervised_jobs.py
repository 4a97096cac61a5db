"""Jobs for the `envoi worker --processes N` tests, loaded with `--jobs tests.foundation.supervised_jobs`:
TOUCH writes a file (and names the process that ran it); BLOCK blocks its process's event loop; SLEEP
awaits (a long job that ignores nothing)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from envoi import JobContext, job


@job("TOUCH")
async def touch(_data: object, context: JobContext) -> None:
    Path(context.data["path"]).write_text(str(os.getpid()))


@job("BLOCK")
async def block(_data: object, context: JobContext) -> None:
    Path(context.data["started"]).write_text(str(os.getpid()))
    time.sleep(float(context.data["seconds"]))  # blocks the event loop on purpose


@job("SLEEP")
async def sleep(_data: object, context: JobContext) -> None:
    Path(context.data["started"]).write_text(str(os.getpid()))
    await asyncio.sleep(float(context.data["seconds"]))  # the work itself: a long await
