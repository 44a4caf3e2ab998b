"""Atomic DynamoDB requests for the local cloud: moto's server runs one at a time.

Pinned to moto 5.2.5. Re-check the hook below when it changes.

What real DynamoDB does
-----------------------
Every request is atomic on the items it touches: a ``PutItem`` with a
``ConditionExpression`` checks and writes in one step, so of two writers that put the same
new key with ``attribute_not_exists``, exactly one succeeds and the other gets
``ConditionalCheckFailedException``. ``TransactWriteItems`` is all-or-nothing, and reads
never fail because a write is in flight.

What moto 5.2.5 does, and what :func:`install` patches
------------------------------------------------------
moto's threaded server handles requests concurrently on one in-memory backend with no lock:
a conditional put evaluates its condition and then stores the item, so two threads can both
pass the check (both "win", the later silently overwrites the earlier); and
``TransactWriteItems`` deep-copies every table it touches for rollback while other requests
mutate them, which fails with ``RuntimeError: dictionary changed size during iteration`` (an
``InternalFailure`` to the client). Many writers appending to the audit ledger hit both.

:func:`install` wraps ``moto.dynamodb.responses.DynamoHandler.call_action`` (the one entry
of every DynamoDB request: boto3, PynamoDB and Step Functions' SDK integrations alike) in a
process-wide lock, so requests run one at a time, each atomic. Everything else (parsing,
conditions, errors, response shapes) stays moto's. Cost: DynamoDB requests to the local
cloud do not run in parallel, which a single-machine emulator can afford.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.responses import DynamoHandler

_REQUESTS = threading.RLock()
_INSTALL = threading.Lock()
_MARKER = "_localcloud_atomic"


def install() -> None:
    """Serialize moto's DynamoDB requests (this process). Idempotent and thread-safe."""
    with _INSTALL:
        if getattr(DynamoHandler, _MARKER, False):
            return
        original = DynamoHandler.call_action

        @functools.wraps(original)
        def call_action(self: DynamoHandler) -> Any:
            with _REQUESTS:
                return original(self)

        DynamoHandler.call_action = call_action  # type: ignore[method-assign]
        setattr(DynamoHandler, _MARKER, True)
