"""Task RecordUsage: account the job's usage to its pool and publish it."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "record_usage", lambda event: wiring.training_service().record_usage(event["jobId"])
)
