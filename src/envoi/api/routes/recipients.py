"""A recipient's preferences: `GET/PUT /v1/recipients/{recipient}/preferences` (`PreferencesService`).

`{recipient}` is an email address, a phone number with its `+` (`%2B` in a URL), or a user id
(`envoi.recipients.identity`); anything else is a 422 naming `recipient`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from envoi.api.deps import ApiKey, EnvoiDep
from envoi.api.errors import invalid
from envoi.api.recipient_schemas import PreferenceOut, PreferencesUpdate, RecipientPreferencesOut
from envoi.api.schemas import ValidationProblem
from envoi.recipients import UNSET, InvalidPreferencesError, Preference, PreferencesService
from envoi.recipients.service import RecipientPreferences

router = APIRouter(prefix="/v1/recipients", tags=["recipients"], dependencies=[ApiKey])

Recipient = Annotated[str, Path(min_length=1, max_length=400)]
RESPONSES: dict[int | str, dict[str, Any]] = {422: {"model": ValidationProblem}}


async def get_preferences(envoi: EnvoiDep) -> PreferencesService:
    return envoi.preferences


PreferencesDep = Annotated[PreferencesService, Depends(get_preferences)]


def _answer(stored: RecipientPreferences) -> RecipientPreferencesOut:
    return RecipientPreferencesOut(
        recipient=stored.recipient,
        preferences=[
            PreferenceOut(
                channel=p.channel,
                category=p.category,
                enabled=p.enabled,
                source=p.source,
                updated_at=p.updated_at,
            )
            for p in stored.preferences
        ],
        quiet_hours=stored.quiet_hours,
        timezone=stored.timezone,
        email=stored.email,
    )


def _invalid(exc: InvalidPreferencesError) -> JSONResponse:
    return invalid(
        {"in": "path" if path == "recipient" else "body", "path": path, "reason": reason}
        for path, reason in exc.fields.items()
    )


@router.get("/{recipient}/preferences", response_model=RecipientPreferencesOut, responses=RESPONSES)
async def read_preferences(
    recipient: Recipient, service: PreferencesDep
) -> RecipientPreferencesOut | JSONResponse:
    try:
        return _answer(await service.get(recipient))
    except InvalidPreferencesError as exc:
        return _invalid(exc)


@router.put("/{recipient}/preferences", response_model=RecipientPreferencesOut, responses=RESPONSES)
async def write_preferences(
    recipient: Recipient, body: PreferencesUpdate, service: PreferencesDep
) -> RecipientPreferencesOut | JSONResponse:
    """Sets the entries listed (others unchanged) and the settings present in the body."""
    given = body.model_fields_set
    try:
        stored = await service.update(
            recipient,
            [Preference(p.channel, p.category, p.enabled, "api") for p in body.preferences],
            quiet_hours=body.quiet_hours if "quiet_hours" in given else UNSET,
            timezone=body.timezone if "timezone" in given else UNSET,
            email=str(body.email) if body.email else (None if "email" in given else UNSET),
        )
    except InvalidPreferencesError as exc:
        return _invalid(exc)
    return _answer(stored)
