"""envoi's pytest plugin: the `envoi_outbox` fixture. Opt in from a conftest.py (it needs pytest-asyncio):

pytest_plugins = ["envoi.pytest_plugin"]
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from envoi.testing import Outbox, outbox


@pytest_asyncio.fixture
async def envoi_outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    """An inline `Envoi` whose emails, SMS and WhatsApp messages are kept in lists (see `envoi.testing`)."""
    async with outbox(tmp_path) as box:
        yield box
