"""``make bench``: every benchmark against its named peer, in the same run, as ratios."""

from __future__ import annotations

import operator
import sys

from bench import coldstart, drift, ingest, ledger, router, training

TARGETS = {">= ": operator.ge, "<= ": operator.le}


def _meets(row: dict[str, object]) -> bool:
    target = str(row["target"])
    for prefix, check in TARGETS.items():
        if target.startswith(prefix):
            return bool(check(float(str(row["ratio"])), float(target.removeprefix(prefix))))
    raise ValueError(f"unknown target {target!r}")


def main() -> int:
    rows = [
        *ingest.run(),
        *coldstart.run(),
        *ledger.run(),
        *training.run(),
        *router.run(),
        *drift.run(),
    ]
    width = max(len(str(r["benchmark"])) for r in rows)
    print(f"{'benchmark':<{width}}  {'peer':<40} {'ratio':>7}  target   result")
    for row in rows:
        figures = ", ".join(
            f"{k}={v}" for k, v in row.items() if k not in {"benchmark", "peer", "ratio", "target"}
        )
        verdict = "meets" if _meets(row) else "MISSES"
        name, peer, ratio, target = row["benchmark"], row["peer"], row["ratio"], row["target"]
        print(f"{name!s:<{width}}  {peer!s:<40} {ratio!s:>7}  {target!s:<8} {verdict}")
        print(f"{'':<{width}}  {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
