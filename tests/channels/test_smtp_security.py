"""SMTP_SECURITY against a real TLS server: STARTTLS when the server requires it, implicit TLS (ssl),
and plain `none` never upgrading on its own. The certificate is made by the openssl CLI for 127.0.0.1
and trusted through SSL_CERT_FILE, as an operator would trust a private CA."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from envoi.channels.base import OutgoingEmail
from envoi.channels.email_smtp import SmtpEmailChannel
from envoi.embedded_redis import free_port
from envoi.errors import DeliveryError
from envoi.queue.names import JobName
from envoi.runtime import Envoi
from tests.channels.support import context, email_data
from tests.fixtures.smtp import SmtpSink

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    # The client's default context reads its trust store from here (OpenSSL's default verify paths).
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


USER, PASSWORD = "envoi", "s3cret"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=auth_data == LoginPassword(USER.encode(), PASSWORD.encode()))


@pytest.fixture
def tls_sink(certificate: tuple[Path, Path], request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    """An SMTP sink speaking `request.param`: "starttls" (required) or "ssl" (implicit TLS); a param
    ending in "+auth" also requires AUTH (LOGIN or PLAIN) as `USER` and `PASSWORD`."""
    sink = SmtpSink()
    sink.port = free_port()
    server_context = _server_context(certificate)
    mode, _, auth = request.param.partition("+")
    options: dict[str, Any] = (
        {"tls_context": server_context, "require_starttls": True}
        if mode == "starttls"
        else {"ssl_context": server_context}
    )
    if auth:
        # Implicit TLS is TLS all along: aiosmtpd, seeing no STARTTLS, would otherwise hide AUTH.
        options |= {
            "authenticator": _authenticate,
            "auth_required": True,
            "auth_require_tls": mode == "starttls",
        }
    controller = Controller(sink, hostname=sink.host, port=sink.port, **options)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.mark.parametrize("tls_sink", ["starttls", "ssl"], indirect=True)
async def test_tls_modes_deliver(
    tls_sink: SmtpSink, make_delivery_settings: Any, make_envoi: Any, request: Any
) -> None:
    mode = request.node.callspec.params["tls_sink"]
    envoi: Envoi = make_envoi(make_delivery_settings(smtp_port=tls_sink.port, smtp_security=mode))
    result = await envoi.registry.run(context(JobName.SEND_EMAIL, email_data()))
    assert result["status"] == "sent"
    assert len(tls_sink.messages) == 1


# aiosmtpd knows TLS only as STARTTLS: over implicit TLS it warns that AUTH is allowed "without" it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("tls_sink", ["starttls+auth", "ssl+auth"], indirect=True)
async def test_messages_after_tls_and_auth_share_one_pipelined_connection(
    tls_sink: SmtpSink, make_delivery_settings: Any, request: Any
) -> None:
    # aiosmtplib secures the connection and logs in, then SmtpSession takes its transport over: every
    # message after the first goes over the same TLS session, with the envelope pipelined.
    mode = request.node.callspec.params["tls_sink"].partition("+")[0]
    settings = make_delivery_settings(
        smtp_port=tls_sink.port, smtp_security=mode, smtp_username=USER, smtp_password=PASSWORD
    )
    smtp = SmtpEmailChannel(settings)
    for i in range(3):
        await smtp.send(
            OutgoingEmail(to=f"user{i}@example.com", subject=f"n{i}", html="<p>x</p>", text="x", idempotency_key=f"k{i}")
        )  # fmt: skip
    assert smtp.pool.opened == 1
    await smtp.aclose()
    assert [m.message["Subject"] for m in tls_sink.messages] == ["n0", "n1", "n2"]


@pytest.mark.parametrize("tls_sink", ["starttls"], indirect=True)
async def test_none_does_not_upgrade_so_a_server_requiring_tls_refuses(
    tls_sink: SmtpSink, make_delivery_settings: Any, make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(smtp_port=tls_sink.port, smtp_security="none"))
    with pytest.raises(DeliveryError) as raised:
        await envoi.registry.run(context(JobName.SEND_EMAIL, email_data()))
    # aiosmtpd answers "530 Must issue a STARTTLS command first": a 5xx, so no retry.
    assert raised.value.code == "530"
    assert tls_sink.messages == []
