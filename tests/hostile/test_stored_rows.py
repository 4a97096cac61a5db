"""Every read path survives any row already stored: written before the input rules existed, or kept as
the dead letter of a foreign producer's refused job. Rows are written here in SQL, as text, the way no
current code path would write them: lone surrogates, 800 and 3000 levels of nesting, NaN.

The decision (envoi.validation, envoi.db.types): every JSON value read from the database goes through
`json_safe`. A lone surrogate reads as U+FFFD, NaN/Infinity as the strings "NaN"/"Infinity", nesting
deeper than 64 levels as a marker string; a value too deep for Python's parser reads as that marker.
Nothing is rewritten in the database: the row stays as it is, for whoever wants to repair it by hand.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from envoi.cli import app as cli
from envoi.db.models import FailedJob, Notification
from envoi.runtime import Envoi
from envoi.validation import TOO_DEEP_MARKER
from tests.api.conftest import ADMIN_TOKEN, Api
from tests.hostile.support import nested_text

USER = "u-stored"
SURROGATE = b'{"note": "half an emoji \\ud83d", "\\udc00key": ["\\ud800"]}'


def stored_values(dialect: str) -> dict[str, bytes]:
    values = {
        "surrogate": SURROGATE,
        "deep-800": nested_text(800),
        "deep-3000": nested_text(3000),
    }
    if dialect == "sqlite":  # PostgreSQL's json type refuses NaN and Infinity at the door
        values["nan"] = b'{"x": NaN, "y": [Infinity, -Infinity]}'
    return values


async def _set_json(envoi: Envoi, table: str, column: str, row_id: str, raw: bytes) -> None:
    value = "CAST(:raw AS json)" if envoi.db.dialect == "postgresql" else ":raw"
    statement = text(f'UPDATE {table} SET "{column}" = {value} WHERE id = :id')
    async with envoi.db.session() as session:
        result = await session.execute(statement, {"raw": raw.decode(), "id": row_id})
    assert result.rowcount == 1  # type: ignore[attr-defined]


async def seed(envoi: Envoi) -> tuple[dict[str, str], dict[str, str]]:
    """One notification and one dead letter per hostile value; their ids by kind."""
    notifications, failed = {}, {}
    for kind, raw in stored_values(envoi.db.dialect).items():
        async with envoi.db.session() as session:
            note = Notification(user_id=USER, title=f"t-{kind}", message="m", meta={})
            dead = FailedJob(
                queue_name="notifications",
                job_name="CREATE_INAPP_NOTIFICATION",
                job_id=f"job-{kind}",
                job_data={},
                job_options={"attempts": 5},
                error_message="Invalid data",
                stacktrace=["Traceback ..."],
                attempts_made=1,
            )
            session.add_all([note, dead])
        await _set_json(envoi, "notifications", "metadata", note.id, raw)
        await _set_json(
            envoi, "failed_jobs", "job_data", dead.id, b'{"userId": "u1", "metadata": ' + raw + b"}"
        )
        notifications[kind], failed[kind] = note.id, dead.id
    return notifications, failed


def _json(body: str) -> Any:
    return json.loads(body)


async def test_inbox_reads_every_stored_row(api: Api) -> None:
    notifications, _ = await seed(api.envoi)
    response = await api.client.get(f"/v1/users/{USER}/notifications", params={"limit": 100})
    assert response.status_code == 200, response.text
    by_title = {item["title"]: item["metadata"] for item in _json(response.text)["items"]}
    assert len(by_title) == len(notifications)
    assert by_title["t-surrogate"] == {"note": "half an emoji \ufffd", "\ufffdkey": ["\ufffd"]}
    assert TOO_DEEP_MARKER in json.dumps(by_title["t-deep-800"], ensure_ascii=False)
    assert by_title["t-deep-3000"] == {"value": TOO_DEEP_MARKER}
    if "nan" in notifications:
        assert by_title["t-nan"] == {"x": "NaN", "y": ["Infinity", "-Infinity"]}
    assert (await api.client.get(f"/v1/users/{USER}/notifications/unread-count")).json() == {
        "count": len(notifications)
    }
    assert (await api.client.post(f"/v1/users/{USER}/notifications/read-all")).status_code == 200


async def test_admin_api_and_page_read_every_stored_dead_letter(api: Api) -> None:
    _, failed = await seed(api.envoi)
    listed = await api.admin.get("/v1/admin/failed-jobs", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    assert {item["id"] for item in _json(listed.text)["items"]} == set(failed.values())
    for kind, row_id in failed.items():
        shown = await api.admin.get(f"/v1/admin/failed-jobs/{row_id}")
        assert shown.status_code == 200, (kind, shown.text)
    surrogate = _json((await api.admin.get(f"/v1/admin/failed-jobs/{failed['surrogate']}")).text)
    assert surrogate["jobData"]["metadata"]["note"] == "half an emoji \ufffd"
    login = await api.anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
    page = await api.anonymous.get("/admin", cookies={"envoi_admin": login.cookies["envoi_admin"]})
    assert page.status_code == 200 and 'id="dead-letters"' in page.text
    # A retry of data that breaks the rules is refused at the call, naming the field; the row stays FAILED.
    retried = await api.admin.post(f"/v1/admin/failed-jobs/{failed['deep-800']}/retry")
    assert retried.status_code == 422, retried.text
    assert any(error["path"] == "metadata" for error in retried.json()["errors"])
    still = _json((await api.admin.get(f"/v1/admin/failed-jobs/{failed['deep-800']}")).text)
    assert still["status"] == "FAILED"


@pytest.mark.parametrize(
    "args", [["list", "--json"], ["list"], ["list", "--json", "--reveal"], ["stats", "--json"]]
)
async def test_dlq_cli_reads_every_stored_dead_letter(api: Api, args: list[str]) -> None:
    _, failed = await seed(api.envoi)
    env = {"DATABASE_URL": api.envoi.settings.database_url, "LOG_LEVEL": "WARNING", "COLUMNS": "200"}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["dlq", *args], env=env)
    assert result.exit_code == 0, result.output
    if args[:2] == ["list", "--json"]:
        assert {item["id"] for item in json.loads(result.stdout)["items"]} == set(failed.values())
    for row_id in failed.values():
        shown = await asyncio.to_thread(CliRunner().invoke, cli, ["dlq", "show", row_id, "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        json.loads(shown.stdout)
