"""A Flask app that sends its verification emails through envoi's `SyncClient`.

flask --app examples.flask_app.app run      # and `envoi worker` beside it
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, request

from envoi import SyncClient


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/signup")
    def signup() -> tuple[dict[str, Any], int]:
        code = f"{secrets.randbelow(10**6):06d}"
        [result] = SyncClient.for_process().notifications.send_verification_email(
            email=request.form["email"], first_name=request.form["first_name"], verification_token=code
        )
        return {"jobId": result.job_id, "mode": result.mode}, 202

    return app
