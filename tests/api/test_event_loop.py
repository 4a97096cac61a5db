"""No route or dependency runs in FastAPI's thread pool: a plain `def` is sent to a worker thread on every
request, and on `POST /v1/jobs` those hops cost more than half the queued endpoint's rate."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from envoi.api.app import create_app
from envoi.config import Settings
from envoi.runtime import Envoi


def _runs_on_the_loop(call: Callable[..., Any]) -> bool:
    target = call if inspect.isroutine(call) else getattr(call, "__call__", call)  # noqa: B004
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _routes(
    routes: Iterable[BaseRoute], inherited: tuple[Any, ...] = ()
) -> Iterator[tuple[APIRoute, tuple[Any, ...]]]:
    """Each APIRoute with the dependencies of the routers it was included from (FastAPI 0.16x keeps
    included routers as they are, behind `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route, inherited
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from _routes(router.routes, (*inherited, *router.dependencies))


async def test_every_route_and_dependency_is_async(api_settings: Settings) -> None:
    envoi = Envoi(api_settings)  # the app's routes, without its lifespan (no database, no Redis needed)
    app = create_app(envoi)
    await envoi.close()
    routes = list(_routes(app.routes))
    assert len(routes) > 20  # the walk reaches the real routes
    in_threads = set()
    for route, router_dependencies in routes:
        calls = [route.endpoint, *_calls(route.dependant)]
        for depends in router_dependencies:
            calls += [depends.dependency, *_calls(get_dependant(path=route.path, call=depends.dependency))]
        in_threads |= {
            f"{route.path}: {getattr(c, '__qualname__', c)}" for c in calls if not _runs_on_the_loop(c)
        }
    assert sorted(in_threads) == []
