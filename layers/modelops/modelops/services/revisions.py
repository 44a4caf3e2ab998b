"""Optimistic concurrency for records that evolve (training jobs, deployments): read,
change, write conditional on the revision read, and start over if another writer won."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, Self, TypeVar

from modelops.errors import ModelOpsError
from modelops.ports import StaleWrite


class Revised(Protocol):
    """A record with a revision number (pydantic models with a ``revision`` field)."""

    @property
    def revision(self) -> int: ...
    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self: ...


R = TypeVar("R", bound=Revised)
ATTEMPTS = 5


def revise(
    read: Callable[[], R],
    save: Callable[[R, int], None],
    change: Callable[[R], Mapping[str, Any]],
    contended: Callable[[], ModelOpsError],
) -> tuple[R, R]:
    """The record before and after ``change``; ``change`` may raise to refuse (it sees the
    current record each attempt). ``contended()`` is raised after ATTEMPTS lost races."""
    for _ in range(ATTEMPTS):
        current = read()
        updated = current.model_copy(update={**change(current), "revision": current.revision + 1})
        try:
            save(updated, current.revision)
        except StaleWrite:
            continue
        return current, updated
    raise contended()
