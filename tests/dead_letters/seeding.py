"""Fill `failed_jobs` fast, in SQL (no Python row objects): for the scale test and bench/dlq.py.

Row n (1-based): queue `webhooks` when n % 3 == 0 else `notifications`; job name JOB_NAMES[n % 4];
status RETRIED when n % 10 == 0 else FAILED; ids sort with n (older rows first).
"""

from __future__ import annotations

import sqlalchemy as sa

JOB_NAMES = ("SEND_EMAIL", "SEND_SMS", "SEND_WHATSAPP", "CREATE_INAPP_NOTIFICATION")

_COLUMNS = (
    "id, queue_name, job_name, job_id, job_data, job_options, error_message, stacktrace, attempts_made,"
    " status, retried_job_id, finished_on, created_at, updated_at"
)

_POSTGRES = f"""
INSERT INTO failed_jobs ({_COLUMNS})
SELECT '01J' || lpad(n::text, 23, '0'),
       CASE WHEN n % 3 = 0 THEN 'webhooks' ELSE 'notifications' END,
       (ARRAY['SEND_EMAIL','SEND_SMS','SEND_WHATSAPP','CREATE_INAPP_NOTIFICATION'])[n % 4 + 1],
       n::text,
       '{{"to": "user@example.com", "subject": "Hello"}}'::json,
       '{{"attempts": 5, "backoff": {{"type": "exponential", "delay": 30000}}}}'::json,
       'SMTP 451 temporary failure #' || n,
       '[]'::json, 5,
       CASE WHEN n % 10 = 0 THEN 'RETRIED' ELSE 'FAILED' END,
       NULL, 1700000000000 + n,
       now() - make_interval(secs => (:count - n) / 1000.0),
       now()
FROM generate_series(:start, :count) AS n
"""

_SQLITE = f"""
WITH RECURSIVE s(n) AS (SELECT :start UNION ALL SELECT n + 1 FROM s WHERE n < :count)
INSERT INTO failed_jobs ({_COLUMNS})
SELECT '01J' || printf('%023d', n),
       CASE WHEN n % 3 = 0 THEN 'webhooks' ELSE 'notifications' END,
       CASE n % 4 WHEN 0 THEN 'SEND_EMAIL' WHEN 1 THEN 'SEND_SMS' WHEN 2 THEN 'SEND_WHATSAPP'
                  ELSE 'CREATE_INAPP_NOTIFICATION' END,
       CAST(n AS TEXT),
       '{{"to": "user@example.com", "subject": "Hello"}}',
       '{{"attempts": 5, "backoff": {{"type": "exponential", "delay": 30000}}}}',
       'SMTP 451 temporary failure #' || n,
       '[]', 5,
       CASE WHEN n % 10 = 0 THEN 'RETRIED' ELSE 'FAILED' END,
       NULL, 1700000000000 + n,
       '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000'
FROM s
"""


def seed_failed_jobs(connection: sa.Connection, count: int, *, start: int = 1) -> None:
    """Insert rows `start`..`count` (inclusive) in one statement."""
    sql = _POSTGRES if connection.dialect.name == "postgresql" else _SQLITE
    connection.execute(sa.text(sql), {"start": start, "count": count})


def expected_count(count: int, *, queue: str | None = None, job_name: str | None = None) -> int:
    return sum(
        1
        for n in range(1, count + 1)
        if (queue is None or queue == ("webhooks" if n % 3 == 0 else "notifications"))
        and (job_name is None or job_name == JOB_NAMES[n % 4])
    )
