"""The ILLUVRSE integrations in the demo: an agent runtime loads the prod model only through
a package that verifies, and refuses a tampered copy; then what Kernel, the Reasoning Graph
and the Eval Engine received on their buses during the run, every event checked against its
JSON Schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelops_cli.client import ModelOpsClient
from modelops_cli.package import fetch_package, load_verified, verify_package

Say = Callable[[str], None]


def run_agent_flow(client: ModelOpsClient, family: str, workdir: Path, say: Say) -> None:
    """The agent runtime (``client``: its principal, any role that may read) loads
    ``family``'s prod version."""
    (model,) = client.iter_models(family=family, status="prod")
    model_id = model["modelId"]
    say(f"27. Agent Manager loads {family}'s prod version {model_id} only if it verifies")
    verdict = load_verified(client, model_id, workdir / "agent-ok", require_stage="prod")
    say(f"   {model_id} loaded: {len(verdict.checks)} checks passed; {verdict.checks[-1]}")
    target = workdir / "agent-tampered"
    package = fetch_package(client, model_id, target)
    victim = sorted(p for p in target.rglob("*") if p.is_file())[0]
    victim.write_bytes(victim.read_bytes() + b" ")
    tampered = verify_package(package, target, require_stage="prod")
    reason = next(c for c in tampered.checks if "DIFFERS" in c or "FAILS" in c)
    say(f"   one byte added to {victim.name}: refused ({reason})")


def report_integration_events(integrations: Any, say: Say) -> dict[str, int]:
    """What each integration's inbox holds, and the contract check over every event the
    platform published (``localcloud.integrations``)."""
    from localcloud.integrations import validate_event

    received: dict[str, int] = {}
    for name in integrations.inboxes:
        kinds = Counter(event["detail-type"] for event in integrations.received(name))
        received[name] = sum(kinds.values())
        listed = ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items()))
        say(f"   {name}: {received[name]} events ({listed})")
    published = integrations.published()
    for event in published:
        validate_event(event["detail-type"], event["detail"], event["source"])
    types = {event["detail-type"] for event in published}
    say(
        f"   every one of the {len(published)} events published ({len(types)} detail types) "
        "validates against its schema in schemas/events/"
    )
    return received
