"""Task CheckPolicy: SentinelNet's pre-train decision (PII approvals, licences)."""

from modelops import wiring
from modelops.tasks import task_handler

handler = task_handler(
    "check_policy", lambda event: wiring.training_service().check_policy(event["jobId"])
)
