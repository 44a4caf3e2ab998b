"""Task CreateEndpoint: verify again, build model archives, create models, config, endpoint."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "deploy_create", lambda event: wiring.deployment_service().create(event["deployId"])
)
