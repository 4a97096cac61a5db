"""Provider webhooks. Authenticated by the provider's signature, not by the API key."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response, status

from envoi.api.auth import forbidden
from envoi.api.deps import EnvoiDep, LedgerDep, SettingsDep
from envoi.api.schemas import Problem
from envoi.api.twilio import signature_valid

log = logging.getLogger("envoi.api")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

STATUS_PATH = "/v1/webhooks/twilio/status"


@router.post(
    "/twilio/status",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"model": Problem, "description": "Missing or wrong X-Twilio-Signature"}},
    summary="Twilio message status callback (form-encoded)",
)
async def twilio_status(
    request: Request, ledger: LedgerDep, settings: SettingsDep, envoi: EnvoiDep
) -> Response:
    form = await request.form()
    params = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    signature = request.headers.get("x-twilio-signature", "")
    url = settings.api_url.rstrip("/") + STATUS_PATH
    if request.url.query:
        url += "?" + request.url.query
    token = settings.twilio_auth_token
    if (
        token is None
        or not signature
        or not signature_valid(token.get_secret_value(), url, params, signature)
    ):
        raise forbidden("Invalid Twilio signature")
    fields = dict(params)
    sid, message_status = fields.get("MessageSid"), fields.get("MessageStatus")
    if sid and message_status:
        changed = await ledger.apply_provider_status(
            provider_message_id=sid, status=message_status, error_code=fields.get("ErrorCode")
        )
        log.info("Twilio status %s for %s: %d ledger row(s) updated", message_status, sid, changed)
        if changed:
            await envoi.events.emit_delivery_status(sid)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
