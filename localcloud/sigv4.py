"""AWS Signature Version 4 verifier (header-signed requests), standard library only.

Written from the SigV4 specification: canonical request, string to sign, and the HMAC
key derivation ``AWS4<secret> -> date -> region -> service -> "aws4_request"``. It checks
what a service such as API Gateway (``execute-api``) checks before it lets a request in
and returns the caller's :class:`Credential`.

Canonicalisation details, matched against botocore 1.44 ``SigV4Auth`` (the signer every
client here uses):

- Canonical URI: the path exactly as sent (still percent-encoded), with dot segments and
  empty segments removed, then percent-encoded once more (``/`` and ``~`` kept), which is
  the "encode every segment twice" rule for services other than S3.
- Canonical query string: botocore signs a query embedded in the URL as sent (pairs
  sorted, no re-encoding) and a query given as parameters in the specification's form
  (names and values decoded, then encoded with only ``A-Za-z0-9-_.~`` left alone, pairs
  sorted). The verifier accepts a signature over either form. Both are functions of the
  query bytes received, so neither lets a third party change what the query means.
- Canonical headers: the headers named in ``SignedHeaders``, names lower-cased, values
  with runs of white space collapsed, repeated headers joined with ``,``. ``host`` must be
  signed.
- Payload hash: ``X-Amz-Content-SHA256`` when sent (it must then be the body's SHA-256;
  ``UNSIGNED-PAYLOAD`` is refused), otherwise the SHA-256 of the body.
- Request time: ``X-Amz-Date`` (``YYYYMMDD'T'HHMMSS'Z'``), or the HTTP ``Date`` header when
  that is absent (botocore signs with ``Date`` when the request already carries one).

Messages follow the wording AWS services use, so a client sees the same text locally as
it would from AWS.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from urllib.parse import quote, unquote_plus

ALGORITHM = "AWS4-HMAC-SHA256"
SCOPE_TERMINATOR = "aws4_request"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_MAX_SKEW = timedelta(minutes=15)

_SHA256_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP_RE = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True)
class Credential:
    """An access key and the principal it belongs to.

    ``user_id`` is the principal's unique id as AWS reports it (``AIDA...`` for an IAM
    user, ``AROA...:session-name`` for an assumed role). ``session_token`` is set for
    temporary credentials; requests signed with them must then carry the same
    ``X-Amz-Security-Token``.
    """

    access_key_id: str
    secret_access_key: str
    principal_arn: str
    account_id: str
    user_id: str | None = None
    session_token: str | None = None


class SignatureFailure(StrEnum):
    """Why a request was refused; one value per distinct check."""

    MISSING_AUTHORIZATION = "missing_authorization"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    MALFORMED_AUTHORIZATION = "malformed_authorization"
    MISSING_DATE = "missing_date"
    HOST_NOT_SIGNED = "host_not_signed"
    UNKNOWN_ACCESS_KEY = "unknown_access_key"
    INVALID_SECURITY_TOKEN = "invalid_security_token"
    WRONG_REGION = "wrong_region"
    WRONG_SERVICE = "wrong_service"
    SCOPE_DATE_MISMATCH = "scope_date_mismatch"
    SIGNATURE_EXPIRED = "signature_expired"
    SIGNATURE_NOT_YET_CURRENT = "signature_not_yet_current"
    SIGNED_HEADER_ABSENT = "signed_header_absent"
    PAYLOAD_HASH_MISMATCH = "payload_hash_mismatch"
    SIGNATURE_MISMATCH = "signature_mismatch"


class SignatureError(Exception):
    """The request is not validly signed. ``reason`` says which check failed."""

    def __init__(self, reason: SignatureFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    scope_date: str
    scope_region: str
    scope_service: str
    signed_headers: tuple[str, ...]
    signature: str


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    lookup: Callable[[str], Credential | None],
    region: str,
    service: str = "execute-api",
    now: datetime | None = None,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> Credential:
    """Check a SigV4 ``Authorization`` header and return the signer's credential.

    ``path`` and ``query`` are the raw request target as sent (percent-encoded, query
    without ``?``). ``headers`` is a mapping or a sequence of ``(name, value)`` pairs
    (use pairs to keep repeated headers); names are matched case-insensitively.
    ``lookup`` maps an access key id to its credential, or ``None`` when unknown.
    Raises :class:`SignatureError` when any check fails.
    """
    header_values = _collect_headers(headers)
    authorization_values = header_values.get("authorization")
    if not authorization_values:
        raise SignatureError(SignatureFailure.MISSING_AUTHORIZATION, "Missing Authentication Token")
    authorization = _parse_authorization(authorization_values[-1])
    timestamp, request_time = _request_time(header_values, authorization_values[-1])
    if "host" not in authorization.signed_headers:
        raise SignatureError(
            SignatureFailure.HOST_NOT_SIGNED,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )

    credential = lookup(authorization.access_key_id)
    if credential is None:
        raise SignatureError(
            SignatureFailure.UNKNOWN_ACCESS_KEY,
            "The security token included in the request is invalid.",
        )
    _check_security_token(credential, header_values)
    _check_scope(authorization, timestamp, region=region, service=service)
    _check_time(timestamp, request_time, now=now, max_skew=max_skew)

    canonical_headers = _canonical_headers(authorization.signed_headers, header_values)
    payload_hash = _payload_hash(header_values, body)
    canonical_uri = _canonical_uri(path)
    scope = f"{authorization.scope_date}/{region}/{service}/{SCOPE_TERMINATOR}"
    signing_key = derive_signing_key(
        credential.secret_access_key, authorization.scope_date, region, service
    )

    candidates: list[str] = []
    for canonical_query in _canonical_query_candidates(query):
        canonical_request = "\n".join(
            [
                method.upper(),
                canonical_uri,
                canonical_query,
                canonical_headers + "\n",
                ";".join(authorization.signed_headers),
                payload_hash,
            ]
        )
        if canonical_request in candidates:
            continue
        candidates.append(canonical_request)
        expected = signature_for(signing_key, string_to_sign(timestamp, scope, canonical_request))
        if hmac.compare_digest(expected.encode(), authorization.signature.encode()):
            return credential

    raise SignatureError(
        SignatureFailure.SIGNATURE_MISMATCH,
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.\n\nThe Canonical String for this request should have "
        f"been\n'{candidates[0]}'\n\nThe String-to-Sign should have been\n"
        f"'{string_to_sign(timestamp, scope, candidates[0])}'\n",
    )


def derive_signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """``HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")``."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, SCOPE_TERMINATOR)


def string_to_sign(timestamp: str, scope: str, canonical_request: str) -> str:
    """The SigV4 string to sign for a canonical request."""
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature_for(signing_key: bytes, string: str) -> str:
    """Hex HMAC-SHA256 of the string to sign under the derived signing key."""
    return hmac.new(signing_key, string.encode("utf-8"), hashlib.sha256).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _collect_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> dict[str, list[str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    collected: dict[str, list[str]] = {}
    for name, value in pairs:
        collected.setdefault(name.strip().lower(), []).append(value)
    return collected


def _parse_authorization(header: str) -> _Authorization:
    algorithm, _, parameters = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(
            SignatureFailure.UNSUPPORTED_ALGORITHM,
            f"Unsupported Authorization algorithm '{algorithm}'; only {ALGORITHM} is "
            f"accepted. Authorization={header}",
        )
    fields: dict[str, str] = {}
    for part in parameters.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals:
            raise SignatureError(
                SignatureFailure.MALFORMED_AUTHORIZATION,
                f"Invalid key=value pair (missing equal-sign) in Authorization header: "
                f"'{part.strip()}'.",
            )
        fields[name.strip()] = value.strip()
    missing = [
        name for name in ("Credential", "Signature", "SignedHeaders") if not fields.get(name)
    ]
    if missing:
        required = " ".join(
            f"Authorization header requires '{name}' parameter." for name in missing
        )
        raise SignatureError(
            SignatureFailure.MALFORMED_AUTHORIZATION, f"{required} Authorization={header}"
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise SignatureError(
            SignatureFailure.MALFORMED_AUTHORIZATION,
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{fields['Credential']}'",
        )
    access_key_id, scope_date, scope_region, scope_service, terminator = scope
    if terminator != SCOPE_TERMINATOR:
        raise SignatureError(
            SignatureFailure.MALFORMED_AUTHORIZATION,
            f"Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', "
            f"not '{terminator}'. ",
        )
    signed_headers = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";"))
    return _Authorization(
        access_key_id=access_key_id,
        scope_date=scope_date,
        scope_region=scope_region,
        scope_service=scope_service,
        signed_headers=signed_headers,
        signature=fields["Signature"],
    )


def _request_time(headers: dict[str, list[str]], authorization: str) -> tuple[str, datetime]:
    """The signed timestamp string and the instant it names."""
    amz_date = headers.get("x-amz-date")
    if amz_date:
        value = amz_date[-1].strip()
        if _TIMESTAMP_RE.fullmatch(value):
            try:
                instant = datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                pass
            else:
                return value, instant
    elif headers.get("date"):
        try:
            instant = parsedate_to_datetime(headers["date"][-1])
        except (TypeError, ValueError):
            pass
        else:
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=UTC)
            instant = instant.astimezone(UTC)
            return instant.strftime(TIMESTAMP_FORMAT), instant
    raise SignatureError(
        SignatureFailure.MISSING_DATE,
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
        f"header. Authorization={authorization}",
    )


def _check_security_token(credential: Credential, headers: dict[str, list[str]]) -> None:
    sent = headers.get("x-amz-security-token")
    token = sent[-1] if sent else None
    if credential.session_token is None and token is None:
        return
    if (
        credential.session_token is None
        or token is None
        or not hmac.compare_digest(token.encode(), credential.session_token.encode())
    ):
        raise SignatureError(
            SignatureFailure.INVALID_SECURITY_TOKEN,
            "The security token included in the request is invalid.",
        )


def _check_scope(
    authorization: _Authorization, timestamp: str, *, region: str, service: str
) -> None:
    if authorization.scope_region != region:
        raise SignatureError(
            SignatureFailure.WRONG_REGION,
            f"Credential should be scoped to a valid region, not '{authorization.scope_region}'. ",
        )
    if authorization.scope_service != service:
        raise SignatureError(
            SignatureFailure.WRONG_SERVICE,
            f"Credential should be scoped to correct service: '{service}'. ",
        )
    if authorization.scope_date != timestamp[:8]:
        raise SignatureError(
            SignatureFailure.SCOPE_DATE_MISMATCH,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{authorization.scope_date}' != '{timestamp[:8]}', from "
            f"'{timestamp}'.",
        )


def _check_time(
    timestamp: str, request_time: datetime, *, now: datetime | None, max_skew: timedelta
) -> None:
    current = (now or datetime.now(UTC)).astimezone(UTC)
    minutes = f"{max_skew.total_seconds() / 60:g}"
    earliest = current - max_skew
    latest = current + max_skew
    if request_time < earliest:
        raise SignatureError(
            SignatureFailure.SIGNATURE_EXPIRED,
            f"Signature expired: {timestamp} is now earlier than "
            f"{earliest.strftime(TIMESTAMP_FORMAT)} "
            f"({current.strftime(TIMESTAMP_FORMAT)} - {minutes} min.)",
        )
    if request_time > latest:
        raise SignatureError(
            SignatureFailure.SIGNATURE_NOT_YET_CURRENT,
            f"Signature not yet current: {timestamp} is still later than "
            f"{latest.strftime(TIMESTAMP_FORMAT)} "
            f"({current.strftime(TIMESTAMP_FORMAT)} + {minutes} min.)",
        )


def _canonical_headers(signed_headers: tuple[str, ...], headers: dict[str, list[str]]) -> str:
    lines = []
    for name in signed_headers:
        values = headers.get(name)
        if values is None:
            raise SignatureError(
                SignatureFailure.SIGNED_HEADER_ABSENT,
                f"Header '{name}' is listed in SignedHeaders but absent from the request.",
            )
        lines.append(f"{name}:{','.join(' '.join(value.split()) for value in values)}")
    return "\n".join(lines)


def _payload_hash(headers: dict[str, list[str]], body: bytes) -> str:
    actual = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if not declared:
        return actual
    value = declared[-1].strip()
    if not _SHA256_HEX_RE.fullmatch(value) or value.lower() != actual:
        raise SignatureError(
            SignatureFailure.PAYLOAD_HASH_MISMATCH,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    return value


def _canonical_uri(path: str) -> str:
    return quote(_remove_dot_segments(path) or "/", safe="/~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, also dropping empty segments (AWS collapses ``//``)."""
    if not path:
        return ""
    output: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def _canonical_query_candidates(query: str) -> list[str]:
    """The query as the specification canonicalises it, then as botocore signs a URL."""
    if not query:
        return [""]
    encoded_pairs = []
    raw_pairs = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        raw_pairs.append((name, value))
        if pair:
            encoded_pairs.append(
                (_uri_encode(unquote_plus(name)), _uri_encode(unquote_plus(value)))
            )
    specification = "&".join(f"{name}={value}" for name, value in sorted(encoded_pairs))
    as_sent = "&".join(f"{name}={value}" for name, value in sorted(raw_pairs))
    return [specification, as_sent]


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")
