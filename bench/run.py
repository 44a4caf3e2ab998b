"""``make bench``: every benchmark against its named peer, in the same run, as ratios."""

from __future__ import annotations

import sys

from bench import coldstart, ingest

TARGETS = {">= ": lambda value, bound: value >= bound, "<= ": lambda value, bound: value <= bound}


def _meets(row: dict[str, object]) -> bool:
    target = str(row["target"])
    for prefix, check in TARGETS.items():
        if target.startswith(prefix):
            return bool(check(float(row["ratio"]), float(target.removeprefix(prefix))))  # type: ignore[arg-type]
    raise ValueError(f"unknown target {target!r}")


def main() -> int:
    rows = [*ingest.run(), *coldstart.run()]
    width = max(len(str(r["benchmark"])) for r in rows)
    print(f"{'benchmark':<{width}}  {'peer':<40} {'ratio':>7}  target   result")
    for row in rows:
        figures = ", ".join(f"{k}={v}" for k, v in row.items() if k not in {"benchmark", "peer", "ratio", "target"})
        verdict = "meets" if _meets(row) else "MISSES"
        print(f"{row['benchmark']:<{width}}  {row['peer']!s:<40} {row['ratio']!s:>7}  {row['target']!s:<8} {verdict}")
        print(f"{'':<{width}}  {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
