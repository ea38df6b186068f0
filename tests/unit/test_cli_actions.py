"""`rollout freeze`, `unfreeze` and `rollback`: bad input is refused before any AWS call (exit 2)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from cli.errors import ExitCode
from cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["freeze", "--reason", "x"], "name at least one function"),
        (["freeze", "orders", "--all", "--reason", "x"], "not both"),
        (["freeze", "orders"], "needs a --reason"),
        (["freeze", "orders", "--reason", "x", "--until", "soon"], "not an ISO 8601 time"),
        (["freeze", "orders", "--reason", "x", "--until", "2020-01-01T00:00:00Z"], "already passed"),
        (["unfreeze"], "name at least one function"),
        # A function named ALL is the ledger's every-function scope: unfreezing "it" would end a freeze
        # of every function and start their held uploads.
        (["freeze", "ALL", "--reason", "x"], "use --all"),
        (["unfreeze", "ALL"], "use --all"),
        (["unfreeze", "orders", "ALL"], "use --all"),
    ],
)
def test_bad_freeze_arguments_are_usage_errors(args: list[str], words: str) -> None:
    result = runner.invoke(app, [*args, "--json", "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == ExitCode.USAGE, result.output
    error = json.loads(result.stdout)["error"]
    assert words in error["message"] and error["exit_code"] == ExitCode.USAGE


def test_every_action_takes_json() -> None:
    for command in ("rollback", "freeze", "unfreeze"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--json" in result.output


@pytest.mark.parametrize("deployment_id", ["d-ABCDEFGH1\n", "d-abcdefgh1", "d-ABCDEFGH", " d-ABCDEFGH1"])
def test_approve_refuses_what_is_not_exactly_a_deployment_id_before_any_aws_call(deployment_id: str) -> None:
    from cli.approvals import answer_gate
    from cli.errors import CliError

    with pytest.raises(CliError) as refused:
        answer_gate(object(), "approve", deployment_id, "looks good")  # type: ignore[arg-type]
    assert refused.value.code == ExitCode.USAGE and "is not a deployment id" in str(refused.value)


def test_the_dashboard_cannot_freeze_or_unfreeze_every_function_by_naming_one_all() -> None:
    from cli.actions import freeze_functions, unfreeze_functions
    from cli.errors import CliError

    backend = cast(Any, object())  # refused before any AWS call
    for act in (lambda: freeze_functions(backend, "ALL", "x"), lambda: unfreeze_functions(backend, "ALL")):
        with pytest.raises(CliError) as refused:
            act()
        assert refused.value.code == ExitCode.USAGE and "use --all" in str(refused.value)


def test_an_approval_summary_says_whether_codedeploy_was_told() -> None:
    from cli.approvals import summary

    gate = {"answered_by": {"id": "arn:aws:iam::123456789012:user/alice"}, "position": "traffic"}
    answer = {"deployment_id": "d-1", "function": "orders", "verdict": "Succeeded", "gate": gate}
    assert summary("approve", {**answer, "reported": True}).endswith("CodeDeploy told Succeeded")
    late = summary(
        "approve", {**answer, "reported": False, "note": "CodeDeploy had already closed this step"}
    )
    assert "CodeDeploy told" not in late and late.endswith(
        "CodeDeploy not told (CodeDeploy had already closed this step)"
    )
