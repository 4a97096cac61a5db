"""Enqueue after the transaction commits: a sign-up that rolls back sends no email."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from envoi import SyncClient

#: What the last committed sign-up enqueued (the example's test reads it).
enqueued: list[str] = []


def _send_code(email: str, first_name: str) -> None:
    code = f"{secrets.randbelow(10**6):06d}"
    # `for_process()`: one client per worker process, made after gunicorn's fork, never in the master.
    [result] = SyncClient.for_process().notifications.send_verification_email(
        email=email, first_name=first_name, verification_token=code
    )
    enqueued.append(result.job_id)


@csrf_exempt
@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    email, first_name = request.POST["email"], request.POST["first_name"]
    with transaction.atomic():
        # ... create the user here ...
        transaction.on_commit(lambda: _send_code(email, first_name))
        if request.POST.get("fail"):
            transaction.set_rollback(True)
    return JsonResponse({"accepted": not request.POST.get("fail")}, status=202)
