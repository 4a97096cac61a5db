"""The development outbox for every channel: with SMS_PROVIDER/WHATSAPP_PROVIDER=console each message is a
file under OUTBOX_DIR, and a channel switched off is named in the API's answer instead of dropped silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from envoi.config import Settings, TextProvider, load_settings
from envoi.db.models import MessageDelivery
from envoi.errors import ConfigError
from tests.api.conftest import ADMIN_TOKEN, API_KEY, Api
from tests.api.test_flows import appointment


@pytest.fixture
def inline_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        return make_settings(
            queue_enabled=False, envoi_api_key=API_KEY, envoi_admin_token=ADMIN_TOKEN, **overrides
        )

    return factory


async def test_console_providers_write_sms_and_whatsapp_to_the_outbox(
    make_api: Callable[..., Any], inline_settings: Callable[..., Settings]
) -> None:
    settings = inline_settings(sms_provider="console", whatsapp_provider="console")
    assert settings.sms_enabled and settings.whatsapp_enabled  # the console provider turns them on
    api: Api = await make_api(settings)
    sms = await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": "Code 123456"})
    whatsapp = await api.client.post(
        "/v1/jobs/SEND_WHATSAPP", json={"to": "whatsapp:+33698765432", "message": "See you soon"}
    )
    assert sms.status_code == whatsapp.status_code == 202
    assert sms.json()["warnings"] == whatsapp.json()["warnings"] == []

    outbox = Path(settings.outbox_dir)
    [sms_file] = sorted(outbox.glob("*-sms-*.txt"))
    [whatsapp_file] = sorted(outbox.glob("*-whatsapp-*.txt"))
    assert sms_file.read_text().splitlines()[:2] == ["Channel: sms", "To: +33612345678"]
    assert sms_file.read_text().rstrip().endswith("Code 123456")
    assert "To: +33698765432" in whatsapp_file.read_text()

    # The ledger knows them as sent by the console provider: a second run would not write again.
    async with api.envoi.db.session() as session:
        rows = (await session.scalars(select(MessageDelivery))).all()
    assert sorted((row.channel, row.provider, row.status) for row in rows) == [
        ("sms", "console", "SENT"),
        ("whatsapp", "console", "SENT"),
    ]


async def test_a_disabled_channel_is_named_in_the_202(
    make_api: Callable[..., Any], inline_settings: Callable[..., Settings]
) -> None:
    api: Api = await make_api(inline_settings(sms_provider="console", sms_enabled=False))
    sms = await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": "hi"})
    assert sms.status_code == 202
    [warning] = sms.json()["warnings"]
    assert warning.startswith("sms: SMS_ENABLED=false")
    email = await api.client.post(
        "/v1/jobs/SEND_EMAIL", json={"to": "a@example.com", "subject": "s", "html": "h"}
    )
    assert email.json()["warnings"] == []

    confirmation = await api.client.post("/v1/flows/appointment-confirmation", json=appointment())
    assert [w.split(":")[0] for w in confirmation.json()["warnings"]] == ["sms", "whatsapp"]
    reminders = await api.client.put("/v1/appointments/apt-1/reminders", json=appointment())
    assert [w.split(":")[0] for w in reminders.json()["warnings"]] == ["sms"]
    no_phone = appointment(lead={"firstName": "J", "email": "j@example.com"})
    assert (await api.client.post("/v1/flows/appointment-confirmation", json=no_phone)).json()[
        "warnings"
    ] == []


def test_the_console_provider_needs_no_twilio_and_twilio_still_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_PROVIDER", "console")
    monkeypatch.setenv("WHATSAPP_PROVIDER", "console")
    settings = load_settings(_env_file=None)
    assert settings.sms_provider is TextProvider.CONSOLE and settings.sms_enabled
    monkeypatch.setenv("SMS_PROVIDER", "twilio")
    monkeypatch.setenv("SMS_ENABLED", "true")
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
        load_settings(_env_file=None)
    monkeypatch.setenv("SMS_PROVIDER", "carrier-pigeon")
    with pytest.raises(ConfigError, match="SMS_PROVIDER"):
        load_settings(_env_file=None)
