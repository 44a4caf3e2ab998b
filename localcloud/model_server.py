"""A SageMaker-style model server for one endpoint variant, run as its own process.

Run as a script (``python -I model_server.py --model-dir DIR``) by
:mod:`localcloud.sagemaker_endpoints`, one process per production or shadow variant; it
imports only the standard library, numpy and the model format's reader
(``examples/evaluate/softmax_model.py``, which the evaluation job scores with too), like the
inference container it stands for.
It loads the model from the extracted ``model.tar.gz`` before it listens, then prints one
line ``{"port": N}`` to stdout (the port it bound, 127.0.0.1 and port 0 by default); a model
that does not load ends the process with exit code 1 and the reason on stderr.

The SageMaker inference container contract, over HTTP/1.1 (keep-alive):

* ``GET /ping``: 200 once the model is loaded;
* ``POST /invocations``: ``application/json`` ``{"instances": [[f1, ..., fn], ...]}`` or
  ``text/csv`` rows of n numbers; answers ``application/json``
  ``{"predictions": [{"label": ..., "probabilities": {class: p, ...}}, ...]}``; input it
  cannot read is a 400 with a plain-text reason;
* ``POST /admin/fault`` (ours, for tests; the router never forwards to it): JSON
  ``{"latency_ms": float, "error_rate": float}`` makes every invocation wait ``latency_ms``
  first and answer 500 for a random ``error_rate`` fraction of them.

Model format: ``model.json`` of ``modelops.iris.softmax-regression/1`` (what
``examples/iris_train/train.py`` writes), defined and read by
:mod:`examples.evaluate.softmax_model`.
"""

from __future__ import annotations

import os

# One BLAS thread per server: many servers share this machine (set before numpy loads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# A script launched with ``python -I`` has neither the repository nor its own directory on
# the path: add the repository (last, so it shadows nothing) for the shared format reader.
_REPOSITORY = str(Path(__file__).resolve().parents[1])
if _REPOSITORY not in sys.path:
    sys.path.append(_REPOSITORY)

from examples.evaluate.softmax_model import (  # noqa: E402
    MODEL_FORMAT,
    Array,
    ModelError,
    SoftmaxModel,
    finite_array,
)


def parse_instances(model: SoftmaxModel, body: bytes, content_type: str) -> Array:
    """The instances of a request body, as an (m, n) array for ``model``."""
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
        if media == "text/csv":
            rows: Any = [[float(v) for v in row] for row in csv.reader(text.splitlines()) if row]
        elif media in ("application/json", ""):
            parsed = json.loads(text)
            rows = parsed.get("instances") if isinstance(parsed, dict) else None
            if not isinstance(rows, list):
                raise ModelError('a JSON request must be {"instances": [[...], ...]}')
        else:
            raise ModelError(f"unsupported content type {content_type!r}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"unreadable request body: {exc}") from None
    if not rows:
        raise ModelError("the request holds no instances")
    return finite_array(rows, (len(rows), len(model.features)), "instances")


def predictions(model: SoftmaxModel, x: Array) -> list[dict[str, Any]]:
    """The ``predictions`` of an answer: each row's label and its class probabilities."""
    predicted, probabilities = model.predict(x)
    return [
        {
            "label": model.classes[index],
            "probabilities": dict(zip(model.classes, row, strict=True)),
        }
        for index, row in zip(predicted.tolist(), probabilities.tolist(), strict=True)
    ]


class Faults:
    """What /admin/fault asked for; read by every invocation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latency_ms = 0.0
        self.error_rate = 0.0

    def set(self, latency_ms: float, error_rate: float) -> None:
        if latency_ms < 0 or not 0.0 <= error_rate <= 1.0:
            raise ModelError("latency_ms must be >= 0 and error_rate within [0, 1]")
        with self._lock:
            self.latency_ms, self.error_rate = latency_ms, error_rate

    def get(self) -> tuple[float, float]:
        with self._lock:
            return self.latency_ms, self.error_rate


def make_handler(model: SoftmaxModel, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the router reuses its connections
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per request would drown the endpoint's log stream

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._reply(200, b"")
            else:
                self._reply(404, b"not found")

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/invocations":
                self._invoke(body)
            elif self.path == "/admin/fault":
                try:
                    asked = json.loads(body or b"{}")
                    faults.set(float(asked.get("latency_ms", 0)), float(asked.get("error_rate", 0)))
                except (ValueError, TypeError, AttributeError, ModelError) as exc:
                    self._reply(400, str(exc).encode())
                    return
                self._reply(200, b"{}", "application/json")
            else:
                self._reply(404, b"not found")

        def _invoke(self, body: bytes) -> None:
            latency_ms, error_rate = faults.get()
            if latency_ms:
                time.sleep(latency_ms / 1000.0)
            if error_rate and random.random() < error_rate:
                self._reply(500, b"injected fault")
                return
            try:
                x = parse_instances(
                    model, body, self.headers.get("Content-Type", "application/json")
                )
            except ModelError as exc:
                self._reply(400, str(exc).encode())
                return
            answer = json.dumps({"predictions": predictions(model, x)}).encode()
            self._reply(200, answer, "application/json")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="model server for one endpoint variant")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        model = SoftmaxModel.load(args.model_dir)
    except ModelError as exc:
        print(f"model load failed: {exc}", file=sys.stderr, flush=True)
        return 1
    server = ThreadingHTTPServer((args.host, args.port), make_handler(model, Faults()))
    server.daemon_threads = True
    print(
        f"loaded {MODEL_FORMAT} ({len(model.features)} features, {len(model.classes)} classes)",
        file=sys.stderr,
        flush=True,
    )
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
