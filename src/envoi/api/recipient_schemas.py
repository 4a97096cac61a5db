"""The bodies of `/v1/recipients/{recipient}/preferences` (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from envoi.addresses import EmailAddress
from envoi.api.schemas import Body, Camel
from envoi.notifications.jobs import CategoryName, TimeZoneName

#: `envoi.recipients.service.CHANNEL_NAMES`, spelled out so the OpenAPI schema lists them.
ChannelLiteral = Literal["email", "sms", "whatsapp"]


class PreferenceIn(Body):
    channel: ChannelLiteral
    category: CategoryName
    #: False turns the (channel, category) off; transactional cannot be turned off (422).
    enabled: bool


class PreferencesUpdate(Body):
    """Sets the entries listed, leaves the others as they are. `quietHours`, `timezone` and `email`
    change only when present; `null` clears one (the settings' default applies again)."""

    preferences: list[PreferenceIn] = Field(default_factory=list, max_length=16)
    #: `HH:MM-HH:MM` in the recipient's time zone; "" for none whatever QUIET_HOURS says.
    quiet_hours: str | None = Field(None, max_length=20)
    timezone: TimeZoneName | None = None
    #: For a user id: where the in-app digest goes (DIGEST_WINDOW).
    email: EmailAddress | None = None


class PreferenceOut(Camel):
    channel: str
    category: str
    enabled: bool
    #: `api`, `cli` or `unsubscribe` (the one-click link).
    source: str
    updated_at: datetime | None


class RecipientPreferencesOut(Camel):
    #: As stored: an email address lowercased, a phone number in E.164, or the user id.
    recipient: str
    #: Only what was set; a (channel, category) not listed is on.
    preferences: list[PreferenceOut]
    quiet_hours: str | None
    timezone: str | None
    email: str | None
