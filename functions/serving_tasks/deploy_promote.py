"""Task Promote: the canary's next traffic step (done at 100%)."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "deploy_promote", lambda event: wiring.deployment_service().promote(event["deployId"])
)
