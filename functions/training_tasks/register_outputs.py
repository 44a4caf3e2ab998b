"""Task RegisterOutputs: hash and register outputs, register the model (or attest)."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "register_outputs", lambda event: wiring.training_service().register_outputs(event["jobId"])
)
