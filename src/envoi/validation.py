"""One rule for what envoi stores and returns, and the safe copy every read path hands out.

`CleanInput` is the base of every model that takes outside input (job data, API bodies, the
appointment). A field fails validation, with its name, when a string in it (a key or a value, at any
depth):

- contains U+0000: PostgreSQL cannot store it in a text column, SMTP and Twilio have no use for it;
- is not valid Unicode: a lone UTF-16 surrogate (half an emoji, as JavaScript's `slice()` leaves it)
  cannot be encoded as UTF-8, so every response, log line or CLI output carrying it would fail;

or when a number in it is one JSON cannot carry between envoi and a JavaScript reader (Node producers,
the admin page): NaN, ±Infinity (`1e999` parses as infinity), an integer beyond ±(2**53 - 1) (I-JSON,
RFC 7493: JavaScript rounds it silently); or when it nests more than MAX_DEPTH (32) levels.

Sizes are settings (MAX_METADATA_BYTES, MAX_JOB_DATA_BYTES): `check_sizes` applies them in
`QueueService` (every enqueue, inline included) and in the worker (any producer's job), since a model
does not know the settings.

Rows stored before these rules, or a foreign producer's refused job kept as a dead letter, may break any
of them. `json_safe` returns a copy that every encoder can write (lone surrogates become U+FFFD,
non-finite numbers their name as a string, anything nested deeper than READ_DEPTH a marker string);
the database layer applies it to every JSON value it writes and reads (`envoi.db.types`), so the inbox,
the dead letters, the admin page and `envoi dlq … --json` always have something they can encode.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, field_validator, model_validator

from envoi.errors import InvalidJobDataError

__all__ = [
    "MAX_BODY_DEPTH",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "NUL",
    "NUL_REASON",
    "READ_DEPTH",
    "TOO_DEEP_MARKER",
    "CleanInput",
    "check_sizes",
    "json_depth_exceeds",
    "json_safe",
    "problem",
    "single_line",
    "valid_text",
]

NUL = "\x00"
NUL_REASON = "must not contain NUL (U+0000) characters"
SURROGATE_REASON = "must be valid Unicode (a lone UTF-16 surrogate was found)"
NOT_FINITE_REASON = "must be a finite number (NaN and Infinity cannot be carried in JSON)"
#: Levels of nesting a field's value may have (`{"a": {"b": 1}}` has two).
MAX_DEPTH = 32
TOO_DEEP_REASON = f"must not nest more than {MAX_DEPTH} levels"
#: The largest integer a JavaScript reader holds exactly (Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1
BIG_INTEGER_REASON = f"integers must be between -{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}"
#: A request body nesting deeper than this is refused before it is parsed (`envoi.api.middleware`):
#: no field may nest more than MAX_DEPTH anyway, and parsers recurse once per level.
MAX_BODY_DEPTH = 64
#: What `json_safe` keeps: deeper than any value the rules above let in, shallow enough for every
#: recursive reader after it (masking, pydantic's serializer, which stops at 255).
READ_DEPTH = 64
TOO_DEEP_MARKER = f"[nested deeper than {READ_DEPTH} levels: not shown]"
REPLACEMENT = "\ufffd"

#: Any surrogate code point left in a Python str is unpaired: json.loads joins valid pairs.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: A path segment shown as is; anything else (control characters, surrogates, quotes) is escaped.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.$@ -]{1,64}$")


def _text_problem(text: str) -> str | None:
    if NUL in text:
        return NUL_REASON
    if _SURROGATE.search(text):
        return SURROGATE_REASON
    return None


def _segment(key: object) -> str:
    if isinstance(key, int):
        return str(key)
    text = str(key)
    return text if _PLAIN_KEY.match(text) else ascii(text[:64])


def _join(path: str, key: object) -> str:
    segment = _segment(key)
    return f"{path}.{segment}" if path else segment


def problem(value: Any, *, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """The first (sub-path, reason) by which `value` breaks the rule, or None.

    Walks at most MAX_DEPTH levels, so it never recurses deeper than that whatever it is given."""
    if isinstance(value, str):
        reason = _text_problem(value)
        return (path, reason) if reason else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, NOT_FINITE_REASON)
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INTEGER else (path, BIG_INTEGER_REASON)
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            return (path, TOO_DEEP_REASON)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            where = _join(path, key)
            if isinstance(key, str) and (reason := _text_problem(key)):
                return (where, reason)
            found = problem(item, path=where, depth=depth + 1)
            if found:
                return found
    return None


def _refuse(found: tuple[str, str]) -> None:
    where, reason = found
    raise ValueError(f"{reason} (at {where})" if where else reason)


class CleanInput(BaseModel):
    """Base class: a value that breaks the rule (see the module docstring) fails its field's validation."""

    @field_validator("*", mode="after")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        found = problem(value)
        if found:
            _refuse(found)
        return value

    @model_validator(mode="after")
    def _clean_extras(self) -> CleanInput:
        # Keys a model keeps without declaring them (job metadata) are not fields: checked here.
        extras = self.model_extra or {}
        if extras:
            found = problem(extras)
            if found:
                _refuse(found)
        return self


#: The name this base had when it refused NUL only; the job models still import it under that name.


#: Every character `str.splitlines()` breaks on: a header value holding one would start a second header.
_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
SINGLE_LINE_REASON = "must be a single line (no CR, LF or other line break)"


def single_line(value: str) -> str:
    """For values that become MIME headers (an email's subject, an attachment's name and type): a line
    break is refused by validation, a permanent error, rather than by the mail library at every attempt."""
    if _LINE_BREAK.search(value):
        raise ValueError(SINGLE_LINE_REASON)
    return value


def valid_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (the text itself when it has none)."""
    return _SURROGATE.sub(REPLACEMENT, text) if _SURROGATE.search(text) else text


def json_safe(value: Any, *, max_depth: int = READ_DEPTH, _depth: int = 0) -> Any:
    """A copy of a JSON value that any encoder can write: see the module docstring."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict | list | tuple):
        if _depth >= max_depth:
            return TOO_DEEP_MARKER
        if isinstance(value, dict):
            return {
                valid_text(str(key)): json_safe(item, max_depth=max_depth, _depth=_depth + 1)
                for key, item in value.items()
            }
        return [json_safe(item, max_depth=max_depth, _depth=_depth + 1) for item in value]
    return value


#: A JSON string (with its escapes), or one bracket. An unterminated string runs to the end of the body
#: (the parser refuses it later): matching it anew from each quote inside it would be quadratic.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether JSON text nests more than `limit` levels, found without parsing it (a parser recurses
    once per level: Python's raises RecursionError near 1000, pydantic stops at 255)."""
    # Most bodies have fewer brackets than the limit: nothing to scan.
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


#: Built once: `json.dumps` with any argument builds a new encoder on every call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encoded_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON; -1 when it nests too deep, -2 when it holds NaN or
    Infinity (bullmq encodes with allow_nan=False: refused here, the caller learns which item)."""
    try:
        text = _COMPACT.encode(value)
    except RecursionError:
        return -1
    except ValueError as exc:
        return -2 if "Out of range float" in str(exc) else -1
    return len(text.encode("utf-8", "surrogatepass"))


def check_sizes(job_name: str, data: Any, *, max_data_bytes: int, max_metadata_bytes: int) -> None:
    """`InvalidJobDataError` when the job's data, or its `metadata`, is larger (as compact UTF-8 JSON)
    than the limit: a permanent error for a producer, a 422 at the API.

    The data is encoded once: `metadata` is encoded again only when the whole data is larger than the
    metadata limit, since its compact encoding is a part of the data's (bench/enqueue.py)."""
    size = _encoded_size(data)
    if size == -2:
        raise InvalidJobDataError(job_name, {"data": NOT_FINITE_REASON})
    if size < 0:
        raise InvalidJobDataError(job_name, {"data": TOO_DEEP_REASON})
    if size > max_data_bytes:
        raise InvalidJobDataError(job_name, {"data": f"must be at most {max_data_bytes} bytes as JSON"})
    if size <= max_metadata_bytes:
        return
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if metadata is not None and _encoded_size(metadata) > max_metadata_bytes:
        raise InvalidJobDataError(
            job_name, {"metadata": f"must be at most {max_metadata_bytes} bytes as JSON"}
        )
