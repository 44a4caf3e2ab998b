"""Task StartBake / AnalyseCanary: the bake window opens once the endpoint is in service;
after it, the canary is compared with its baseline."""

from typing import Any

from modelops import wiring
from modelops.tasks import task_handler


def _step(event: dict[str, Any]) -> dict[str, Any] | None:
    service = wiring.deployment_service()
    if event.get("phase") == "start":
        service.start_bake(event["deployId"])
        return None
    attempt = int(event.get("analysis", {}).get("result", {}).get("attempt", 1))
    return service.analyse(event["deployId"], attempt)


handler = task_handler("deploy_analyse", _step)
