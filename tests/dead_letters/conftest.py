from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from envoi.runtime import Envoi
from tests.dead_letters.support import Jobs


@pytest.fixture
def envoi_with_jobs(make_settings: Callable[..., Any], make_envoi: Any) -> tuple[Envoi, Jobs]:
    jobs = Jobs()
    return make_envoi(make_settings(job_backoff_delay_ms=20), registry=jobs.registry), jobs
