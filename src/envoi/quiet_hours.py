"""Quiet hours: a daily window, in the recipient's local time, when marketing messages wait.

    QuietHours.parse("21:00-08:00")     from 21:00 to 08:00 the next morning (a window may cross midnight)
    QuietHours.parse("")                 none (QUIET_HOURS's default)
    window.end_if_inside(now, "Europe/Paris")   the aware UTC instant the window ends, or None

The start is inside the window, the end is not. The end is computed as a local wall-clock time and
converted back to UTC with the zone's rules, so a window across a daylight-saving change ends at 08:00
local time all the same (a 08:00 that does not exist that day resolves as zoneinfo does, `fold=0`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

__all__ = ["QUIET_HOURS_REASON", "QuietHours", "iana_zone"]

_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
#: What a refused value is told.
QUIET_HOURS_REASON = "must be HH:MM-HH:MM in 24-hour time (e.g. 21:00-08:00), or empty for none"


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def iana_zone(value: str) -> str:
    """`value` when it names an IANA time zone; ValueError otherwise."""
    # A set lookup, not ZoneInfo(value): ZoneInfo opens a file named after the value, and a long
    # or odd name then fails with OSError instead of ZoneInfoNotFoundError.
    if value not in _zones():
        raise ValueError(f"unknown time zone {value[:64]!r} (expected an IANA name such as Europe/Paris)")
    return value


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """None for an empty value (no quiet hours); ValueError for anything but `HH:MM-HH:MM`."""
        text = text.strip()
        if not text:
            return None
        match = _WINDOW.match(text)
        if match is None:
            raise ValueError(QUIET_HOURS_REASON)
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if (h1, m1) == (h2, m2):
            raise ValueError("start and end must differ (a window of no length, or of a whole day?)")
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_if_inside(self, now: datetime, zone: str) -> datetime | None:
        """When the window `now` falls in ends (UTC), or None when `now` is outside it."""
        tz = ZoneInfo(zone)
        local = now.astimezone(tz)
        wall = local.time().replace(tzinfo=None)
        if not self.contains(wall):
            return None
        day = local.date() if wall < self.end else local.date() + timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=tz).astimezone(UTC)
