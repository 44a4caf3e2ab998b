"""Task ReleaseCompute: give the job's compute grant back."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "release_compute", lambda event: wiring.training_service().release_compute(event["jobId"])
)
