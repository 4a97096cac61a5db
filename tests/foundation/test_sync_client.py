"""`SyncClient`: envoi from synchronous code, one background loop per client."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from bullmq import Job

from envoi.config import Settings
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.sync_client import SyncClient
from tests.helpers import bull_queue, process_env


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


#: A gunicorn master with `preload_app`: the app enqueues before the fork, then each worker process does.
PREFORK = """
import os, sys
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.sync_client import SyncClient

master = SyncClient.for_process()
ids = [master.enqueue(NOTIFICATIONS_QUEUE, "PING", {"who": "master"}).job_id]
children = []
for n in range(2):
    pid = os.fork()
    if pid == 0:
        client = SyncClient.for_process()
        ok = client is not master and client.enqueue(NOTIFICATIONS_QUEUE, "PING", {"who": n}).mode == "queued"
        os._exit(0 if ok else 1)
    children.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
ids.append(master.enqueue(NOTIFICATIONS_QUEUE, "PING", {"who": "master again"}).job_id)
print(codes, ids)
sys.exit(1 if any(codes) else 0)
"""


def test_a_client_made_before_a_fork_is_not_shared_with_the_children(settings: Settings) -> None:
    env = process_env(settings)
    done = subprocess.run(
        [sys.executable, "-c", PREFORK], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with SyncClient(settings) as client:
        queue = bull_queue(client.envoi.queue, NOTIFICATIONS_QUEUE)
        jobs = client.run(queue.getJobs(["waiting"]))
        assert sorted(str(job.data["who"]) for job in jobs) == ["0", "1", "master", "master again"]
