"""`SyncClient`: envoi for synchronous code (Flask, Django, scripts).

One event loop runs in a daemon thread per client; calls hop onto it and wait. Creating a loop per call
(`asyncio.run`) would reconnect to Redis every time.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from envoi.config import Settings
from envoi.queue.base import EnqueueResult
from envoi.runtime import Envoi

T = TypeVar("T")


class SyncClient:
    _per_process: SyncClient | None = None
    _per_process_pid: int | None = None
    _per_process_lock = threading.Lock()

    @classmethod
    def for_process(cls) -> SyncClient:
        """One client per process, made on first use from the environment's settings. Fork-safe: a client
        made before a fork (gunicorn's or uWSGI's master) runs its loop thread in the parent only, so a
        child process gets its own."""
        with cls._per_process_lock:
            if cls._per_process is None or cls._per_process_pid != os.getpid():
                cls._per_process, cls._per_process_pid = cls(), os.getpid()
            return cls._per_process

    def __init__(self, settings: Settings | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="envoi-client", daemon=True)
        self._thread.start()
        self.envoi: Envoi = self.run(self._build(settings))

    @staticmethod
    async def _build(settings: Settings | None) -> Envoi:
        return Envoi(settings)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the client's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def enqueue(
        self,
        queue: str,
        job_name: str,
        data: dict[str, Any],
        *,
        job_id: str | None = None,
        delay: float | timedelta | None = None,
        **options: Any,
    ) -> EnqueueResult:
        return self.run(
            self.envoi.queue.enqueue(queue, job_name, data, job_id=job_id, delay=delay, **options)
        )

    def enqueue_many(
        self,
        queue: str,
        job_name: str,
        items: Sequence[dict[str, Any]],
        *,
        job_ids: Sequence[str] | None = None,
        delay: float | timedelta | None = None,
        **options: Any,
    ) -> list[EnqueueResult]:
        """`QueueService.enqueue_many` from synchronous code: one result per item, in order."""
        return self.run(
            self.envoi.queue.enqueue_many(queue, job_name, items, job_ids=job_ids, delay=delay, **options)
        )

    def remove(self, queue: str, job_id: str) -> bool:
        return self.run(self.envoi.queue.remove(queue, job_id))

    @property
    def notifications(self) -> Any:
        """The product's flows (`NotificationsService`), called synchronously:
        `client.notifications.send_verification_email(email=..., first_name=..., verification_token=...)`."""
        return _Blocking(self, self.envoi.notifications)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.run(self.envoi.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Blocking:
    """Every coroutine method of `target`, run on the client's loop and waited for."""

    def __init__(self, client: SyncClient, target: object) -> None:
        self._client = client
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._client.run(attribute(*args, **kwargs))

        blocking: Callable[..., Any] = call
        return blocking
