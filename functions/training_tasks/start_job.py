"""Task StartTraining: stage the inputs, create the SageMaker training job."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "start_job", lambda event: wiring.training_service().start_training(event["jobId"])
)
