"""The framework examples in examples/ run as their READMEs say, against a real Redis: each sign-up
enqueues one verification email (Django: only when the transaction commits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from envoi.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment an app process runs with: envoi's settings, as a deployment would set them."""
    database_url = f"sqlite:///{tmp_path / 'envoi.db'}"
    upgrade(database_url)
    env = {
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": f"envoi-example-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": database_url,
        "DEFAULT_LOCALE": "en",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


def queued_email(env: dict[str, str], job_id: str) -> dict[str, object]:
    client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    try:
        fields = client.hgetall(f"{env['REDIS_PREFIX']}:notifications:{job_id}")
    finally:
        client.close()
    assert fields.get("name") == "SEND_EMAIL", fields
    data: dict[str, object] = json.loads(fields["data"])
    return data


def run_script(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_fastapi_example_enqueues_through_one_envoi_per_process(app_env: dict[str, str]) -> None:
    from examples.fastapi_app.main import app

    with TestClient(app) as client:
        response = client.post("/signup", json={"email": "jane@example.com", "first_name": "Jane"})
    assert response.status_code == 202 and response.json()["mode"] == "queued"
    assert queued_email(app_env, response.json()["jobId"])["to"] == "jane@example.com"


def test_flask_example_enqueues_through_the_process_client(app_env: dict[str, str]) -> None:
    code = """
import json
from envoi import SyncClient
from examples.flask_app.app import create_app
response = create_app().test_client().post("/signup", data={"email": "jo@example.com", "first_name": "Jo"})
SyncClient.for_process().close()
print(json.dumps([response.status_code, response.get_json()]))
"""
    status, body = json.loads(run_script(code, app_env))
    assert status == 202 and body["mode"] == "queued"
    assert queued_email(app_env, body["jobId"])["to"] == "jo@example.com"


def test_django_example_enqueues_only_after_commit(app_env: dict[str, str]) -> None:
    code = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "examples.django_app.project.settings"
import django
django.setup()
from django.test import Client
from envoi import SyncClient
from examples.django_app.signup.views import enqueued
client = Client()
client.post("/signup", {"email": "kept@example.com", "first_name": "Kept"})
client.post("/signup", {"email": "rolled@example.com", "first_name": "Rolled", "fail": "1"})
SyncClient.for_process().close()
print(json.dumps(enqueued))
"""
    job_ids = json.loads(run_script(code, app_env))
    assert len(job_ids) == 1, job_ids
    assert queued_email(app_env, job_ids[0])["to"] == "kept@example.com"
