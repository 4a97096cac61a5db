"""Message categories: what a recipient may turn off, and what quiet hours may delay.

    transactional   verification, invitation, appointment confirmation, reminders and follow-up,
                    the in-app digest: always sent, never delayed (the default of a raw job)
    marketing       abandon recovery, and any raw job whose data says `"category": "marketing"`:
                    sent only while the recipient has not opted out, delayed out of quiet hours,
                    and every such email carries the one-click unsubscribe headers

A job's category is its data's `category` when it has one, else its flow's (`metadata.templateKey`)
in `FLOW_CATEGORIES`, else transactional: a producer that says nothing keeps today's behaviour.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FLOW_CATEGORIES", "Category", "category_of"]


class Category(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


#: envoi's flows by their template key (`metadata.templateKey`), and what each one is.
FLOW_CATEGORIES: dict[str, Category] = {
    "verification": Category.TRANSACTIONAL,
    "invitation": Category.TRANSACTIONAL,
    "appointment_confirmation": Category.TRANSACTIONAL,
    "appointment_confirmation_sms": Category.TRANSACTIONAL,
    "appointment_confirmation_whatsapp": Category.TRANSACTIONAL,
    "appointment_followup_whatsapp": Category.TRANSACTIONAL,
    "reminder_day": Category.TRANSACTIONAL,
    "reminder_day_sms": Category.TRANSACTIONAL,
    "reminder_hour": Category.TRANSACTIONAL,
    "reminder_hour_sms": Category.TRANSACTIONAL,
    "inbox_digest": Category.TRANSACTIONAL,
    "abandon_recovery": Category.MARKETING,
}


def category_of(explicit: str | None, flow: str | None) -> Category:
    """The job's own `category` first, then its flow's, then transactional."""
    if explicit:
        return Category(explicit)
    return FLOW_CATEGORIES.get(flow or "", Category.TRANSACTIONAL)
