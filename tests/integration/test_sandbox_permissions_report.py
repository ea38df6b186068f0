"""The permissions report: usage read from the sandbox's access log, and the rules that make it fail."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.permissions_report import Grant, read_log, render

ROLE = "arn:aws:iam::123456789012:role/e2e-releases-HookRole-ABCDEFGHIJKL"
TEST_ROLE = "arn:aws:iam::123456789012:role/healthy-b494d7-role"


def write_log(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def record(principal: str, action: str, allowed: bool, statements: list, count: int = 1) -> dict:
    return {
        "principal": principal,
        "action": action,
        "resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "allowed": allowed,
        "reason": "allowed" if allowed else "implicit-deny",
        "statements": statements,
        "count": count,
    }


def grant(action: str, sid: str = "Invoke") -> Grant:
    return Grant("HookRole", "validate-deployments", sid, 0, action, ["*"], None)


def test_usage_is_counted_per_template_role_and_statement(tmp_path):
    log = write_log(
        tmp_path / "log.jsonl",
        [
            record(ROLE, "lambda:InvokeFunction", True, [["inline:validate-deployments", 0, "Invoke"]], 3),
            record(TEST_ROLE, "logs:CreateLogStream", False, [], 5),
        ],
    )
    by_role, others = read_log(log, {}, {"HookRole"})
    usage = by_role["HookRole"]["lambda:InvokeFunction"]
    assert (usage.allowed, usage.refused, usage.statements) == (3, 0, {("validate-deployments", "Invoke")})
    assert others["a test-made role logs:CreateLogStream"].refused == 5


def test_an_unused_grant_without_a_reason_and_a_refusal_fail_the_report(tmp_path):
    log = write_log(
        tmp_path / "log.jsonl",
        [
            record(ROLE, "lambda:InvokeFunction", True, [["inline:validate-deployments", 0, "Invoke"]]),
            record(ROLE, "codedeploy:GetDeployment", False, []),
        ],
    )
    by_role, others = read_log(log, {}, {"HookRole"})
    grants = {"HookRole": [grant("lambda:InvokeFunction"), grant("lambda:GetAlias")]}
    document, problems = render(grants, by_role, others)
    assert any("lambda:GetAlias" in p and "no reason" in p for p in problems)
    assert any("codedeploy:GetDeployment was refused" in p for p in problems)
    assert "| validate-deployments / Invoke | `lambda:InvokeFunction` | `*` | yes |  |" in document


def test_a_clean_run_passes(tmp_path):
    log = write_log(
        tmp_path / "log.jsonl",
        [record(ROLE, "lambda:InvokeFunction", True, [["inline:validate-deployments", 0, "Invoke"]])],
    )
    by_role, others = read_log(log, {}, {"HookRole"})
    _, problems = render({"HookRole": [grant("lambda:InvokeFunction")]}, by_role, others)
    assert problems == []
