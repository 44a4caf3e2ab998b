"""The SigV4 verifier accepts what botocore signs and refuses every tampered variant."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from localcloud.sigv4 import (
    Credential,
    SignatureError,
    SignatureFailure,
    derive_signing_key,
    verify,
)
from tests.sigv4_principals import KERNEL, KNOWN, SESSION

REGION = "us-east-1"
ENDPOINT = "https://abc123defg.execute-api.us-east-1.amazonaws.com"


@dataclass(frozen=True)
class Signed:
    """A request as it reaches the server after botocore signed it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def signed_at(self) -> datetime:
        return datetime.strptime(self.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def sign(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
    credential: Credential = KERNEL,
    region: str = REGION,
    service: str = "execute-api",
) -> Signed:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {}, params=params)
    botocore_credentials = Credentials(
        credential.access_key_id, credential.secret_access_key, credential.session_token
    )
    SigV4Auth(botocore_credentials, service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    sent = dict(prepared.headers.items())
    sent["Host"] = parts.netloc  # what the HTTP client adds on the wire
    return Signed(method, parts.path, parts.query, sent, body)


def check(signed: Signed, *, now: datetime | None = None, region: str = REGION) -> Credential:
    return verify(
        signed.method,
        signed.path,
        signed.query,
        signed.headers,
        signed.body,
        lookup=KNOWN.get,
        region=region,
        now=now,
    )


def refusal(signed: Signed, **kwargs: object) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        check(signed, **kwargs)  # type: ignore[arg-type]
    return caught.value


def with_header(signed: Signed, name: str, value: str | None) -> Signed:
    headers = {key: val for key, val in signed.headers.items() if key.lower() != name.lower()}
    if value is not None:
        headers[name] = value
    return replace(signed, headers=headers)


# --- accepted -----------------------------------------------------------------------------


def test_get_without_query_is_accepted_and_returns_the_signers_credential() -> None:
    assert check(sign("GET", f"{ENDPOINT}/models")) == KERNEL


def test_get_with_query_in_url_including_repeated_keys_is_accepted() -> None:
    signed = sign("GET", f"{ENDPOINT}/models?tag=b&tag=a&limit=10&z=&flag")

    assert check(signed) == KERNEL


def test_get_with_query_characters_that_need_encoding_is_accepted() -> None:
    url = f"{ENDPOINT}/models?name=caf%C3%A9%20model&expr=a%2Bb%3D%26c&path=%2Fx%2Fy&tilde=~"

    assert check(sign("GET", url)) == KERNEL


def test_query_sent_form_encoded_with_plus_and_lowercase_escapes_is_accepted() -> None:
    # requests encodes spaces as "+"; botocore signs a URL's query exactly as written.
    signed = sign("GET", f"{ENDPOINT}/models?q=team+a&name=caf%c3%a9&q=b")

    assert check(signed) == KERNEL


def test_get_with_query_given_as_parameters_is_accepted() -> None:
    # botocore signs parameters in the specification's form (%20) but sends them form
    # encoded (+); the verifier decodes before canonicalising.
    params = [("owner", "team a"), ("owner", "team/b"), ("q", "x+y=z"), ("é", "ü")]

    signed = sign("GET", f"{ENDPOINT}/models", params=params)

    assert "+" in signed.query
    assert check(signed) == KERNEL


def test_post_with_json_body_is_accepted() -> None:
    body = b'{"name": "resnet", "tags": ["vision"], "note": "caf\xc3\xa9"}'
    signed = sign(
        "POST", f"{ENDPOINT}/models", body=body, headers={"Content-Type": "application/json"}
    )

    assert check(signed) == KERNEL


def test_path_with_encoded_characters_is_accepted() -> None:
    signed = sign("GET", f"{ENDPOINT}/artifact/ds%2F01/model%20v1/caf%C3%A9~x")

    assert check(signed) == KERNEL


def test_path_with_dot_segments_and_double_slashes_is_accepted() -> None:
    signed = sign("GET", f"{ENDPOINT}/models//a/./b/../c/")

    assert check(signed) == KERNEL


def test_session_credentials_with_security_token_are_accepted() -> None:
    signed = sign("PUT", f"{ENDPOINT}/dataset/d1", body=b"{}", credential=SESSION)

    assert signed.headers["X-Amz-Security-Token"] == SESSION.session_token
    assert check(signed) == SESSION


def test_request_signed_with_date_header_instead_of_x_amz_date_is_accepted() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"})

    assert "X-Amz-Date" not in signed.headers
    assert check(signed) == KERNEL


def test_declared_content_sha256_matching_the_body_is_accepted() -> None:
    body = b'{"a": 1}'
    signed = sign(
        "POST",
        f"{ENDPOINT}/models",
        body=body,
        headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )

    assert check(signed) == KERNEL


def test_header_names_are_matched_case_insensitively() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", headers={"X-Custom": "v"})
    lowered = replace(signed, headers={key.lower(): val for key, val in signed.headers.items()})

    assert check(lowered) == KERNEL


def test_repeated_headers_given_as_pairs_are_joined_with_commas() -> None:
    # Given a canonical request built by hand for a header sent twice
    signed = sign("GET", f"{ENDPOINT}/models", headers={"X-Multi": "one,two"})
    pairs = [(key, val) for key, val in signed.headers.items() if key != "X-Multi"]
    pairs += [("X-Multi", "one"), ("x-multi", "two")]

    # Then the two values are canonicalised as botocore joins them
    assert (
        verify("GET", signed.path, signed.query, pairs, b"", lookup=KNOWN.get, region=REGION)
        == KERNEL
    )


def test_signing_key_derivation_matches_the_aws_documentation_example() -> None:
    # The worked example in the AWS General Reference ("Examples of how to derive a
    # signing key for Signature Version 4").
    key = derive_signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam"
    )

    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


# --- refused ------------------------------------------------------------------------------


def test_request_without_authorization_is_refused_as_missing_authentication_token() -> None:
    signed = with_header(sign("GET", f"{ENDPOINT}/models"), "Authorization", None)

    error = refusal(signed)

    assert error.reason is SignatureFailure.MISSING_AUTHORIZATION
    assert error.message == "Missing Authentication Token"


def test_other_authorization_scheme_is_refused_as_unsupported_algorithm() -> None:
    signed = with_header(sign("GET", f"{ENDPOINT}/models"), "Authorization", "Bearer abc.def")

    assert refusal(signed).reason is SignatureFailure.UNSUPPORTED_ALGORITHM


def test_authorization_without_signature_parameter_is_refused_as_malformed() -> None:
    signed = sign("GET", f"{ENDPOINT}/models")
    truncated = signed.headers["Authorization"].rsplit(", Signature=", 1)[0]

    error = refusal(with_header(signed, "Authorization", truncated))

    assert error.reason is SignatureFailure.MALFORMED_AUTHORIZATION
    assert "requires 'Signature' parameter" in error.message


def test_request_without_any_date_header_is_refused_as_missing_date() -> None:
    signed = with_header(sign("GET", f"{ENDPOINT}/models"), "X-Amz-Date", None)

    assert refusal(signed).reason is SignatureFailure.MISSING_DATE


def test_signed_headers_without_host_are_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models")
    authorization = signed.headers["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")

    error = refusal(with_header(signed, "Authorization", authorization))

    assert error.reason is SignatureFailure.HOST_NOT_SIGNED


def test_unknown_access_key_is_refused() -> None:
    stranger = replace(KERNEL, access_key_id="AKIASTRANGER00000000")

    error = refusal(sign("GET", f"{ENDPOINT}/models", credential=stranger))

    assert error.reason is SignatureFailure.UNKNOWN_ACCESS_KEY
    assert error.message == "The security token included in the request is invalid."


def test_wrong_secret_is_refused_as_signature_mismatch() -> None:
    impostor = replace(KERNEL, secret_access_key="not-the-kernel-secret")

    error = refusal(sign("GET", f"{ENDPOINT}/models", credential=impostor))

    assert error.reason is SignatureFailure.SIGNATURE_MISMATCH
    assert "The Canonical String for this request should have been" in error.message


def test_changed_body_is_refused_as_signature_mismatch() -> None:
    signed = sign("POST", f"{ENDPOINT}/models", body=b'{"stage": "dev"}')

    tampered = replace(signed, body=b'{"stage": "prod"}')

    assert refusal(tampered).reason is SignatureFailure.SIGNATURE_MISMATCH


def test_changed_signed_header_is_refused_as_signature_mismatch() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", headers={"X-Tenant": "alpha"})

    tampered = with_header(signed, "X-Tenant", "beta")

    assert refusal(tampered).reason is SignatureFailure.SIGNATURE_MISMATCH


def test_changed_query_value_is_refused_as_signature_mismatch() -> None:
    signed = sign("GET", f"{ENDPOINT}/models?stage=dev")

    tampered = replace(signed, query="stage=prod")

    assert refusal(tampered).reason is SignatureFailure.SIGNATURE_MISMATCH


def test_changed_path_is_refused_as_signature_mismatch() -> None:
    signed = sign("DELETE", f"{ENDPOINT}/models/m1")

    tampered = replace(signed, path="/models/m2")

    assert refusal(tampered).reason is SignatureFailure.SIGNATURE_MISMATCH


def test_changed_method_is_refused_as_signature_mismatch() -> None:
    signed = sign("GET", f"{ENDPOINT}/models/m1")

    tampered = replace(signed, method="DELETE")

    assert refusal(tampered).reason is SignatureFailure.SIGNATURE_MISMATCH


def test_signed_header_removed_from_request_is_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", headers={"X-Tenant": "alpha"})

    error = refusal(with_header(signed, "X-Tenant", None))

    assert error.reason is SignatureFailure.SIGNED_HEADER_ABSENT


def test_declared_content_sha256_not_matching_the_body_is_refused() -> None:
    signed = sign(
        "POST",
        f"{ENDPOINT}/models",
        body=b"{}",
        headers={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()},
    )

    assert refusal(signed).reason is SignatureFailure.PAYLOAD_HASH_MISMATCH


def test_unsigned_payload_marker_is_refused() -> None:
    signed = sign(
        "POST",
        f"{ENDPOINT}/models",
        body=b"{}",
        headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )

    assert refusal(signed).reason is SignatureFailure.PAYLOAD_HASH_MISMATCH


def test_missing_security_token_for_session_credentials_is_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", credential=SESSION)

    error = refusal(with_header(signed, "X-Amz-Security-Token", None))

    assert error.reason is SignatureFailure.INVALID_SECURITY_TOKEN


def test_wrong_security_token_is_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", credential=SESSION)

    error = refusal(with_header(signed, "X-Amz-Security-Token", "forged-token"))

    assert error.reason is SignatureFailure.INVALID_SECURITY_TOKEN


def test_signature_scoped_to_another_region_is_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", region="eu-west-1")

    error = refusal(signed)

    assert error.reason is SignatureFailure.WRONG_REGION
    assert error.message == "Credential should be scoped to a valid region, not 'eu-west-1'. "


def test_signature_scoped_to_another_service_is_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models", service="lambda")

    assert refusal(signed).reason is SignatureFailure.WRONG_SERVICE


def test_credential_scope_date_differing_from_request_date_is_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models")
    day_before = (signed.signed_at - timedelta(days=1)).strftime("%Y%m%d")
    authorization = signed.headers["Authorization"].replace(
        f"/{signed.signed_at:%Y%m%d}/", f"/{day_before}/"
    )

    error = refusal(with_header(signed, "Authorization", authorization))

    assert error.reason is SignatureFailure.SCOPE_DATE_MISMATCH


def test_signature_older_than_the_allowed_skew_is_refused_as_expired() -> None:
    signed = sign("GET", f"{ENDPOINT}/models")

    error = refusal(signed, now=signed.signed_at + timedelta(minutes=16))

    assert error.reason is SignatureFailure.SIGNATURE_EXPIRED
    assert error.message.startswith(f"Signature expired: {signed.headers['X-Amz-Date']}")
    assert error.message.endswith(" - 15 min.)")


def test_signature_within_the_allowed_skew_is_accepted() -> None:
    signed = sign("GET", f"{ENDPOINT}/models")

    assert check(signed, now=signed.signed_at + timedelta(minutes=14)) == KERNEL
    assert check(signed, now=signed.signed_at - timedelta(minutes=14)) == KERNEL


def test_signature_dated_in_the_future_beyond_the_skew_is_refused() -> None:
    signed = sign("GET", f"{ENDPOINT}/models")

    error = refusal(signed, now=signed.signed_at - timedelta(minutes=16))

    assert error.reason is SignatureFailure.SIGNATURE_NOT_YET_CURRENT


def test_custom_max_skew_is_honoured() -> None:
    signed = sign("GET", f"{ENDPOINT}/models")

    with pytest.raises(SignatureError) as caught:
        verify(
            signed.method,
            signed.path,
            signed.query,
            signed.headers,
            signed.body,
            lookup=KNOWN.get,
            region=REGION,
            now=signed.signed_at + timedelta(minutes=6),
            max_skew=timedelta(minutes=5),
        )

    assert caught.value.reason is SignatureFailure.SIGNATURE_EXPIRED
    assert caught.value.message.endswith(" - 5 min.)")
