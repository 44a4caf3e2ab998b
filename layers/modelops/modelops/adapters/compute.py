"""The default ``ComputeAllocator``: grants every request, meters nothing.

A clearly named placeholder until the compute issue brings pools, quotas and GPU-hour
accounting: it grants every request (SageMaker's own account quotas still apply in AWS),
and its grant ids are derived from the job so that retries get the same grant. Usage is
still recorded on the job and published as an event by the training service.
"""

from __future__ import annotations

from modelops.domain.training import ComputeRequirements, Usage


class UnmeteredCompute:
    def request(self, job_id: str, requirements: ComputeRequirements) -> str:
        return f"unmetered:{requirements.pool}:{job_id}"

    def record_usage(self, grant_id: str, job_id: str, usage: Usage) -> None:
        """Nothing to account against: the default pool has no quota."""

    def release(self, grant_id: str) -> None:
        """Nothing to give back: the default pool holds no capacity."""
