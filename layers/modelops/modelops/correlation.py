"""The correlation id of the flow being handled: set once by the API, task and consumer
entry points, read by whatever builds an event or an audit record without an id of its own.
Standard library only (entry points import it before anything else)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_CORRELATION: ContextVar[str] = ContextVar("modelops_correlation_id", default="")


def bind(logger: Any, correlation_id: str) -> None:
    """The flow's correlation id: on every log line from here on, and in its events."""
    logger.set_correlation_id(correlation_id)
    _CORRELATION.set(correlation_id)


def current(fallback: str) -> str:
    """The bound correlation id, or ``fallback`` (e.g. the resource's id) outside a flow."""
    return _CORRELATION.get() or fallback
