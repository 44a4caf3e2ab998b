"""Task FailDeployment (compensation): restore the baseline and record why."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "deploy_fail",
    lambda event: wiring.deployment_service().fail(event["deployId"], event.get("error")),
)
