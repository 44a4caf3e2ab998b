"""Offline lint of the state machines in ``statemachines/`` against the platform.

For each ``modelops.platform.STATE_MACHINES`` entry: the definition parses; ``StartAt``,
every ``Next``, ``Default`` and ``Catch`` target exist; every state is reachable and every
non-terminal state leads somewhere; the ``${...}`` placeholders are exactly those CDK and the
local cloud fill (one per task function); every task function exists in the platform with a
handler module on disk; and every ``ErrorEquals`` name is one Step Functions defines, a
Lambda service or runtime error, or an error class the handlers raise (``modelops.errors``).

Run: ``python -m scripts.lint_asl`` (exit status 1 and one line per problem if any).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from modelops import errors, platform

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")
# https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
STATES_ERRORS = frozenset(
    {
        "States.ALL",
        "States.DataLimitExceeded",
        "States.ExceedToleratedFailureThreshold",
        "States.HeartbeatTimeout",
        "States.Http.Socket",
        "States.IntrinsicFailure",
        "States.ItemReaderFailed",
        "States.NoChoiceMatched",
        "States.ParameterPathFailure",
        "States.Permissions",
        "States.QueryEvaluationError",
        "States.ResultPathMatchFailure",
        "States.ResultWriterFailed",
        "States.Runtime",
        "States.TaskFailed",
        "States.Timeout",
        "States.BranchFailed",
    }
)
# Errors the Lambda service raises to Step Functions (lambda:invoke integration).
LAMBDA_ERRORS = frozenset(
    {
        "Lambda.AWSLambdaException",
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.Unknown",
    }
)
# Errors of the Lambda runtime itself, reported as the function error's type: the execution
# environment died mid-invocation (Runtime.ExitError) or ran past its timeout.
RUNTIME_ERRORS = frozenset({"Runtime.ExitError", "Sandbox.Timedout"})
TERMINAL = {"Succeed", "Fail"}


def handler_errors() -> frozenset[str]:
    """Class names of the typed errors handlers raise (the Lambda error type)."""
    return frozenset(cls.__name__ for cls in errors._all_error_classes())


def _targets(state: dict[str, Any]) -> list[str]:
    found = [state[k] for k in ("Next", "Default") if k in state]
    found += [c["Next"] for c in state.get("Catch", ())]
    found += [c["Next"] for c in state.get("Choices", ())]
    return found


def lint(text: str, machine: platform.StateMachineSpec) -> list[str]:
    problems: list[str] = []
    try:
        definition = json.loads(text)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    states: dict[str, dict[str, Any]] = definition.get("States") or {}
    known = STATES_ERRORS | LAMBDA_ERRORS | RUNTIME_ERRORS | handler_errors()
    if definition.get("StartAt") not in states:
        problems.append(f"StartAt {definition.get('StartAt')!r} is not a state")
    for name, state in states.items():
        for target in _targets(state):
            if target not in states:
                problems.append(f"{name}: goes to {target!r}, which is not a state")
        leads_on = state.get("Type") in {*TERMINAL, "Choice"} or "Next" in state
        if not leads_on and not state.get("End"):
            problems.append(f"{name}: has neither Next nor End")
        for rule in [*state.get("Retry", ()), *state.get("Catch", ())]:
            for error in rule.get("ErrorEquals", ()):
                if error not in known:
                    problems.append(f"{name}: ErrorEquals {error!r} is raised by nothing")
    seen: set[str] = set()
    frontier = [str(definition.get("StartAt"))]
    while frontier:
        current = frontier.pop()
        if current in seen or current not in states:
            continue
        seen.add(current)
        frontier.extend(_targets(states[current]))
    problems += [f"{name}: unreachable" for name in states if name not in seen]

    expected = {platform.placeholder(task): task for task in machine.tasks}
    used = set(PLACEHOLDER.findall(text))
    problems += [f"placeholder ${{{p}}} is filled by nobody" for p in sorted(used - set(expected))]
    problems += [f"task {expected[p]} is never invoked" for p in sorted(set(expected) - used)]
    functions = {fn.name: fn for fn in platform.FUNCTIONS}
    for task in machine.tasks:
        fn = functions.get(task)
        if fn is None:
            problems.append(f"task {task} is not a platform function")
            continue
        module, _, attribute = fn.handler.rpartition(".")
        source = ROOT / "functions" / (module.replace(".", "/") + ".py")
        defines = re.compile(rf"^(def {attribute}\(|{attribute} = )", re.MULTILINE)
        if not source.is_file() or not defines.search(source.read_text(encoding="utf-8")):
            problems.append(f"task {task}: handler {fn.handler} not found in functions/")
    return problems


def main() -> int:
    failed = False
    for machine in platform.STATE_MACHINES:
        path = ROOT / "statemachines" / machine.definition
        for problem in lint(path.read_text(encoding="utf-8"), machine):
            print(f"{path.relative_to(ROOT)}: {problem}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
