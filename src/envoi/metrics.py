"""Prometheus metrics, defined once. Counters live in the process that counts (API or worker);
gauges of queue depth and dead letters are computed when /metrics is scraped."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

JOBS_ENQUEUED = Counter("envoi_jobs_enqueued", "Jobs accepted by enqueue", ["queue", "job_name", "mode"])
JOBS_COMPLETED = Counter("envoi_jobs_completed", "Jobs completed by a worker", ["queue", "job_name"])
JOBS_FAILED = Counter("envoi_jobs_failed", "Job attempts that failed", ["queue", "job_name", "final"])
JOBS_RETRIED = Counter("envoi_jobs_retried", "Dead letters re-enqueued", ["queue", "job_name"])
#: A job whose channel is off (SMS_ENABLED=false, Twilio not configured): completed without sending.
CHANNEL_DISABLED = Counter(
    "envoi_jobs_channel_disabled", "Jobs completed without sending: their channel is off", ["channel"]
)
FALLBACK_RUNS = Counter("envoi_fallback_runs", "Jobs run inline (fallback)", ["queue", "job_name", "outcome"])
JOB_DURATION = Histogram("envoi_job_duration_seconds", "Handler run time", ["queue", "job_name"])
ENQUEUE_LATENCY = Histogram(
    "envoi_enqueue_latency_seconds",
    "Time spent in enqueue (inline runs included)",
    ["queue", "mode"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
#: Per provider: `sent`, `failed` (each failed request), `throttled` (waited for its rate-limit slot),
#: `refused` (slot beyond RATE_LIMIT_MAX_WAIT_S), `paused` (a Retry-After honoured by every worker),
#: `failed_over` (the next provider was tried).
PROVIDER_SENDS = Counter("envoi_provider_sends", "Provider send outcomes", ["provider", "outcome"])
