"""Settings never show a secret, at any door: repr and str, an invalid-settings error, /readyz, the admin
page, the CLI's output on a config error, and the API's and the worker's log lines at DEBUG."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from bullmq import Queue
from redis.exceptions import ConnectionError as RedisConnectionError
from typer.testing import CliRunner

from envoi.api.app import create_app
from envoi.cli import app as cli
from envoi.config import Settings, load_settings, redact_url
from envoi.embedded_redis import free_port, redis_server_binary
from envoi.errors import ConfigError
from envoi.runtime import Envoi
from tests.api.conftest import ADMIN_TOKEN, Api
from tests.helpers import eventually

PASSWORD = "hunter2-Sekret"
DB_PASSWORD = "db-Passw0rd-xyz"


def _secrets_absent(text: str) -> None:
    assert PASSWORD not in text
    assert DB_PASSWORD not in text


def test_repr_and_str_of_settings_hide_url_passwords_and_secrets() -> None:
    settings = load_settings(
        _env_file=None,
        redis_url=f"redis://default:{PASSWORD}@cache.internal:6380/1",
        database_url=f"postgresql://envoi:{DB_PASSWORD}@db.internal:5432/envoi?sslmode=require",
        alert_webhook_url=f"https://hooks.example/services/{PASSWORD}",
        smtp_password=PASSWORD,
        twilio_auth_token=PASSWORD,
        envoi_api_key=PASSWORD,
        envoi_admin_token=PASSWORD,
    )
    for shown in (repr(settings), str(settings), f"{settings}", repr(settings.redis), str(settings.redis)):
        _secrets_absent(shown)
    assert "redis_url='redis://default:***@cache.internal:6380/1'" in repr(settings)
    assert "envoi:***@db.internal:5432/envoi?sslmode=require" in str(settings)
    # The values themselves are intact for the code that connects.
    assert settings.redis.password == PASSWORD
    assert DB_PASSWORD in settings.database_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://user:p@ss@h/0", "redis://user:***@h/0"),
        (
            "postgresql://u:pw@h/db?password=pw&sslmode=require",
            "postgresql://u:***@h/db?password=***&sslmode=require",
        ),
        ("postgresql://postgres@h/db", "postgresql://postgres@h/db"),
        ("sqlite:///./var/envoi.db", "sqlite:///./var/envoi.db"),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("bad", "variable"),
    [
        ({"redis_url": f"redis://:{PASSWORD}@localhost:99999/0"}, "REDIS_URL"),
        ({"redis_url": f"http://:{PASSWORD}@localhost/0"}, "REDIS_URL"),
        ({"database_url": f"postgresql://u:{DB_PASSWORD}@h:port/db"}, "DATABASE_URL"),
        ({"database_url": f"mysql://u:{DB_PASSWORD}@h/db"}, "DATABASE_URL"),
        # A bad value next to good ones that hold passwords.
        ({"redis_port": "nope", "redis_password": PASSWORD, "smtp_password": DB_PASSWORD}, "REDIS_PORT"),
        ({"alert_webhook_url": f"ftp://u:{PASSWORD}@h/x"}, "ALERT_WEBHOOK_URL"),
    ],
)
def test_invalid_settings_error_never_quotes_a_secret(bad: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **bad)
    assert f"Invalid setting {variable}:" in str(caught.value)
    _secrets_absent(str(caught.value))
    # Settings(...) directly (as tests and scripts do) raises pydantic's error: it hides inputs too.
    with pytest.raises(Exception) as raw:
        Settings(_env_file=None, **bad)  # type: ignore[arg-type]
    _secrets_absent(str(raw.value))


def test_cli_config_error_shows_no_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file
    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@localhost:99999/0")
    monkeypatch.setenv("DATABASE_URL", f"postgresql://envoi:{DB_PASSWORD}@127.0.0.1:{free_port()}/x")
    for args in (["worker"], ["api"], ["migrate"], ["dlq", "list"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Invalid setting REDIS_URL" in result.output
        _secrets_absent(result.output)


async def test_readyz_with_an_unreachable_password_bearing_database(
    make_envoi: Callable[..., Envoi], make_settings: Callable[..., Settings]
) -> None:
    url = f"postgresql://envoi:{DB_PASSWORD}@127.0.0.1:{free_port()}/envoi"
    envoi = make_envoi(
        make_settings(database_url=url, redis_url=f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    )
    transport = httpx.ASGITransport(app=create_app(envoi), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("unreachable")
    assert response.json()["redis"].startswith("unreachable")
    _secrets_absent(response.text)


async def test_admin_page_and_api_show_no_secret(make_api: Callable[..., Any], make_settings: Any) -> None:
    api: Api = await make_api(
        make_settings(
            envoi_admin_token=ADMIN_TOKEN,
            smtp_password=PASSWORD,
            alert_webhook_url=f"https://hooks.example/{PASSWORD}",
        )
    )
    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    cookie = {"envoi_admin": login.cookies["envoi_admin"]}
    pages = [
        await api.anonymous.get("/admin", cookies=cookie),
        await api.anonymous.get("/admin/static/admin.js"),
        await api.admin.get("/v1/admin/queues"),
        await api.admin.get("/v1/admin/failed-jobs"),
        await api.anonymous.get("/openapi.json"),
    ]
    for page in pages:
        assert page.status_code == 200
        _secrets_absent(page.text)
        assert ADMIN_TOKEN not in page.text


# --- start-up and DEBUG logs of the real processes --------------------------------------------------


@pytest.fixture
async def passworded_redis(tmp_path: Path) -> AsyncIterator[str]:
    """A private redis-server that requires a password (the shared one has none)."""
    port = free_port()
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--requirepass", PASSWORD, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = aioredis.Redis(port=port, password=PASSWORD)

    async def answers() -> bool:
        try:
            return bool(await client.ping())
        except RedisConnectionError:
            return False

    try:
        await eventually(answers, message="redis-server with requirepass")
        yield f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    finally:
        await client.aclose()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def process_env(passworded_redis: str, database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a real `envoi api` / `envoi worker`: a password in REDIS_URL, and in
    DATABASE_URL too when it is PostgreSQL (which, on this machine, accepts and ignores it)."""
    db = database_url
    if db.startswith("postgresql://") and "@" in db:
        user, _, rest = db.removeprefix("postgresql://").partition("@")
        db = f"postgresql://{user.split(':')[0]}:{DB_PASSWORD}@{rest}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVOI_", "REDIS_", "DATABASE_"))}
    env.update(
        {
            "REDIS_URL": passworded_redis,
            "DATABASE_URL": db,
            "LOG_LEVEL": "DEBUG",
            "ENVOI_PORT": str(free_port()),
            "EMAIL_PROVIDER": "console",
            "OUTBOX_DIR": str(tmp_path / "outbox"),
            "SMTP_PASSWORD": PASSWORD,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        }
    )
    return env


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out.decode(errors="replace")


async def test_api_logs_at_debug_show_no_password(process_env: dict[str, str], tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "envoi", "api"],
        env=process_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{process_env['ENVOI_PORT']}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    assert process.poll() is None, "envoi api exited"
                    return False

            await eventually(healthy, timeout=30, message="envoi api answering")
            assert (await client.get("/readyz")).status_code == 200
            accepted = await client.post(
                "/v1/users/u1/notifications", json={"title": "Hello", "message": "Secret body"}
            )
            assert accepted.status_code == 202
    finally:
        output = _stop(process)
    assert "DEBUG" in output, output[-2000:]
    _secrets_absent(output)


async def test_worker_logs_at_debug_show_no_password(process_env: dict[str, str], tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "envoi", "worker"],
        env=process_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    target = load_settings(_env_file=None, redis_url=process_env["REDIS_URL"]).redis
    queue = Queue("notifications", {"connection": target.connection_kwargs(connect_timeout_s=1)})
    try:
        job = await queue.add("CREATE_INAPP_NOTIFICATION", {"userId": "u1", "title": "t", "message": "m"})

        async def done() -> bool:
            assert process.poll() is None, "envoi worker exited"
            return str(await queue.getJobState(job.id)) in ("completed", "unknown")

        await eventually(done, timeout=30, message="the worker processed the job")
    finally:
        await queue.close()
        output = _stop(process)
    assert "Notifications worker started" in output, output[-2000:]
    assert "DEBUG" in output, output[-2000:]
    _secrets_absent(output)
