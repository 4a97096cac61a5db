"""The admin API of outbound webhooks: endpoints, their attempts, test events and replays.

The secret is in two answers only: creation (201) and rotation (200). A URL that is not https, or whose
host resolves to a refused address, is a 422 naming `url` (docs/webhooks.md, "Safety").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from fastapi.responses import JSONResponse

from envoi.api.deps import Admin, EnvoiDep
from envoi.api.errors import invalid
from envoi.api.schemas import (
    Problem,
    ValidationProblem,
    WebhookAttemptItem,
    WebhookAttemptList,
    WebhookEndpointCreate,
    WebhookEndpointItem,
    WebhookEndpointList,
    WebhookEndpointSecret,
    WebhookEndpointUpdate,
    WebhookEventQueued,
)
from envoi.db.models import WebhookEndpoint
from envoi.webhooks.service import (
    ATTEMPTS_MAX_LIMIT,
    EndpointDisabledError,
    EndpointNotFoundError,
    EndpointSecret,
    EventNotFoundError,
    InvalidEndpointError,
    WebhookEndpointService,
)

router = APIRouter(prefix="/v1/admin/webhook-endpoints", tags=["webhooks"], dependencies=[Admin])

EndpointId = Annotated[str, Path(alias="id", min_length=1, max_length=64)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such endpoint"}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationProblem, "description": "A bad url (not https, refused address) or event"}
}
DISABLED: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The endpoint is disabled"}
}


async def get_service(envoi: EnvoiDep) -> WebhookEndpointService:
    return envoi.webhooks


ServiceDep = Annotated[WebhookEndpointService, Depends(get_service)]


def _not_found(exc: EndpointNotFoundError | EventNotFoundError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))


def _invalid(exc: InvalidEndpointError) -> JSONResponse:
    return invalid({"in": "body", "path": path, "reason": reason} for path, reason in exc.fields.items())


def _item(endpoint: WebhookEndpoint) -> WebhookEndpointItem:
    return WebhookEndpointItem.model_validate(endpoint, from_attributes=True)


def _secret(created: EndpointSecret) -> WebhookEndpointSecret:
    return WebhookEndpointSecret(id=created.id, secret=created.secret)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookEndpointSecret, responses=INVALID)
async def create_endpoint(
    body: WebhookEndpointCreate, service: ServiceDep
) -> WebhookEndpointSecret | JSONResponse:
    """The answer carries the signing secret, once: it is never shown again."""
    try:
        created = await service.create(
            url=body.url, events=[event.value for event in body.events], description=body.description
        )
    except InvalidEndpointError as exc:
        return _invalid(exc)
    return _secret(created)


@router.get("", response_model=WebhookEndpointList)
async def list_endpoints(service: ServiceDep) -> WebhookEndpointList:
    return WebhookEndpointList(items=[_item(endpoint) for endpoint in await service.list()])


@router.get("/{id}", response_model=WebhookEndpointItem, responses=NOT_FOUND)
async def get_endpoint(endpoint_id: EndpointId, service: ServiceDep) -> WebhookEndpointItem:
    try:
        return _item(await service.get(endpoint_id))
    except EndpointNotFoundError as exc:
        raise _not_found(exc) from None


@router.patch("/{id}", response_model=WebhookEndpointItem, responses={**NOT_FOUND, **INVALID})
async def update_endpoint(
    endpoint_id: EndpointId, body: WebhookEndpointUpdate, service: ServiceDep
) -> WebhookEndpointItem | JSONResponse:
    """Change the fields given. `enabled: true` also forgets why it was disabled and its failure streak."""
    try:
        endpoint = await service.update(
            endpoint_id,
            url=body.url,
            events=[event.value for event in body.events] if body.events is not None else None,
            enabled=body.enabled,
            description=body.description,
        )
    except EndpointNotFoundError as exc:
        raise _not_found(exc) from None
    except InvalidEndpointError as exc:
        return _invalid(exc)
    return _item(endpoint)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_endpoint(endpoint_id: EndpointId, service: ServiceDep) -> Response:
    if not await service.delete(endpoint_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No webhook endpoint with id {endpoint_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{id}/rotate-secret", response_model=WebhookEndpointSecret, responses=NOT_FOUND)
async def rotate_secret(endpoint_id: EndpointId, service: ServiceDep) -> WebhookEndpointSecret:
    """A new secret, shown once. The old one keeps signing beside it for 24 hours."""
    try:
        return _secret(await service.rotate_secret(endpoint_id))
    except EndpointNotFoundError as exc:
        raise _not_found(exc) from None


@router.get("/{id}/attempts", response_model=WebhookAttemptList, responses=NOT_FOUND)
async def list_attempts(
    endpoint_id: EndpointId,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=ATTEMPTS_MAX_LIMIT)] = 20,
) -> WebhookAttemptList:
    """The latest delivery attempts, newest first."""
    try:
        attempts = await service.attempts(endpoint_id, limit=limit)
    except EndpointNotFoundError as exc:
        raise _not_found(exc) from None
    return WebhookAttemptList(
        items=[WebhookAttemptItem.model_validate(a, from_attributes=True) for a in attempts]
    )


@router.post(
    "/{id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookEventQueued,
    responses={**NOT_FOUND, **DISABLED},
)
async def send_test_event(endpoint_id: EndpointId, service: ServiceDep) -> WebhookEventQueued:
    """Queue a `webhook.test` event to this endpoint (whatever it subscribes to)."""
    try:
        published = await service.send_test(endpoint_id)
    except EndpointNotFoundError as exc:
        raise _not_found(exc) from None
    except EndpointDisabledError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return WebhookEventQueued(event_id=published.event_id, job_ids=published.job_ids)


@router.post(
    "/{id}/replay/{eventId}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookEventQueued,
    responses={404: {"model": Problem, "description": "No such endpoint or event"}, **DISABLED},
)
async def replay_event(
    endpoint_id: EndpointId,
    event_id: Annotated[str, Path(alias="eventId", min_length=1, max_length=64)],
    service: ServiceDep,
) -> WebhookEventQueued:
    """Queue one stored event to this endpoint again, with its `webhook-id` and fresh attempts."""
    try:
        result = await service.replay(endpoint_id, event_id)
    except (EndpointNotFoundError, EventNotFoundError) as exc:
        raise _not_found(exc) from None
    except EndpointDisabledError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return WebhookEventQueued(event_id=event_id, job_ids=[result.job_id])
