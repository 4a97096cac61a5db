from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from envoi.runtime import Envoi
from tests.dead_letters.original_db import original_database
from tests.dead_letters.support import Jobs


@pytest.fixture
def envoi_with_jobs(make_settings: Callable[..., Any], make_envoi: Any) -> tuple[Envoi, Jobs]:
    jobs = Jobs()
    return make_envoi(make_settings(job_backoff_delay_ms=20), registry=jobs.registry), jobs


@pytest.fixture
def original_database_url() -> Iterator[str]:
    """The original NestJS system's PostgreSQL database (`tests/dead_letters/original_db.py`)."""
    with original_database() as url:
        yield url
