"""What recipients decide: categories, preferences (opt-outs), one-click unsubscribe tokens, and the
policy the worker applies at send time (docs/recipients.md). `recipient_preferences` and
`recipient_settings` are read and written here only (`service`)."""

from envoi.recipients.categories import FLOW_CATEGORIES, Category, category_of
from envoi.recipients.policy import Decision, RecipientPolicy
from envoi.recipients.service import (
    UNSET,
    InvalidPreferencesError,
    Preference,
    PreferencesService,
    RecipientPreferences,
)
from envoi.recipients.tokens import BadTokenError, ForgedTokenError, UnsubscribeToken, UnsubscribeTokens

__all__ = [
    "FLOW_CATEGORIES",
    "UNSET",
    "BadTokenError",
    "Category",
    "Decision",
    "ForgedTokenError",
    "InvalidPreferencesError",
    "Preference",
    "PreferencesService",
    "RecipientPolicy",
    "RecipientPreferences",
    "UnsubscribeToken",
    "UnsubscribeTokens",
    "category_of",
]
