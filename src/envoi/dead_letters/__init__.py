"""Dead letters: jobs that failed for the last time, kept in SQL (`failed_jobs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envoi.runtime import Envoi


def install(envoi: Envoi) -> None:
    """Add the SQL failure recorder to `envoi.recorders`."""
