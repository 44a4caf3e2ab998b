"""``python -m chaos``: the chaos campaign at full size (see ``chaos.campaign``)."""

from __future__ import annotations

import argparse
import sys

from chaos.campaign import CampaignConfig, render, run_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Inject dependency faults into the platform under concurrent clients; "
        "fail if a record is lost or duplicated or an invariant breaks.",
    )
    defaults = CampaignConfig()
    parser.add_argument("--faults", type=int, default=defaults.faults, help="faults to inject")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="fault rate per call")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="RNG seed")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="client threads")
    parser.add_argument(
        "--max-seconds", type=float, default=defaults.max_seconds, help="time bound"
    )
    parser.add_argument(
        "--round-faults",
        type=int,
        default=defaults.round_faults,
        help="faults per round (each round starts from empty storage)",
    )
    args = parser.parse_args(argv)
    config = CampaignConfig(
        faults=args.faults,
        rate=args.rate,
        seed=args.seed,
        threads=args.threads,
        max_seconds=args.max_seconds,
        round_faults=args.round_faults,
    )
    report = run_campaign(config)
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
