"""Each test declares the application's jobs afresh: the declarations (`envoi.queue.jobs.DECLARED_JOBS`)
and the imported modules are put back as they were afterwards, so no other test sees these jobs."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from envoi.queue.jobs import DECLARED_JOBS

# The API fixtures, for the tests that post the application's jobs to the real app.
from tests.api.conftest import api_settings, make_api  # noqa: F401

#: The modules the tests import as an application would (ENVOI_JOBS, --jobs).
APP_MODULES = ("tests.jobs.app_jobs", "tests.jobs.broken_jobs", "invoices")


@pytest.fixture(autouse=True)
def fresh_declarations() -> Iterator[None]:
    saved = dict(DECLARED_JOBS)
    yield
    DECLARED_JOBS.clear()
    DECLARED_JOBS.update(saved)
    for name in APP_MODULES:
        sys.modules.pop(name, None)
