"""Admin page sessions and the sign-in throttle, both kept in SQL so that every API process agrees.

- `open()` makes a fresh random session value per sign-in (the cookie); only its SHA-256 is stored.
- `valid()` accepts a value whose row is not revoked, not expired, and was opened under the current
  ENVOI_ADMIN_TOKEN; it notes `last_seen_at` (at most once a minute: reading the page is not a write).
- `revoke()` ends one at logout: the same cookie, replayed, no longer works.
- `throttle()` lets ADMIN_LOGIN_MAX_ATTEMPTS sign-in attempts per client address through per
  ADMIN_LOGIN_WINDOW_S and answers how long to wait after that. Each attempt that goes through is a row;
  refused ones are not recorded, so the wait it announces is the true one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import delete, func, select, update

from envoi.config import Settings
from envoi.db.models import AdminLoginAttempt, AdminSession
from envoi.db.session import Database
from envoi.db.types import utcnow

_FINGERPRINT_LABEL = b"envoi-admin-session-v2"
#: `last_seen_at` is written when it is older than this.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def token_fingerprint(admin_token: SecretStr) -> str:
    return hmac.new(admin_token.get_secret_value().encode(), _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


class AdminSessions:
    def __init__(self, *, db: Database, settings: Settings) -> None:
        self.db = db
        self.max_age = timedelta(seconds=settings.admin_session_max_age_s)
        self.max_attempts = settings.admin_login_max_attempts
        self.window = timedelta(seconds=settings.admin_login_window_s)

    async def open(self, admin_token: SecretStr) -> str:
        """A new session; returns the cookie value. Expired rows are swept here, at sign-in."""
        value = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.session() as session:
            await session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
            session.add(
                AdminSession(
                    id_hash=_hash(value),
                    token_fingerprint=token_fingerprint(admin_token),
                    created_at=now,
                    expires_at=now + self.max_age,
                    last_seen_at=now,
                )
            )
        return value

    async def valid(self, value: str, admin_token: SecretStr) -> bool:
        now = utcnow()
        async with self.db.session() as session:
            row = await session.get(AdminSession, _hash(value))
            if (
                row is None
                or row.revoked_at is not None
                or row.expires_at <= now
                or not hmac.compare_digest(row.token_fingerprint, token_fingerprint(admin_token))
            ):
                return False
            if now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
                row.last_seen_at = now
        return True

    async def revoke(self, value: str) -> bool:
        async with self.db.session() as session:
            result = await session.execute(
                update(AdminSession)
                .where(AdminSession.id_hash == _hash(value), AdminSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return bool(getattr(result, "rowcount", 0))

    async def throttle(self, client: str) -> float | None:
        """None when this attempt may go on (it is counted); else the seconds to wait before the next."""
        now = utcnow()
        since = now - self.window
        attempt = AdminLoginAttempt(client=client[:64], attempted_at=now)
        async with self.db.session() as session:
            await session.execute(delete(AdminLoginAttempt).where(AdminLoginAttempt.attempted_at <= since))
            session.add(attempt)
            await session.flush()
            # Counted after the insert: two processes racing for the last slot both see it taken.
            window = (AdminLoginAttempt.client == attempt.client, AdminLoginAttempt.attempted_at > since)
            count = await session.scalar(select(func.count()).where(*window))
            if int(count or 0) <= self.max_attempts:
                return None
            await session.delete(attempt)
            oldest = await session.scalar(
                select(func.min(AdminLoginAttempt.attempted_at)).where(
                    *window, AdminLoginAttempt.id != attempt.id
                )
            )
        if oldest is None:
            return self.window.total_seconds()
        return max((oldest + self.window - now).total_seconds(), 1.0)
