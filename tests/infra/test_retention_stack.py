"""Retention in the stacks: the artifact bucket's lifecycle rules are the retention table's
(modelops.platform.RETENTION_CLASSES), and the retention job is a scheduled function."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import CfnElement
from aws_cdk.assertions import Match, Template

from modelops import platform
from stacks.data_stack import DataStack

from .conftest import Synthesized


def _lifecycle_rules(synth: Synthesized, template: Template, logical_id: str) -> dict[str, Any]:
    stack = synth.stack("data")
    assert isinstance(stack, DataStack)
    child = stack.buckets[logical_id].node.default_child
    assert isinstance(child, CfnElement)
    props = template.to_json()["Resources"][stack.get_logical_id(child)]["Properties"]
    return {rule["Id"]: rule for rule in props.get("LifecycleConfiguration", {}).get("Rules", [])}


@pytest.mark.parametrize(
    "retention",
    [c for c in platform.RETENTION_CLASSES if c.prefixes],
    ids=lambda c: c.name,
)
def test_each_retention_class_with_prefixes_archives_and_expires_them_as_the_table_says(
    synth: Synthesized, data_template: Template, retention: platform.RetentionClass
) -> None:
    rules = _lifecycle_rules(synth, data_template, retention.bucket)

    for index, prefix in enumerate(retention.prefixes):
        rule = rules[f"retention-{retention.name}-{index}"]
        assert rule["Prefix"] == prefix and rule["Status"] == "Enabled"
        if retention.archive_after_days:
            assert rule["Transitions"] == [
                {
                    "StorageClass": retention.storage_class,
                    "TransitionInDays": retention.archive_after_days,
                }
            ]
        else:
            assert "Transitions" not in rule
        if retention.expire_after_days:
            assert rule["ExpirationInDays"] == retention.expire_after_days
        else:
            assert "ExpirationInDays" not in rule


def test_no_lifecycle_rule_ever_expires_content_addressed_blobs_or_training_files(
    synth: Synthesized, data_template: Template
) -> None:
    # Blobs are shared between artifacts and carry the registry's records: only the
    # retention job deletes them, after a tombstone is in a signed checkpoint.
    rules = _lifecycle_rules(synth, data_template, platform.ARTIFACT_BUCKET.logical_id)
    expiring = {r.get("Prefix", "") for r in rules.values() if "ExpirationInDays" in r}

    assert not any(p.startswith(("blobs/", "training/")) or p == "" for p in expiring)


def test_classes_the_job_expires_have_no_lifecycle_rule_that_could_delete_first() -> None:
    job_classes = [platform.RETENTION_CHECKPOINTS, platform.RETENTION_DATASETS]
    assert all(not c.prefixes for c in job_classes)
    assert platform.RETENTION_CHECKPOINTS.expire_after_days is not None


def test_the_retention_job_runs_daily_with_delete_rights_on_the_artifact_bucket(
    service_template: Template,
) -> None:
    spec = platform.RETENTION_RUN
    assert spec.schedule == "rate(1 day)"
    assert spec.buckets[platform.ARTIFACT_BUCKET.logical_id] is platform.Access.READ_WRITE
    service_template.has_resource_properties(
        "AWS::Events::Rule",
        {"ScheduleExpression": "rate(1 day)", "State": "ENABLED", "Targets": Match.any_value()},
    )
