"""What the clients of external HTTP services share (stdlib ``urllib``): one request with a
deadline for its whole answer, no redirects, a bounded body, and SigV4 signing.

Used by ``sentinelnet_http`` and ``resource_allocator_http``.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

MAX_ANSWER_BYTES = 1024 * 1024
_READ_BYTES = 64 * 1024

Signer = Callable[[urllib.request.Request], None]


class NoAnswer(Exception):
    """No whole answer arrived. The message completes a sentence that starts with the
    service's name: "did not answer within 2.0 s", "is unreachable: ...", "connection
    failed: ...", "answer exceeds ... bytes"."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """An answer comes from the configured service or not at all: a redirect is an error
    (and would drop a signed request's body and headers anyway)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def opener() -> urllib.request.OpenerDirector:
    """An opener that follows no redirect: a 3xx is an answer like any other status."""
    return urllib.request.build_opener(_NoRedirects)


def exchange(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout_s: float
) -> tuple[int, bytes]:
    """Send ``request`` and return the answer's status and body, whatever the status.

    ``timeout_s`` is the socket timeout of the connection and of every read, and the
    deadline for the whole answer (a body dripping in past it is no answer). Raises
    NoAnswer."""
    deadline = time.monotonic() + timeout_s
    try:
        try:
            with opener.open(request, timeout=timeout_s) as response:
                return response.status, _read(response, deadline)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _read(exc, deadline)
    except TimeoutError as exc:
        raise NoAnswer(f"did not answer within {timeout_s} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise NoAnswer(f"did not answer within {timeout_s} s") from exc
        raise NoAnswer(f"is unreachable: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise NoAnswer(f"connection failed: {exc!r}") from exc


def _read(response: Any, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(_READ_BYTES):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise NoAnswer(f"answer exceeds {MAX_ANSWER_BYTES} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError
        chunks.append(chunk)
    return b"".join(chunks)


def is_http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def sigv4_signer(region: str, service: str = "execute-api", credentials: Any = None) -> Signer:
    """A ``Signer`` that adds SigV4's ``Authorization`` and ``X-Amz-Date`` (and
    ``X-Amz-Security-Token`` for temporary credentials) to a finished request.

    ``credentials`` are botocore credentials; by default the function's own, resolved on
    the first request (botocore refreshes them as they near expiry)."""
    resolved: list[Any] = [credentials] if credentials is not None else []

    def sign(request: urllib.request.Request) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        if not resolved:
            import boto3

            found = boto3.session.Session().get_credentials()
            if found is None:
                raise RuntimeError("no AWS credentials to sign with")
            resolved.append(found)
        aws_request = AWSRequest(
            method=request.get_method(),
            url=request.full_url,
            data=request.data,
            headers=dict(request.header_items()),
        )
        SigV4Auth(resolved[0].get_frozen_credentials(), service, region).add_auth(aws_request)
        for name, value in aws_request.headers.items():
            request.add_header(name, value)

    return sign
