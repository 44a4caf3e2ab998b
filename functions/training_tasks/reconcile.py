"""Scheduled (every 5 minutes): release compute reservations no running training job holds."""

from datetime import timedelta

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "reconcile", lambda event: wiring.training_service().reconcile(timedelta(minutes=15))
)
