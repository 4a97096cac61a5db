"""One-click unsubscribe (RFC 8058) end to end: the header read from the email the SMTP sink received,
POSTed with no other credential, then the next marketing email to that address is SUPPRESSED while a
transactional one still leaves; a forged or altered token changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from envoi.db.models import DeliveryStatus
from envoi.recipients import Category, UnsubscribeTokens
from tests.api.conftest import API_URL, Api
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually
from tests.recipients.conftest import deliveries

LEAD = "lea@example.com"
RESUME = "https://app.example.com/forms/demo"


async def _recovery(api: Api, resume: str = RESUME, locale: str = "en") -> None:
    body = {"email": LEAD, "resumeUrl": resume, "locale": locale}
    answer = await api.client.post("/v1/flows/abandon-recovery", json=body)
    assert answer.status_code == 202, answer.text


async def _preferences(api: Api, recipient: str = LEAD) -> list[dict[str, object]]:
    answer = await api.client.get(f"/v1/recipients/{recipient}/preferences")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["preferences"])


async def test_the_header_unsubscribes_then_marketing_is_suppressed_and_transactional_still_goes(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    api = await start_api()
    await _recovery(api)
    [first] = await eventually(lambda: smtp_sink.messages, message="the recovery email")
    header = first.message["List-Unsubscribe"]
    assert first.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header.startswith(f"<{API_URL}/v1/unsubscribe/") and header.endswith(">")
    url = header[1:-1]
    # The footer links to it too, in the email's language.
    assert first.text is not None and f"Unsubscribe from these emails: {url}?lang=en" in first.text
    assert first.html is not None and "Unsubscribe from these emails</a>" in first.html
    path = urlsplit(url).path

    # A link scanner's GET shows the button and changes nothing.
    page = await api.anonymous.get(path)
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "lea@example.com" not in page.text, "the page shows the address masked"
    assert await _preferences(api) == []

    # The mail client's POST, with the token as its only credential; again: the same answer.
    for _ in range(2):
        done = await api.anonymous.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
    [preference] = await _preferences(api)
    assert preference | {"updatedAt": None} == {
        "channel": "email",
        "category": "marketing",
        "enabled": False,
        "source": "unsubscribe",
        "updatedAt": None,
    }

    await _recovery(api, resume=f"{RESUME}?again=1")

    async def suppressed() -> list[str]:
        rows = await deliveries(api.envoi, LEAD)
        return [r.error_message or "" for r in rows if r.status == DeliveryStatus.SUPPRESSED]

    [reason] = await eventually(suppressed, message="the second recovery email SUPPRESSED")
    assert "opted out of marketing email" in reason

    verification = {"email": LEAD, "firstName": "Léa", "verificationToken": "123456", "locale": "en"}
    answer = await api.client.post("/v1/flows/verification-email", json=verification)
    assert answer.status_code == 202
    messages = await eventually(
        lambda: smtp_sink.messages if len(smtp_sink.messages) == 2 else [], message="the verification"
    )
    assert "123456" in (messages[1].text or "")
    assert messages[1].message["List-Unsubscribe"] is None, "transactional: no unsubscribe header"
    assert len(smtp_sink.messages) == 2


async def test_a_forged_or_altered_token_is_refused_and_changes_nothing(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await start_api(worker=False)
    tokens = api.envoi.unsubscribe_tokens
    assert tokens is not None
    good = tokens.make(LEAD, Category.MARKETING)
    payload, signature = good.split(".")
    other = tokens.make("other@example.com", Category.MARKETING).split(".")[0]
    altered_signature = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    forged = UnsubscribeTokens(b"another-secret-another-secret-0123456789").make(LEAD, Category.MARKETING)
    refused = {
        f"{payload}.{altered_signature}": 404,  # one character of the signature
        f"{other}.{signature}": 404,  # another recipient's payload under this signature
        forged: 404,  # signed with another secret
        "not-a-token": 400,
        f"{payload}.{signature}.x": 400,
        "é" * 10 + "." + signature: 400,
        "a" * 2000 + "." + signature: 400,
    }
    for token, status in refused.items():
        for method in ("GET", "POST"):
            answer = await api.anonymous.request(method, f"/v1/unsubscribe/{token}")
            assert answer.status_code == status, (token[:40], method, answer.status_code)
            assert "pas valide" in answer.text, "DEFAULT_LOCALE is fr"
    assert await _preferences(api) == []
    assert await _preferences(api, "other@example.com") == []
    # The good one still works, in French when asked.
    answer = await api.anonymous.post(f"/v1/unsubscribe/{good}?lang=fr")
    assert answer.status_code == 200 and "Vous ne recevrez plus" in answer.text


async def test_without_a_secret_marketing_goes_without_the_header_and_the_route_is_404(
    start_api: Callable[..., Awaitable[Api]], smtp_sink: SmtpSink
) -> None:
    api = await start_api(unsubscribe_secret=None)
    await _recovery(api)
    [first] = await eventually(lambda: smtp_sink.messages, message="the recovery email")
    assert first.message["List-Unsubscribe"] is None
    assert "Unsubscribe" not in (first.text or "")
    made = UnsubscribeTokens(b"x" * 40).make(LEAD, Category.MARKETING)
    assert (await api.anonymous.post(f"/v1/unsubscribe/{made}")).status_code == 404
