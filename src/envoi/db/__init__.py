"""SQL storage: models, engine/session helpers and the Alembic migrations shipped in the package."""

from envoi.db.models import Base, FailedJob, MessageDelivery, Notification
from envoi.db.session import Database

__all__ = ["Base", "Database", "FailedJob", "MessageDelivery", "Notification"]
