"""A CLI that finds its instance: every `envoi` command reads the `var/dev.env` that `envoi dev` wrote,
from the project or any folder below it, and says in one line (never a traceback) when Redis or the
database cannot be reached."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envoi import cli
from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.devenv import DEV_ENV, absolute_sqlite_url, find_project, load_dev_env, write_dev_env
from envoi.embedded_redis import free_port
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.api.conftest import add_failed_job
from tests.helpers import job_state

CLEARED = ("REDIS_URL", "REDIS_HOST", "REDIS_PREFIX", "DATABASE_URL", "QUEUE_ENABLED", "LOG_LEVEL")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder with `var/` (its SQLite database migrated), run from `project/src/deep`."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "app"
    (root / "var").mkdir(parents=True)
    upgrade(f"sqlite:///{root / 'var' / 'envoi.db'}")
    deep = root / "src" / "deep"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    yield root


def envoi_cmd(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`envoi ARGS` in this process, through the console script's own `main()` (errors included)."""
    argv = sys.argv
    sys.argv = ["envoi", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def test_dev_env_is_found_from_below_and_never_overrides_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    write_dev_env(root, {"REDIS_URL": "redis://127.0.0.1:7777/0", "DATABASE_URL": "sqlite:///./var/envoi.db"})
    (root / "a" / "b").mkdir(parents=True)
    assert find_project(root / "a" / "b") == root
    assert find_project(tmp_path) is None
    assert oct((root / DEV_ENV).stat().st_mode & 0o777) == "0o600"

    env = {"REDIS_URL": "redis://elsewhere:6379/0"}
    loaded = load_dev_env(env, start=root / "a" / "b")
    assert loaded is not None and loaded.path == root / DEV_ENV
    assert env["REDIS_URL"] == "redis://elsewhere:6379/0"  # the environment wins
    # A relative SQLite path is the project's, not the current directory's.
    assert env["DATABASE_URL"] == f"sqlite:///{root.resolve() / 'var' / 'envoi.db'}"
    assert loaded.applied == {"DATABASE_URL": "sqlite:///./var/envoi.db"}
    assert load_dev_env({}, start=tmp_path) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./var/envoi.db", "sqlite:////p/var/envoi.db"),
        ("sqlite+aiosqlite:///data/x.db?timeout=5", "sqlite+aiosqlite:////p/data/x.db?timeout=5"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_only_relative_sqlite_paths_are_resolved(url: str, expected: str) -> None:
    assert absolute_sqlite_url(url, Path("/p")) == expected


def test_every_command_finds_the_instance_from_a_subfolder(
    project: Path, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `envoi dev` writes (a relative database path too: it is resolved against the project).
    write_dev_env(
        project,
        {"REDIS_URL": redis_url, "DATABASE_URL": "sqlite:///./var/envoi.db", "REDIS_PREFIX": redis_prefix},
    )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        database_url=f"sqlite:///{project / 'var' / 'envoi.db'}",
    )

    async def seed() -> str:
        envoi = Envoi(settings)
        try:
            for job_id, delay in (("later-1", 3600), ("later-2", 7200)):
                await envoi.queue.enqueue(
                    NOTIFICATIONS_QUEUE, "PING", {"to": "a@example.com"}, job_id=job_id, delay=delay
                )
            return await add_failed_job(envoi)
        finally:
            await envoi.close()

    dead_letter = asyncio.run(seed())

    code, out, err = envoi_cmd("jobs", "list", "--state", "delayed", capsys=capsys)
    assert (code, err) == (0, ""), err
    assert "later-1" in out and "later-2" in out
    code, out, _ = envoi_cmd("jobs", "show", "later-1", capsys=capsys)
    assert code == 0 and "delayed" in out and "a***@example.com" in out and "a@example.com" not in out
    assert envoi_cmd("jobs", "promote", "later-1", capsys=capsys)[0] == 0
    assert envoi_cmd("jobs", "cancel", "later-2", capsys=capsys)[0] == 0
    code, _, err = envoi_cmd("jobs", "promote", "later-2", capsys=capsys)
    assert code == 1 and err.count("\n") == 1 and "No job later-2" in err
    code, _, err = envoi_cmd("jobs", "list", "--state", "sleeping", capsys=capsys)
    assert code == 2 and "unknown state" in err
    assert envoi_cmd("queues", "pause", NOTIFICATIONS_QUEUE, capsys=capsys)[0] == 0

    async def states() -> tuple[str, str, bool]:
        envoi = Envoi(settings)
        try:
            return (
                await job_state(envoi, NOTIFICATIONS_QUEUE, "later-1"),
                await job_state(envoi, NOTIFICATIONS_QUEUE, "later-2"),
                await envoi.queue.inspector.paused(NOTIFICATIONS_QUEUE),
            )
        finally:
            await envoi.close()

    assert asyncio.run(states()) == ("waiting", "unknown", True)
    assert envoi_cmd("queues", "resume", NOTIFICATIONS_QUEUE, capsys=capsys)[0] == 0

    # The dead letters are read from the project's database, not from ./var below the current folder.
    code, out, _ = envoi_cmd("dlq", "list", capsys=capsys)
    assert code == 0 and dead_letter in out
    code, out, _ = envoi_cmd("dlq", "resolve", dead_letter, capsys=capsys)
    assert code == 0 and f"Resolved {dead_letter}" in out
    code, _, err = envoi_cmd("dlq", "resolve", "01ARZ3NDEKTSV4RRFFQ69G5FAV", capsys=capsys)
    assert code == 1 and "No dead letter" in err
    assert not (Path.cwd() / "var").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("jobs", "list"),
        ("jobs", "show", "x"),
        ("jobs", "promote", "x"),
        ("jobs", "cancel", "x"),
        ("queues", "pause", NOTIFICATIONS_QUEUE),
        ("queues", "resume", NOTIFICATIONS_QUEUE),
        ("worker",),
    ],
)
def test_no_redis_is_one_line_naming_the_dev_env(
    project: Path, args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    write_dev_env(
        project,
        {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "DATABASE_URL": "sqlite:///./var/envoi.db"},
    )
    os.environ["LOG_LEVEL"] = "ERROR"  # `envoi worker` logs; the failure is what is checked here
    code, _, err = envoi_cmd(*args, capsys=capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("envoi: Redis (redis://127.0.0.1:")
    assert f"REDIS_URL from {project / DEV_ENV}: is `envoi dev` running?" in line


def test_the_dlq_commands_need_no_redis(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dev_env(
        project,
        {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "DATABASE_URL": "sqlite:///./var/envoi.db"},
    )
    for args in (("dlq", "list"), ("dlq", "stats"), ("migrate",)):
        code, _, err = envoi_cmd(*args, capsys=capsys)
        assert code == 0, (args, err)


@pytest.mark.parametrize("args", [("dlq", "list"), ("dlq", "stats"), ("dlq", "resolve", "x"), ("migrate",)])
def test_no_database_is_one_line(
    project: Path, args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    write_dev_env(project, {"DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none"})
    os.environ["LOG_LEVEL"] = "ERROR"
    code, _, err = envoi_cmd(*args, capsys=capsys)
    assert code == 1, err
    [line] = err.strip().splitlines()
    assert line.startswith("envoi: database error:")
    assert f"DATABASE_URL from {project / DEV_ENV}" in line
    assert "Traceback" not in err


def test_the_console_script_prints_no_traceback(project: Path) -> None:
    """The same through a real process: nothing of Python's own error printing shows."""
    write_dev_env(project, {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    result = subprocess.run(
        [sys.executable, "-m", "envoi", "jobs", "list"],
        cwd=Path.cwd(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("envoi: Redis"), result.stderr
