"""`SyncClient`: envoi from synchronous code, one background loop per client."""

from __future__ import annotations

import threading

import pytest
from bullmq import Job

from envoi.config import Settings
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.sync_client import SyncClient
from tests.helpers import bull_queue


def test_sync_client_enqueues_from_plain_threads(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with SyncClient(settings) as client:
        ids: list[str] = []

        def produce() -> None:
            for i in range(10):
                ids.append(client.enqueue(NOTIFICATIONS_QUEUE, "PING", {"i": i}).job_id)

        threads = [threading.Thread(target=produce) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(ids)) == 30
        queue = bull_queue(client.envoi.queue, NOTIFICATIONS_QUEUE)
        job = client.run(Job.fromId(queue, ids[0]))
        assert job is not None and job.name == "PING"
        assert client.run(queue.getWaitingCount()) == 30
        assert client.remove(NOTIFICATIONS_QUEUE, ids[0]) is True


def test_sync_client_enqueues_many_in_order(settings: Settings) -> None:
    with SyncClient(settings) as client:
        results = client.enqueue_many(NOTIFICATIONS_QUEUE, "PING", [{"i": i} for i in range(5)])
        assert [r.mode for r in results] == ["queued"] * 5
        queue = bull_queue(client.envoi.queue, NOTIFICATIONS_QUEUE)
        jobs = [client.run(Job.fromId(queue, r.job_id)) for r in results]
        assert [job.data for job in jobs] == [{"i": i} for i in range(5)]
