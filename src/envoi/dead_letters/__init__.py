"""Dead letters: jobs that failed for the last time, kept in SQL (`failed_jobs`, owned by this package).

- `recorder`: the worker (and the inline fallback) insert one row per final failure;
- `reconciler`: runs beside each worker and inserts what bullmq failed but the table missed;
- `service`: list, show, retry, delete, count (used by `envoi dlq`, the admin API and page);
- `alerts`: runs beside each worker and posts a summary of new dead letters to ALERT_WEBHOOK_URL.

`envoi.runtime` wires them; nothing here knows the runtime.
"""
