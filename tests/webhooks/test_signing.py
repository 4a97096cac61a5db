"""`envoi.webhooks.sign` and `verify` follow the Standard Webhooks spec: its own test vectors (from the
reference libraries' test suites, standard-webhooks/standard-webhooks `libraries/*/tests`), and a
verifier that refuses forgeries, stale and future timestamps."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envoi.errors import EnvoiError
from envoi.webhooks import WebhookVerificationError, new_secret, sign, signature_header, verify
from envoi.webhooks.signing import secret_key
from tests.fixtures.webhook_receiver import spec_verify

# The spec libraries' signing vector (identical in the Python, JS, Go, Java, PHP, C# and Ruby suites).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# A valid-looking signature of the suites' "invalid signature" and "multiple signatures" tests.
OTHER_SIGNATURE = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="


def vector_headers(signature: str = VECTOR_SIGNATURE) -> dict[str, str]:
    return {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": signature,
    }


def headers_now(secret: str, payload: str, *, age_s: float = 0) -> dict[str, str]:
    timestamp = int(time.time() - age_s)
    return {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, VECTOR_ID, timestamp, payload),
    }


def test_sign_reproduces_the_spec_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD) == VECTOR_SIGNATURE
    # With or without the whsec_ prefix, str or bytes body.
    assert sign(
        VECTOR_SECRET.removeprefix("whsec_"), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD.encode()
    ) == (VECTOR_SIGNATURE)


def test_verify_accepts_the_spec_vector_at_its_time() -> None:
    body = verify(VECTOR_PAYLOAD, vector_headers(), VECTOR_SECRET, now=VECTOR_TIMESTAMP + 10)
    assert body == {"test": 2432232314}


def test_verify_refuses_a_forged_signature() -> None:
    # The suites' "invalid signature": the vector with its last characters changed.
    forged = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(VECTOR_PAYLOAD, vector_headers(forged), VECTOR_SECRET, now=VECTOR_TIMESTAMP)
    # A valid signature of another body, or under another secret, is a forgery too.
    with pytest.raises(WebhookVerificationError):
        verify('{"test": 2432232315}', vector_headers(), VECTOR_SECRET, now=VECTOR_TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        verify(VECTOR_PAYLOAD, vector_headers(), new_secret(), now=VECTOR_TIMESTAMP)


def test_verify_refuses_a_timestamp_six_minutes_old_or_ahead() -> None:
    secret = new_secret()
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(VECTOR_PAYLOAD, headers_now(secret, VECTOR_PAYLOAD, age_s=360), secret)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify(VECTOR_PAYLOAD, headers_now(secret, VECTOR_PAYLOAD, age_s=-360), secret)
    # Four minutes is within the default tolerance; a tighter tolerance refuses it.
    assert verify(VECTOR_PAYLOAD, headers_now(secret, VECTOR_PAYLOAD, age_s=240), secret) == {
        "test": 2432232314
    }
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(VECTOR_PAYLOAD, headers_now(secret, VECTOR_PAYLOAD, age_s=240), secret, tolerance_s=60)


def test_the_vector_is_stale_today() -> None:
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(VECTOR_PAYLOAD, vector_headers(), VECTOR_SECRET)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_names_a_missing_header(missing: str) -> None:
    headers = vector_headers()
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match=missing):
        verify(VECTOR_PAYLOAD, headers, VECTOR_SECRET, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize("stamp", ["hello", "161426533.0", "", "1614265330 1"])
def test_verify_refuses_a_timestamp_that_is_not_an_integer(stamp: str) -> None:
    headers = {**vector_headers(), "webhook-timestamp": stamp}
    with pytest.raises(WebhookVerificationError):
        verify(VECTOR_PAYLOAD, headers, VECTOR_SECRET, now=VECTOR_TIMESTAMP)


def test_multiple_signatures_one_valid_is_accepted() -> None:
    # The suites' rotation case: v1 and v2 decoys around the valid signature.
    header = " ".join(
        [OTHER_SIGNATURE, OTHER_SIGNATURE.replace("v1,", "v2,"), VECTOR_SIGNATURE, OTHER_SIGNATURE]
    )
    assert verify(VECTOR_PAYLOAD, vector_headers(header), VECTOR_SECRET, now=VECTOR_TIMESTAMP) == {
        "test": 2432232314
    }


@pytest.mark.parametrize(
    "header",
    [
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # the right bytes under another version
        "invalid_signature",
        "v1,invalid_signature",
        "v1,",
    ],
)
def test_malformed_or_other_version_signatures_do_not_verify(header: str) -> None:
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(VECTOR_PAYLOAD, vector_headers(header), VECTOR_SECRET, now=VECTOR_TIMESTAMP)


def test_header_names_are_matched_whatever_their_case() -> None:
    headers = {
        "Webhook-Id": VECTOR_ID,
        "WEBHOOK-TIMESTAMP": str(VECTOR_TIMESTAMP),
        "webhook-SIGNATURE": VECTOR_SIGNATURE,
    }
    assert verify(VECTOR_PAYLOAD.encode(), headers, VECTOR_SECRET, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize(
    ("secret", "padded"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),  # needs no padding
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS="),  # needs one
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr=="),  # needs two
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr=="),
    ],
)
def test_unpadded_secrets_are_read_as_the_spec_libraries_read_them(secret: str, padded: str) -> None:
    assert secret_key(secret) == base64.b64decode(padded)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_an_empty_or_garbled_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        sign(secret, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD)


def test_new_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_key(first)) == 32  # the spec: between 24 and 64 bytes


def test_verification_error_is_an_envoi_error_and_never_quotes_the_secret() -> None:
    secret = new_secret()
    with pytest.raises(WebhookVerificationError) as caught:
        verify(VECTOR_PAYLOAD, vector_headers(), secret, now=VECTOR_TIMESTAMP)
    assert isinstance(caught.value, EnvoiError)
    assert secret.removeprefix("whsec_") not in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=300).map(lambda b: '{"b": "' + b.hex() + '"}'),
    msg_id=st.from_regex(r"\A[A-Za-z0-9_]{1,40}\Z"),
    flip=st.integers(min_value=0, max_value=10_000),
)
def test_envoi_and_an_independent_verifier_agree_and_any_changed_byte_fails(
    body: str, msg_id: str, flip: int
) -> None:
    secrets = [new_secret(), new_secret()]
    timestamp = int(time.time())
    header = signature_header(secrets, msg_id, timestamp, body)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": header}
    # Either secret verifies the two-signature header (a rotation), with envoi's and the spec's code.
    for secret in secrets:
        assert verify(body, headers, secret) == {"b": body[7:-2]}
        assert spec_verify([secret], headers, body.encode(), now=time.time()) is None
    tampered = bytearray(body.encode())
    tampered[flip % len(tampered)] ^= 0x01
    with pytest.raises(WebhookVerificationError):
        verify(bytes(tampered), headers, secrets[0])
