"""The Resend and SendGrid stand-ins behind one description, so one test can run against both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fixtures.email_api import JsonApiStandIn


@dataclass
class EmailApi:
    #: EMAIL_PROVIDER's value, and the ledger's `provider`.
    name: str
    server: JsonApiStandIn
    #: The setting holding the API key (`resend_api_key`).
    key_setting: str

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings overrides pointing envoi at the stand-in."""
        values = {
            "email_provider": self.name,
            self.key_setting: self.server.api_key,
            f"{self.name}_api_base_url": self.server.base_url,
            "email_api_timeout_s": 5,
        }
        values.update(overrides)
        return values

    def recipients(self, body: dict[str, Any]) -> list[str]:
        if self.name == "resend":
            to = body["to"]
            return [to] if isinstance(to, str) else list(to)
        return [r["email"] for p in body["personalizations"] for r in p["to"]]

    def attachments(self, body: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(filename, content type, base64 content) of each attachment, whatever the provider's names."""
        type_key = "content_type" if self.name == "resend" else "type"
        return [(a["filename"], a.get(type_key, ""), a["content"]) for a in body.get("attachments", [])]


def email_api(name: str, server: JsonApiStandIn) -> EmailApi:
    return EmailApi(name=name, server=server, key_setting=f"{name}_api_key")
