"""`Envoi`: the objects a process needs (settings, database, handlers, queue), built once, closed once."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from envoi.config import Settings, load_settings
from envoi.db.session import Database
from envoi.queue.jobs import FailureRecorder, HandlerRegistry, LoggingFailureRecorder
from envoi.queue.service import QueueService


class Envoi:
    """The composition root. `registry=None` installs envoi's own handlers (the notification jobs);
    tests pass a registry of their own when the handlers are not what they test."""

    def __init__(self, settings: Settings | None = None, *, registry: HandlerRegistry | None = None) -> None:
        self.settings = settings or load_settings()
        self.db = Database(
            self.settings.database_url,
            connect_timeout_s=self.settings.database_connect_timeout_s,
            statement_timeout_s=self.settings.database_statement_timeout_s,
        )
        self.recorders: list[FailureRecorder] = [LoggingFailureRecorder()]
        #: Given the queue names a worker serves, each returns a coroutine function the worker runs
        #: alongside itself (`Worker.companions`): the dead-letter reconciler is one.
        self.worker_companions: list[
            Callable[[tuple[str, ...]], Callable[[], Coroutine[Any, Any, None]]]
        ] = []
        #: Run by `close()`, last added first, before the database goes: the channels' HTTP client is one.
        self.closers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.registry = registry if registry is not None else HandlerRegistry()
        self._install(default_handlers=registry is None)
        self.queue = QueueService(self.settings, self.registry, self.recorders)

    def _install(self, *, default_handlers: bool) -> None:
        # Imported here: these modules import the runtime's parts, not the other way round.
        from envoi.api.alerts import install as install_alerts
        from envoi.dead_letters import install as install_dead_letters
        from envoi.notifications import install as install_notifications

        install_dead_letters(self)
        install_alerts(self)
        if default_handlers:
            install_notifications(self)

    async def close(self) -> None:
        await self.queue.close()
        for closer in reversed(self.closers):
            await closer()
        await self.db.dispose()
