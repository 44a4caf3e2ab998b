"""cfn-lint on every synthesized template: no error and no warning, but the ones listed in
IGNORED, each with its reason and the only resource types it is ignored on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cfnlint.api import lint

from .conftest import Synthesized

# The region the templates are linted for (resource types and values valid there).
REGION = "us-east-1"
# rule id -> (the resource types it is ignored on, why).
IGNORED: dict[str, tuple[frozenset[str], str]] = {
    "W3005": (
        frozenset({"AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"}),
        "CDK's lambda.Function and sfn.StateMachine list their execution role in DependsOn "
        "as well as in their Role/RoleArn property (GetAtt), so that the role's default "
        "policy is attached before they are created; the redundant dependency is CDK's, "
        "harmless, and not ours to remove.",
    ),
}


def _problems(template: dict[str, Any]) -> list[str]:
    resources = template.get("Resources", {})
    problems = []
    for match in lint(json.dumps(template), regions=[REGION]):
        path = [str(part) for part in match.path]
        resource_type = (
            resources.get(path[1], {}).get("Type") if path[:1] == ["Resources"] else None
        )
        ignored = IGNORED.get(match.rule.id)
        if ignored is not None and resource_type in ignored[0]:
            continue
        problems.append(f"{match.rule.id} {'/'.join(path)}: {match.message}")
    return problems


@pytest.fixture(scope="module", params=["dev", "prod-mtls"])
def linted(
    request: pytest.FixtureRequest,
    synth: Synthesized,
    synth_prod_mtls: Synthesized,
) -> Synthesized:
    return synth if request.param == "dev" else synth_prod_mtls


def test_cfn_lint_finds_no_error_or_warning_in_any_stack(linted: Synthesized) -> None:
    problems = {stack.stack_name: _problems(stack.template) for stack in linted.assembly.stacks}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_linter_reports_a_broken_template(
    synth_env: Callable[[str | None], Synthesized],
) -> None:
    # Given the dev data stack with a table whose key schema names an undefined attribute
    template = json.loads(json.dumps(synth_env(None).template("data").to_json()))
    table = next(r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table")
    table["Properties"]["BillingMode"] = "FREE"
    # Then cfn-lint reports it
    assert any("FREE" in problem for problem in _problems(template))
