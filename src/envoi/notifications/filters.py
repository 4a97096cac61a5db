"""The Jinja2 filters every message template may use. Dates go through Babel in the recipient's `timezone`
and `locale` (both context variables); words follow the locale's grammar.

    {{ starts_at|date }}            mardi 3 mars 2026              Tuesday, March 3, 2026
    {{ starts_at|time }}            14:30                          2:30 PM
    {{ starts_at|zone }}            heure normale d'Europe         Central European Standard Time
                                    centrale
    {{ starts_at|utc_offset }}      UTC+1                          UTC+1      (ASCII: for SMS and subjects)
    {{ 15|duration("minute") }}     15 minutes                     15 minutes (also "hour", "day")
    {{ "admin"|role_label }}        administrateur                 administrator
    {{ "que"|elide("administrateur") }}  qu'administrateur         (French elision before a vowel)
    {{ "administrator"|indefinite }}                               an administrator
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.units import format_unit
from jinja2 import pass_context
from jinja2.runtime import Context

#: Roles as products name them, in each locale's words; a role not listed is printed as given.
ROLE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "admin": "administrateur",
        "administrator": "administrateur",
        "owner": "propriétaire",
        "member": "membre",
        "editor": "éditeur",
        "viewer": "lecteur",
        "guest": "invité",
        "billing": "responsable de la facturation",
    },
    "en": {
        "admin": "administrator",
        "administrator": "administrator",
        "owner": "owner",
        "member": "member",
        "editor": "editor",
        "viewer": "viewer",
        "guest": "guest",
        "billing": "billing manager",
    },
}
_VOWELS = "aeiouyàâäéèêëîïôöùûüœæ"
#: Words written with a vowel but said with a consonant: "a user", "a unit", "a one-off".
_CONSONANT_SOUNDS = ("uni", "use", "usu", "uti", "eu", "one", "once")


def _local(context: Context, value: datetime) -> datetime:
    return value.astimezone(ZoneInfo(context["timezone"]))


@pass_context
def date(context: Context, value: datetime, format: str = "full") -> str:
    return format_date(_local(context, value).date(), format, locale=context["locale"])


@pass_context
def time(context: Context, value: datetime, format: str = "short") -> str:
    return format_time(_local(context, value), format, locale=context["locale"])


@pass_context
def datetime_(context: Context, value: datetime, format: str = "medium") -> str:
    return format_datetime(_local(context, value), format, locale=context["locale"])


@pass_context
def zone(context: Context, value: datetime) -> str:
    """The zone's long name at that date, summer time included: the unambiguous one (Babel's generic
    names turn UTC into "Unknown Region (UTC) Time")."""
    return format_time(_local(context, value), "zzzz", locale=context["locale"])


@pass_context
def utc_offset(context: Context, value: datetime) -> str:
    """ "UTC+1", "UTC-5", "UTC+5:30", "UTC": short and in plain ASCII, for SMS and subjects."""
    offset = _local(context, value).utcoffset()
    minutes = round(offset.total_seconds() / 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


@pass_context
def duration(context: Context, value: int, unit: str = "minute") -> str:
    """`15|duration("minute")`: the number and its unit, plural as the locale wants it."""
    return str(format_unit(value, f"duration-{unit}", length="long", locale=context["locale"]))


@pass_context
def role_label(context: Context, role: str) -> str:
    return ROLE_LABELS.get(context["locale"], {}).get(role.strip().lower(), role)


def elide(word: str, following: str) -> str:
    """French elision: `"que"|elide("administrateur")` is "qu'administrateur", before "membre" it stays
    "que membre". Before an h it does not elide (mute or aspirated cannot be told from the spelling)."""
    if word.endswith(("e", "a")) and following[:1].lower() in _VOWELS:
        return f"{word[:-1]}'{following}"
    return f"{word} {following}"


def indefinite(noun: str) -> str:
    """English article: "an administrator", "a member", "a user"."""
    lowered = noun.lower()
    vowel_sound = lowered[:1] in "aeiou" and not lowered.startswith(_CONSONANT_SOUNDS)
    return f"{'an' if vowel_sound else 'a'} {noun}"


FILTERS: dict[str, Any] = {
    "date": date,
    "time": time,
    "datetime": datetime_,
    "zone": zone,
    "utc_offset": utc_offset,
    "duration": duration,
    "role_label": role_label,
    "elide": elide,
    "indefinite": indefinite,
}
