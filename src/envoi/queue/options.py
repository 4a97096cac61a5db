"""Default job options: the same for every producer, so a job's behaviour does not depend on who added it."""

from __future__ import annotations

from typing import Any

from envoi.config import Settings


def default_job_options(settings: Settings) -> dict[str, Any]:
    """5 attempts, exponential backoff from 30 s (factor 2), remove on complete, keep on fail.

    `removeOnFail` stays False on every job: a count or age limit on one job trims other failed jobs
    out of bullmq's failed set, which the dead-letter reconciler reads.
    """
    return {
        "attempts": settings.job_attempts,
        "backoff": {"type": "exponential", "delay": settings.job_backoff_delay_ms},
        "removeOnComplete": True,
        "removeOnFail": False,
    }


def merge_options(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **{k: v for k, v in overrides.items() if v is not None}}
    merged["removeOnFail"] = False
    return merged
