"""Stub HTTP services on 127.0.0.1 for the HTTP clients' tests, and an address nobody
listens on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


def received(handler: BaseHTTPRequestHandler) -> Received:
    """The request ``handler`` is handling, as it arrived (this reads its body)."""
    body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
    headers = {name.lower(): value for name, value in handler.headers.items()}
    return Received(handler.command, handler.path, headers, body)


def _silent(handler: BaseHTTPRequestHandler, format: str, *args: object) -> None:
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # concurrent clients are not kept waiting for a SYN retry


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 (a thread per request, no request
    log) and yield the base URL; the server stops when the block ends."""
    quiet = type(handler.__name__, (handler,), {"log_message": _silent})
    server = _Server(("127.0.0.1", 0), quiet)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def unreachable_url() -> str:
    """A base URL on a port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    return f"http://127.0.0.1:{port}"
