"""Task RequestCompute: a grant from the job's compute pool."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "request_compute", lambda event: wiring.training_service().request_compute(event["jobId"])
)
