"""Task Rollback: all traffic back to the baseline; the canary keeps none."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "deploy_rollback", lambda event: wiring.deployment_service().rollback(event["deployId"])
)
