"""`RecipientPolicy`: what the worker asks just before a message leaves (not at enqueue: the recipient
may change their mind while the job waits).

    decide(channel, category, recipients, timezone)
        transactional                       -> send (never turned off, never delayed; no query)
        marketing, opted out                -> suppressed (ledger SUPPRESSED, `message.suppressed`)
        marketing, inside quiet hours       -> deferred to the window's end (bullmq's delayed set)
        otherwise                           -> send

`recipients` are the message's address first, then the user id its metadata names: an opt-out under
either stops it. Quiet hours are the recipient's own (`recipient_settings.quiet_hours`) when set, else
QUIET_HOURS, counted in the job's `timezone`, else the recipient's, else DEFAULT_TIMEZONE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from envoi.quiet_hours import QuietHours
from envoi.recipients.categories import Category
from envoi.recipients.service import PreferencesService
from envoi.recipients.tokens import UnsubscribeTokens

__all__ = ["Decision", "RecipientPolicy"]

#: RFC 8058: the POST body a mail client sends to the List-Unsubscribe URL.
ONE_CLICK = "List-Unsubscribe=One-Click"
UNSUBSCRIBE_PATH = "/v1/unsubscribe/"


@dataclass(frozen=True, slots=True)
class Decision:
    #: Why the message must not leave (stored in the ledger row), None when it may.
    suppressed: str | None = None
    #: When it may leave (the end of the quiet hours), None for now.
    defer_until: datetime | None = None


SEND = Decision()


class RecipientPolicy:
    def __init__(
        self,
        *,
        preferences: PreferencesService,
        quiet_hours: QuietHours | None,
        default_timezone: str,
        tokens: UnsubscribeTokens | None,
        api_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.preferences = preferences
        self.quiet_hours = quiet_hours
        self.default_timezone = default_timezone
        self.tokens = tokens
        self.api_url = api_url.rstrip("/")
        self.clock = clock

    async def decide(
        self, *, channel: str, category: Category, recipients: Sequence[str], timezone: str | None
    ) -> Decision:
        if category is not Category.MARKETING:
            return SEND
        found = await self.preferences.lookup(recipients, channel, category)
        if found.opted_out is not None:
            by = "address" if found.opted_out == found.keys[0] else "user id"
            return Decision(suppressed=f"the recipient opted out of {category} {channel} (by {by})")
        window = QuietHours.parse(found.quiet_hours) if found.quiet_hours is not None else self.quiet_hours
        if window is None:
            return SEND
        zone = timezone or found.timezone or self.default_timezone
        end = window.end_if_inside(self.clock(), zone)
        return Decision(defer_until=end) if end else SEND

    def unsubscribe_url(self, recipient: str, category: Category = Category.MARKETING) -> str | None:
        """The one-click link for `recipient`, None when UNSUBSCRIBE_SECRET is unset."""
        if self.tokens is None:
            return None
        return f"{self.api_url}{UNSUBSCRIBE_PATH}{self.tokens.make(recipient.lower(), category)}"

    def email_headers(self, recipient: str, category: Category) -> tuple[tuple[str, str], ...]:
        """RFC 8058's two headers for a marketing email; none for a transactional one."""
        url = self.unsubscribe_url(recipient, category) if category is Category.MARKETING else None
        if url is None:
            return ()
        return (("List-Unsubscribe", f"<{url}>"), ("List-Unsubscribe-Post", ONE_CLICK))
