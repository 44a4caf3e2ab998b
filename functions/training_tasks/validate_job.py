"""Task ValidateRequest: the job's inputs still resolve to what was admitted."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "validate_job", lambda event: wiring.training_service().validate(event["jobId"])
)
