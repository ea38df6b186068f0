"""Fail closed in the operator actions: what Rollout cannot prove it may do, it refuses, with why.

Each test here names a way the actions could have let something through (a rollback to a version
no release put live, an approval that names no person, an unbounded reason, an unreadable time,
a malformed Slack signature) and shows the refusal."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

import pytest

from rollout import rollback
from rollout.actions import RefusedAction
from rollout.ledger import Release
from rollout.states import State
from rollout.targets import AliasRouting, ManagedFunction
from rollout.transitions import ReleaseContext


def rel(n: int, state: State, target: str, current: str = "") -> Release:
    return Release(
        function="fn",
        release_id=f"{n:013x}aaaaaaaaaa",
        state=state,
        target_version=target,
        current_version=current,
        alias="live",
        received_at=f"2026-11-28T10:{n:02d}:00.000Z",
        code_sha256=f"sha-of-v{target}",
    )


# --- rollback --to: only to a version a release put live -----------------------------------------------
class RollbackLedger:
    def __init__(self, releases: list[Release]) -> None:
        self._releases = releases
        self.created: list[Release] = []

    def releases(self, function: str, limit: int = 50) -> list[Release]:
        return sorted(self._releases, key=lambda r: r.order, reverse=True)[:limit]

    def get_lock(self, function: str) -> None:
        return None

    def create(self, release: Release) -> Release:
        self.created.append(release)
        return release


@pytest.fixture
def rollback_world(monkeypatch: pytest.MonkeyPatch) -> RollbackLedger:
    """v1 bootstrapped, v2 succeeded, v3 failed its canary (rolled back), v4 live; all published."""
    ledger = RollbackLedger(
        [
            rel(1, State.BOOTSTRAPPED, "1"),
            rel(2, State.SUCCEEDED, "2", "1"),
            rel(3, State.ROLLED_BACK, "3", "2"),
            rel(4, State.SUCCEEDED, "4", "2"),
        ]
    )
    managed = ManagedFunction(name="fn", alias="live", deployment_config="CodeDeployDefault.LambdaAllAtOnce")
    monkeypatch.setattr(rollback.lambda_ops, "get_managed_function", lambda name, config: managed)
    monkeypatch.setattr(rollback.lambda_ops, "get_alias", lambda fn, alias: AliasRouting("4", name="live"))
    monkeypatch.setattr(rollback.lambda_ops, "version_exists", lambda fn, version: version in "1234")
    monkeypatch.setattr(rollback.lambda_ops, "code_sha256", lambda fn, version: f"sha-of-v{version}")
    monkeypatch.setattr(rollback.codedeploy_ops, "active_deployments", lambda app, group: [])
    monkeypatch.setattr(rollback.starter, "start_release", lambda ctx, release: release)
    return ledger


def _rollback_ctx(ledger: RollbackLedger) -> ReleaseContext:
    settings = SimpleNamespace(default_deployment_config="x", codedeploy_application="app")
    return ReleaseContext(ledger=cast(Any, ledger), settings=cast(Any, settings), notifier=cast(Any, None))


def test_a_rollback_to_a_version_that_never_went_live_is_refused(rollback_world: RollbackLedger) -> None:
    request = rollback.RollbackRequest("fn", "arn:aws:iam::1:user/alice", "v4 is bad", to_version="3")
    with pytest.raises(RefusedAction, match="version 3 of fn never went live"):
        rollback.request_rollback(_rollback_ctx(rollback_world), request)
    assert rollback_world.created == []  # nothing recorded, nothing started


def test_a_rollback_to_a_version_that_went_live_is_recorded(rollback_world: RollbackLedger) -> None:
    request = rollback.RollbackRequest("fn", "arn:aws:iam::1:user/alice", "v4 is bad", to_version="1")
    started = rollback.request_rollback(_rollback_ctx(rollback_world), request).release
    assert (started.target_version, started.current_version) == ("1", "4")
    assert [r.release_id for r in rollback_world.created] == [started.release_id]


@pytest.mark.parametrize("to_version", ["2", ""])
def test_a_rollback_to_a_version_number_whose_code_is_not_what_went_live_is_refused(
    to_version: str, rollback_world: RollbackLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function deleted and created again under its name (a CloudFormation replacement) numbers its
    versions from 1 again: the ledger's v2 went live, Lambda's v2 now is another build that passed
    nothing. Restoring is returning to the bytes that were live, so a number alone proves nothing."""
    monkeypatch.setattr(
        rollback.lambda_ops,
        "code_sha256",
        lambda fn, version: "sha-of-another-build" if version == "2" else "",
    )
    request = rollback.RollbackRequest("fn", "arn:aws:iam::1:user/alice", "v4 is bad", to_version=to_version)
    with pytest.raises(RefusedAction, match="version 2 of fn is not the code that went live"):
        rollback.request_rollback(_rollback_ctx(rollback_world), request)
    assert rollback_world.created == []  # nothing recorded, nothing started


def test_a_rollback_to_a_version_whose_live_code_was_never_recorded_is_refused(
    rollback_world: RollbackLedger,
) -> None:
    rollback_world._releases[1] = replace(rollback_world._releases[1], code_sha256="")
    request = rollback.RollbackRequest("fn", "arn:aws:iam::1:user/alice", "v4 is bad", to_version="2")
    with pytest.raises(RefusedAction, match="recorded no code fingerprint"):
        rollback.request_rollback(_rollback_ctx(rollback_world), request)
    assert rollback_world.created == []


# --- approvals: only a person approves or rejects --------------------------------------------------------
@pytest.mark.parametrize("action", ["approve", "reject", "abort", "rollback"])
def test_rollout_itself_never_approves_rejects_aborts_or_rolls_back(
    action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconciler's identity expires gates and reports recorded answers; an approval recorded as
    Rollout's would say "nobody answered in time" of a deployment someone let through."""
    from rollout import approvals

    def no_aws(deployment_id: str) -> Any:
        raise AssertionError("refused before anything is read")

    monkeypatch.setattr(approvals, "_deployment", no_aws)
    event = {"action": action, "deployment_id": "d-ABCDEFGHI", "by": {"kind": "rollout", "id": "reconciler"}}
    ctx = ReleaseContext(ledger=cast(Any, None), settings=cast(Any, None), notifier=cast(Any, None))
    answer = approvals.act(ctx, approvals.ActionRequest.parse({**event, "text": "why"}))
    assert answer == {
        "ok": False,
        "refused": "bad_request",
        "reason": f"only a person may {action} a deployment",
    }


# --- bounded input: a reason is a sentence -----------------------------------------------------------------
LONG = "x" * 501


def test_a_rollback_with_an_unbounded_reason_is_refused_before_anything_is_read(
    rollback_world: RollbackLedger,
) -> None:
    from rollout.errors import Rejected

    request = rollback.RollbackRequest("fn", "arn:aws:iam::1:user/alice", LONG)
    with pytest.raises(Rejected, match="at most 500"):
        rollback.request_rollback(_rollback_ctx(rollback_world), request)
    assert rollback_world.created == []
    ok = rollback.RollbackRequest("fn", "alice", "  v4\n breaks   checkout ")
    assert (
        rollback.request_rollback(_rollback_ctx(rollback_world), ok).release.message == "v4 breaks checkout"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["freeze", "orders", "--reason", LONG],
        ["rollback", "orders", "--reason", LONG],
        ["freeze", "orders", "--reason", "x", "--until", "99999999999d"],
    ],
)
def test_the_cli_refuses_an_unbounded_reason_or_time_before_any_aws_call(args: list[str]) -> None:
    import json

    from typer.testing import CliRunner

    from cli.errors import ExitCode
    from cli.main import app

    result = CliRunner().invoke(app, [*args, "--json", "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == ExitCode.USAGE, result.output
    message = json.loads(result.stdout)["error"]["message"]
    assert "at most 500" in message or "not an ISO 8601 time" in message


# --- gate deadlines: a time without a zone is unprovable -----------------------------------------------
def test_a_deadline_or_a_clock_without_a_zone_is_never_approved_and_always_expires() -> None:
    from datetime import UTC, datetime

    from rollout import gates

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    gate = gates.open_gate({"before": "traffic", "timeout_minutes": 30}, "d-AAAAAAAAA", "x-1", now, now)
    gate.deadline_at = "2026-11-28T13:00:00"  # naive: the hour it names is in no known zone
    assert "expired" in gates.refusal(gate, "d-AAAAAAAAA", "approve", now)
    assert gates.refusal(gate, "d-AAAAAAAAA", "expire", now) == "" and gates.due(gate, now)
    fresh = gates.open_gate({"before": "traffic", "timeout_minutes": 30}, "d-AAAAAAAAA", "x-1", now, now)
    naive_clock = now.replace(tzinfo=None)
    assert "expired" in gates.refusal(fresh, "d-AAAAAAAAA", "reject", naive_clock)
    assert gates.due(fresh, naive_clock)


def test_codedeploys_clock_in_the_zone_minus_0000_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from rollout import codedeploy_ops

    answer = {
        "deploymentInfo": {"deploymentId": "d-AAAAAAAAA"},
        "ResponseMetadata": {"HTTPHeaders": {"date": "Sat, 28 Nov 2026 12:00:00 -0000"}},
    }
    client = SimpleNamespace(get_deployment=lambda deploymentId: answer)
    monkeypatch.setattr(codedeploy_ops.aws, "client", lambda service: client)
    _, clock = codedeploy_ops.deployment_and_clock("d-AAAAAAAAA")
    assert clock == datetime(2026, 11, 28, 12, 0, tzinfo=UTC) and clock.tzinfo is not None


# --- Slack: a malformed signature, timestamp or body is refused (401/400), never a crash ---------------
@pytest.mark.parametrize(
    ("headers", "body", "status", "words"),
    [
        ({"x-slack-signature": "v0=" + "é" * 64}, None, 401, "signature is malformed"),
        ({"x-slack-signature": "v0=" + "A" * 64}, None, 401, "signature is malformed"),
        ({"x-slack-request-timestamp": "1_700_000_000"}, None, 401, "not a number"),
        ({"x-slack-request-timestamp": "\u0661\u0667" + "\u0660" * 8}, None, 401, "not a number"),
        ({}, "payload=\ud800", 400, "not valid UTF-8"),
    ],
)
def test_a_malformed_slack_request_is_refused_not_crashed(
    headers: dict[str, str], body: str | None, status: int, words: str
) -> None:
    from slack_sdk.signature import SignatureVerifier

    from rollout import slack_interactions as si

    secret, now, text = "s3cret", 1_700_000_000, "payload=%7B%7D"
    signed = {
        "x-slack-request-timestamp": str(now),
        "x-slack-signature": SignatureVerifier(secret).generate_signature(timestamp=str(now), body=text),
    }
    event = {
        "headers": {**signed, **headers},
        "requestContext": {"http": {"method": "POST"}},
        "isBase64Encoded": False,
        "body": text if body is None else body,
    }
    with pytest.raises(si.Refused) as refused:
        si.verify(si.SignedRequest.from_function_url_event(event), secret, lambda: float(now))
    assert (refused.value.status, words in refused.value.reason) == (status, True), refused.value.reason


# --- pre-flight: a provisioned-concurrency answer without a status is not READY ------------------------
def test_a_provisioned_concurrency_configuration_without_a_status_holds_the_shift() -> None:
    from rollout.actions import concurrency_hold_reason

    assert concurrency_hold_reason("live", None) == ""  # no configuration: nothing to wait for
    assert "in an unknown state" in concurrency_hold_reason("live", {})
