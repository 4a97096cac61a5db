"""`PreferencesService`: what recipients decided, in SQL (`recipient_preferences`, `recipient_settings`;
this module is their only reader and writer).

A preference is one (recipient, channel, category) and whether it may be sent; no row means yes.
Transactional messages cannot be turned off (a verification code must arrive): `update` refuses it.
`update` sets the entries it is given and leaves the others as they are, so that a one-click unsubscribe
made meanwhile is not undone by a client writing back what it read before. The worker reads
`lookup()` at send time (`envoi.recipients.policy`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.models import RecipientPreference, RecipientSettings
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.errors import EnvoiError
from envoi.quiet_hours import QuietHours, iana_zone
from envoi.recipients.categories import Category
from envoi.recipients.identity import recipient_key

__all__ = [
    "UNSET",
    "InvalidPreferencesError",
    "Lookup",
    "Preference",
    "PreferencesService",
    "RecipientPreferences",
]

#: The channels a preference may name: `envoi.channels.base.ChannelName`'s values (that module is a
#: sibling this one does not import) but `inapp`: an inbox row interrupts nobody, so in-app
#: notifications are always created (the digest is what reaches the user, by email).
CHANNEL_NAMES = ("email", "sms", "whatsapp")
#: Sources a preference may come from (`recipient_preferences.source`).
SOURCES = ("api", "cli", "unsubscribe")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this setting as it is" (None clears it).
UNSET: Any = _Unset()


class InvalidPreferencesError(EnvoiError):
    """`fields` maps each bad field (`recipient`, `preferences.0.category`, `quietHours`) to the reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in fields.items()))
        self.fields = fields


@dataclass(frozen=True, slots=True)
class Preference:
    channel: str
    category: str
    enabled: bool
    source: str = "api"
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecipientPreferences:
    recipient: str
    preferences: list[Preference]
    #: None: QUIET_HOURS applies; "": none for this recipient.
    quiet_hours: str | None = None
    timezone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the worker needs of a message's recipients, in two queries."""

    #: The recipient key whose opt-out stops the message, None when none does.
    opted_out: str | None = None
    #: The first recipient's own settings, when it has any.
    quiet_hours: str | None = None
    timezone: str | None = None
    keys: tuple[str, ...] = field(default=())


def normalise(recipient: str) -> str:
    try:
        return recipient_key(recipient)
    except ValueError as exc:
        raise InvalidPreferencesError({"recipient": str(exc)}) from None


def check(entries: Sequence[Preference]) -> None:
    bad: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if entry.channel not in CHANNEL_NAMES:
            bad[f"preferences.{index}.channel"] = f"must be one of {', '.join(CHANNEL_NAMES)}"
        if entry.category not in tuple(Category):
            bad[f"preferences.{index}.category"] = f"must be one of {', '.join(Category)}"
        elif entry.category == Category.TRANSACTIONAL and not entry.enabled:
            bad[f"preferences.{index}.enabled"] = (
                "transactional messages (verification, invitation, appointments) cannot be turned off"
            )
        if entry.source not in SOURCES:
            bad[f"preferences.{index}.source"] = f"must be one of {', '.join(SOURCES)}"
    if bad:
        raise InvalidPreferencesError(bad)


def _settings_values(quiet_hours: Any, timezone: Any, email: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    bad: dict[str, str] = {}
    if quiet_hours is not UNSET:
        try:
            window = QuietHours.parse(quiet_hours) if quiet_hours is not None else None
            values["quiet_hours"] = None if quiet_hours is None else (str(window) if window else "")
        except ValueError as exc:
            bad["quietHours"] = str(exc)
    if timezone is not UNSET:
        try:
            values["timezone"] = iana_zone(timezone) if timezone is not None else None
        except ValueError as exc:
            bad["timezone"] = str(exc)
    if email is not UNSET:
        try:
            values["email"] = recipient_key(email) if email is not None else None
            if email is not None and "@" not in values["email"]:
                raise ValueError("must be an email address")
        except ValueError as exc:
            bad["email"] = str(exc)
    if bad:
        raise InvalidPreferencesError(bad)
    return values


class PreferencesService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, recipient: str) -> RecipientPreferences:
        key = normalise(recipient)
        async with self.db.session(bounded=True) as session:
            return await _read(session, key)

    async def update(
        self,
        recipient: str,
        preferences: Iterable[Preference] = (),
        *,
        quiet_hours: Any = UNSET,
        timezone: Any = UNSET,
        email: Any = UNSET,
    ) -> RecipientPreferences:
        """Set the given entries (others unchanged) and the settings given (None clears one); returns
        everything stored for the recipient. `InvalidPreferencesError` names each bad field."""
        key = normalise(recipient)
        entries = list(preferences)
        check(entries)
        values = _settings_values(quiet_hours, timezone, email)
        now = utcnow()
        async with self.db.session(bounded=True) as session:
            for entry in entries:
                row = await session.get(RecipientPreference, (key, entry.channel, entry.category))
                if row is None:
                    row = RecipientPreference(recipient=key, channel=entry.channel, category=entry.category)
                    session.add(row)
                row.enabled, row.source, row.updated_at = entry.enabled, entry.source, now
            if values:
                settings = await session.get(RecipientSettings, key)
                if settings is None:
                    settings = RecipientSettings(recipient=key)
                    session.add(settings)
                for name, value in values.items():
                    setattr(settings, name, value)
                settings.updated_at = now
            await session.flush()
            return await _read(session, key)

    async def opt_out(self, recipient: str, channel: str, category: Category, *, source: str) -> bool:
        """Turn one (channel, category) off; True when it was on. Idempotent."""
        before = await self.get(recipient)
        was_off = any(
            p.channel == channel and p.category == category and not p.enabled for p in before.preferences
        )
        if not was_off:
            await self.update(recipient, [Preference(channel, category, False, source)])
        return not was_off

    async def lookup(self, recipients: Sequence[str], channel: str, category: Category) -> Lookup:
        """For the worker: is any of `recipients` (the address, then the user id) opted out of
        (channel, category), and the first one's own quiet hours and time zone. Keys that are not valid
        recipients are skipped (a job's data was validated already)."""
        keys = tuple(dict.fromkeys(k for k in (_key_or_none(r) for r in recipients) if k))
        if not keys:
            return Lookup()
        async with self.db.session(bounded=True) as session:
            off = await session.scalars(
                select(RecipientPreference.recipient).where(
                    RecipientPreference.recipient.in_(keys),
                    RecipientPreference.channel == channel,
                    RecipientPreference.category == str(category),
                    RecipientPreference.enabled.is_(False),
                )
            )
            opted = set(off)
            own = await session.get(RecipientSettings, keys[0])
        return Lookup(
            opted_out=next((k for k in keys if k in opted), None),
            quiet_hours=own.quiet_hours if own else None,
            timezone=own.timezone if own else None,
            keys=keys,
        )

    async def digest_address(self, user_id: str) -> str | None:
        """Where a user's in-app digest goes (`email` of their settings), None for no digest."""
        key = _key_or_none(user_id)
        if key is None:
            return None
        async with self.db.session(bounded=True) as session:
            own = await session.get(RecipientSettings, key)
            return own.email if own else None


def _key_or_none(value: str) -> str | None:
    try:
        return recipient_key(value)
    except ValueError:
        return None


async def _read(session: AsyncSession, key: str) -> RecipientPreferences:
    rows = await session.scalars(
        select(RecipientPreference)
        .where(RecipientPreference.recipient == key)
        .order_by(RecipientPreference.channel, RecipientPreference.category)
    )
    preferences = [Preference(r.channel, r.category, r.enabled, r.source, r.updated_at) for r in rows]
    own = await session.get(RecipientSettings, key)
    return RecipientPreferences(
        recipient=key,
        preferences=preferences,
        quiet_hours=own.quiet_hours if own else None,
        timezone=own.timezone if own else None,
        email=own.email if own else None,
    )
