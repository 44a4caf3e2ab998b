"""The state machines pass the offline lint, and the lint catches what it promises to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelops import platform
from scripts.lint_asl import ROOT, lint

MACHINE = platform.TRAIN_STATE_MACHINE


def _definition() -> dict[str, Any]:
    return dict(json.loads((ROOT / "statemachines" / MACHINE.definition).read_text()))


def _lint(definition: dict[str, Any]) -> list[str]:
    return lint(json.dumps(definition), MACHINE)


def test_every_state_machine_passes_the_lint() -> None:
    for machine in platform.STATE_MACHINES:
        text = (Path(ROOT) / "statemachines" / machine.definition).read_text()
        assert lint(text, machine) == []


def test_lint_reports_a_next_that_names_no_state() -> None:
    definition = _definition()
    definition["States"]["CheckPolicy"]["Next"] = "NoSuchState"
    assert "CheckPolicy: goes to 'NoSuchState', which is not a state" in _lint(definition)


def test_lint_reports_error_names_nothing_raises() -> None:
    definition = _definition()
    definition["States"]["CheckPolicy"]["Retry"][0]["ErrorEquals"].append("PolicyDenid")
    assert "CheckPolicy: ErrorEquals 'PolicyDenid' is raised by nothing" in _lint(definition)


def test_lint_accepts_handler_error_class_names() -> None:
    definition = _definition()
    definition["States"]["CheckPolicy"]["Retry"][0]["ErrorEquals"].append("PolicyDenied")
    assert _lint(definition) == []


def test_lint_reports_placeholders_nobody_fills_and_tasks_never_invoked() -> None:
    definition = _definition()
    definition["States"]["CheckPolicy"]["Parameters"]["FunctionName"] = "${CheckPolicyArn}"
    problems = _lint(definition)
    assert "placeholder ${CheckPolicyArn} is filled by nobody" in problems
    assert "task train-check-policy is never invoked" in problems


def test_lint_reports_unreachable_states_and_dead_ends() -> None:
    definition = _definition()
    definition["States"]["Orphan"] = {"Type": "Pass"}
    problems = _lint(definition)
    assert "Orphan: unreachable" in problems
    assert "Orphan: has neither Next nor End" in problems


@pytest.mark.parametrize("task", MACHINE.tasks)
def test_every_task_function_is_declared_with_a_handler(task: str) -> None:
    fn = platform.function(task)
    module = fn.handler.rpartition(".")[0].replace(".", "/")
    assert (ROOT / "functions" / f"{module}.py").is_file()
