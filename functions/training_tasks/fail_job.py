"""Task FailJob (compensation): record why, the log tail and partial checkpoints."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "fail_job", lambda event: wiring.training_service().fail_job(event["jobId"], event.get("error"))
)
