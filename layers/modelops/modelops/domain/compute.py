"""SageMaker training instance types: what a compute request may ask for.

The catalog lists the instance types the platform offers for training with their vCPUs,
memory and accelerators (AWS publishes these per type). A request naming a type not listed
here, or asking for more GPUs than the type carries, is refused before anything starts.
GPU-hours are accounted from it: instances x GPUs per instance x billable hours.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: int
    gpus: int = 0
    gpu_model: str = ""


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        InstanceType("ml.m5.large", 2, 8),
        InstanceType("ml.m5.xlarge", 4, 16),
        InstanceType("ml.m5.2xlarge", 8, 32),
        InstanceType("ml.m5.4xlarge", 16, 64),
        InstanceType("ml.c5.xlarge", 4, 8),
        InstanceType("ml.c5.2xlarge", 8, 16),
        InstanceType("ml.c5.4xlarge", 16, 32),
        InstanceType("ml.g4dn.xlarge", 4, 16, 1, "NVIDIA T4"),
        InstanceType("ml.g4dn.12xlarge", 48, 192, 4, "NVIDIA T4"),
        InstanceType("ml.g5.xlarge", 4, 16, 1, "NVIDIA A10G"),
        InstanceType("ml.g5.2xlarge", 8, 32, 1, "NVIDIA A10G"),
        InstanceType("ml.g5.12xlarge", 48, 192, 4, "NVIDIA A10G"),
        InstanceType("ml.g5.48xlarge", 192, 768, 8, "NVIDIA A10G"),
        InstanceType("ml.p3.2xlarge", 8, 61, 1, "NVIDIA V100"),
        InstanceType("ml.p3.16xlarge", 64, 488, 8, "NVIDIA V100"),
        InstanceType("ml.p4d.24xlarge", 96, 1152, 8, "NVIDIA A100"),
        InstanceType("ml.p5.48xlarge", 192, 2048, 8, "NVIDIA H100"),
    )
}

# SageMaker's limits for CreateTrainingJob.
MAX_INSTANCE_COUNT = 100
MAX_RUNTIME_SECONDS = 28 * 24 * 3600
MAX_VOLUME_GB = 16384


def gpu_hours(instance_type: str, instance_count: int, billable_seconds: int) -> float:
    """GPU-hours a job used; zero on CPU instances."""
    gpus = INSTANCE_TYPES[instance_type].gpus if instance_type in INSTANCE_TYPES else 0
    return round(instance_count * gpus * billable_seconds / 3600, 6)
