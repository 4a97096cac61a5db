"""What every `envoi` command does around its work: find the instance `envoi dev` runs (`envoi.devenv`),
and turn an unreachable Redis or database into one line on stderr instead of a traceback.

Exit codes, as every envoi command: 0 done, 1 the work failed (Redis or the database unreachable, an id
not found), 2 bad arguments or configuration.

`envoi.cli` wires it: `app.callback()(find_instance)` on the `envoi` app, and `main()` calling `run(app)`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError

from envoi.cli.common import EXIT_FAILURE, EXIT_USAGE
from envoi.devenv import DevEnv, load_dev_env
from envoi.errors import ConfigError, QueueUnavailableError

#: What `find_instance` applied, for the error messages (a CLI run is one process, one command).
_loaded: list[DevEnv] = []


def find_instance(ctx: typer.Context) -> None:
    """The `envoi` app's callback: apply `var/dev.env` before any command but `envoi dev`, which writes
    it (and must not take up the address of a Redis it started last time)."""
    if ctx.invoked_subcommand != "dev":
        loaded = load_dev_env()
        if loaded is not None:
            _loaded[:] = [loaded]


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    typer.echo(f"envoi: {message}", err=True)
    raise SystemExit(code)


def _from_dev_env(name: str) -> str:
    for loaded in _loaded:
        if name in loaded.applied:
            return f" ({name} from {loaded.path}: is `envoi dev` running?)"
    return ""


def database_message(exc: DBAPIError) -> str:
    """The driver's first line for a connection failure; the class only otherwise (a statement's error
    text can quote the values it carried)."""
    if type(exc).__name__ == "OperationalError":
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        return f"database error: {first}{_from_dev_env('DATABASE_URL')}; check DATABASE_URL, then `envoi migrate`"
    return f"database error ({type(exc.orig).__name__}){_from_dev_env('DATABASE_URL')}"


def run(app: typer.Typer) -> None:
    """`app()`, with infrastructure failures as one line and an exit code."""
    try:
        app()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except QueueUnavailableError as exc:
        fail(f"{exc}{_from_dev_env('REDIS_URL')}")
    except RedisConnectionError as exc:
        fail(f"Redis unreachable ({exc}){_from_dev_env('REDIS_URL')}")
    except DBAPIError as exc:
        fail(database_message(exc))
    except KeyboardInterrupt:
        sys.exit(130)
