"""Dead letters: jobs that failed for the last time, kept in SQL (`failed_jobs`).

- `recorder`: the worker (and the inline fallback) insert one row per final failure;
- `reconciler`: runs beside each worker and inserts what bullmq failed but the table missed;
- `service`: list, show, retry, delete, count (used by `envoi dlq` and the admin API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envoi.queue.jobs import FinalFailure
    from envoi.runtime import Envoi


def install(envoi: Envoi) -> None:
    """Add the SQL failure recorder to `envoi.recorders`, and the reconciler to every worker."""
    from envoi.dead_letters.reconciler import companion, mark_seen
    from envoi.dead_letters.recorder import SqlFailureRecorder

    async def seen(failure: FinalFailure) -> None:
        await mark_seen(envoi, failure)

    envoi.recorders.append(SqlFailureRecorder(envoi.db, on_recorded=seen, events=envoi.events))
    envoi.worker_companions.append(companion(envoi))
