"""Approval gates end to end: both positions approved, rejected and timed out, from the CLI and from
Slack's buttons (the stack's SlackInteractions function URL, served by the sandbox).

At 30x a gate of 30 minutes stays open a real minute and CodeDeploy's one-hour hook limit is two
real minutes; the reconciler runs every ten real seconds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials
from typer.testing import CliRunner

from cli.main import app
from rollout.ledger import Release
from tests.support.e2e_world import E2E_CHECKS, RolloutWorld, rollout_world, wait_for
from tests.support.identity_proofs import signed_proof

pytestmark = pytest.mark.e2e

SPEED = 30.0
SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
APPROVER = "U0APPROVER"


@pytest.fixture(scope="module")
def world() -> Iterator[RolloutWorld]:
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    with rollout_world(
        "e2e-gates", SPEED, slack_signing_secret=SIGNING_SECRET, slack_approvers=f"{APPROVER}, U0OTHER"
    ) as running:
        yield running
        running.sb.faults.clear()


def gated(world: RolloutWorld, position: str, timeout_minutes: int = 30) -> tuple[str, Release]:
    """A function on v1 whose v2 waits at its gate; returns the function and the awaiting release."""
    function = world.create_target(f"gate-{position[:4]}", config="AllAtOnce")
    first = world.wait_release(world.release_build(function, "healthy", "v1"))
    assert str(first.state) == "BOOTSTRAPPED", first.reason
    checks = {**E2E_CHECKS, "approval": {"before": position, "timeout_minutes": timeout_minutes}}
    upload = world.release_build(function, "healthy", "v2", checks=checks)

    def awaiting() -> Release | None:
        release = world.release_of(upload)
        if release is not None and (release.approval or {}).get("status") == "AWAITING":
            return release
        assert release is None or not release.is_terminal, (release.state, release.reason)
        return None

    return function, wait_for(awaiting, 60, f"{function}'s gate to open")


def cli(world: RolloutWorld, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        app, [*args, "--stack", world.stack_name, "--endpoint", world.sb.endpoint_url, "--json"]
    )
    text = result.stdout
    return result.exit_code, json.JSONDecoder().raw_decode(text[text.index("{") :])[0]


def ended(world: RolloutWorld, function: str, release: Release) -> Release:
    def done() -> Release | None:
        current = world.release_of_id(function, release.release_id)
        return current if current.is_terminal else None

    return wait_for(done, 120, f"release {release.release_id} to end")


def kinds(world: RolloutWorld, function: str, wanted: list[str]) -> dict[str, dict[str, Any]]:
    notices = world.wait_notices(function, wanted)
    return {n.message["kind"]: n.message for n in notices if n.message["kind"] in wanted}


# --- before traffic ---------------------------------------------------------------------------------
def test_a_gate_before_traffic_holds_the_shift_until_approved(world: RolloutWorld) -> None:
    function, release = gated(world, "traffic")
    # The pre-traffic checks passed, and no traffic moved while the gate waits.
    assert release.hook_results["pre_traffic"]["verdict"] == "Succeeded"
    assert release.hook_results["pre_traffic"]["awaiting_approval"] is True
    assert world.alias_version(function) == "1" and world.alias_weights(function) == {}
    requested = kinds(world, function, ["approval.requested"])["approval.requested"]
    assert requested["approval"]["position"] == "traffic" and "execution_id" not in json.dumps(requested)

    code, answer = cli(world, "approve", release.deployment_id, "--comment", "looks good")
    assert code == 0, answer
    assert answer["verdict"] == "Succeeded" and answer["reported"] is True
    final = ended(world, function, release)
    assert str(final.state) == "SUCCEEDED", final.reason
    assert world.alias_version(function) == "2"
    gate = final.approval or {}
    assert gate["status"] == "APPROVED" and gate["comment"] == "looks good"
    # The approver is whom STS names for the CLI's signed proof: the caller's own ARN.
    caller = world.client("sts").get_caller_identity()["Arn"]
    assert gate["answered_by"]["kind"] == "aws" and gate["answered_by"]["id"] == caller
    approved = kinds(world, function, ["approval.approved"])["approval.approved"]
    assert (
        gate["answered_by"]["id"] in approved["title"]
        or approved["approval"]["by"] == gate["answered_by"]["id"]
    )

    # The gate is answered once: a second answer is refused (the deployment has ended, too).
    code, refused = cli(world, "approve", release.deployment_id)
    assert code == 6, refused


@pytest.mark.parametrize(
    ("forged", "proof"),
    [
        ({"kind": "aws", "id": "arn:aws:iam::123456789012:user/ceo"}, "no_proof"),
        ({"kind": "slack", "id": APPROVER, "name": "ops"}, "not_signed_by_slack"),
    ],
    ids=["aws", "slack"],
)
def test_an_approver_named_without_proof_is_refused(
    world: RolloutWorld, forged: dict[str, str], proof: str
) -> None:
    """Invoking DeploymentActions directly with a forged `by` and no signed proof changes nothing: not
    an AWS principal without STS's word, not a Slack user (even one on the allow-list) without Slack's."""
    function, release = gated(world, "traffic")
    event = {"action": "approve", "deployment_id": release.deployment_id, "by": forged}
    response = world.client("lambda").invoke(
        FunctionName=world.outputs["DeploymentActionsName"], Payload=json.dumps(event).encode()
    )
    answer = json.loads(response["Payload"].read())
    assert answer["ok"] is False and answer["refused"] == "unauthenticated" and answer["proof"] == proof
    assert (world.release_of_id(function, release.release_id).approval or {})["status"] == "AWAITING"
    code, approved = cli(world, "approve", release.deployment_id)
    assert code == 0, approved


def approval_signed_by(world: RolloutWorld, issued: Any, deployment_id: str) -> dict[str, Any]:
    """An identity proof for approving `deployment_id`, signed with role credentials the sandbox issued,
    for the STS endpoint DeploymentActions uses (the sandbox's)."""
    return signed_proof(
        "approve",
        deployment_id,
        url=world.sb.endpoint_url + "/",
        credentials=Credentials(issued.access_key_id, issued.secret_access_key, issued.session_token),
        region=world.sb.region,
    )


def test_a_proof_signed_with_one_of_rollouts_own_roles_is_refused_and_a_persons_role_approves(
    world: RolloutWorld,
) -> None:
    """Code running in a Rollout function that may invoke DeploymentActions (a compromised dependency, a
    bug) signs a proof with its own execution role's credentials, which STS vouches for: that is Rollout,
    not a person. A person's own role session is accepted."""
    function, release = gated(world, "traffic")
    deployment_id = release.deployment_id
    functions = world.client("lambda")
    for own in ("Reconciler", "SlackInteractions"):
        name = f"{world.stack_name}-{own}"
        role = functions.get_function_configuration(FunctionName=name)["Role"]
        # The credentials Lambda gives that function's code; it invokes DeploymentActions with them too.
        issued = world.sb.iam.issue(role, name)
        event = {
            "action": "approve",
            "deployment_id": deployment_id,
            "by": {"kind": "aws", "id": "arn:aws:iam::123456789012:user/ceo"},
            "proof": approval_signed_by(world, issued, deployment_id),
        }
        as_function = boto3.client(
            "lambda",
            endpoint_url=world.sb.endpoint_url,
            region_name=world.sb.region,
            **issued.boto3_arguments(),
        )
        response = as_function.invoke(
            FunctionName=world.outputs["DeploymentActionsName"], Payload=json.dumps(event).encode()
        )
        answer = json.loads(response["Payload"].read())
        session = f"arn:aws:sts::{world.sb.account_id}:assumed-role/{role.rsplit('/', 1)[-1]}/{name}"
        assert answer == {
            "ok": False,
            "refused": "unauthenticated",
            "reason": f"{session} is one of Rollout's own roles, not a person",
            "proof": "rollout_role",
        }, own
        assert (world.release_of_id(function, release.release_id).approval or {})["status"] == "AWAITING"

    # A release manager's role session (not one of the stack's roles) is a person.
    role = world.client("iam").create_role(
        RoleName=f"{world.stack_name}-release-managers",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": world.sb.account_id}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    proof = approval_signed_by(world, world.sb.iam.issue(role, "alice"), deployment_id)
    event = {
        "action": "approve",
        "deployment_id": deployment_id,
        "by": {"kind": "aws", "id": role},
        "proof": proof,
    }
    response = functions.invoke(
        FunctionName=world.outputs["DeploymentActionsName"], Payload=json.dumps(event).encode()
    )
    answer = json.loads(response["Payload"].read())
    assert answer["ok"] is True and answer["verdict"] == "Succeeded", answer
    final = ended(world, function, release)
    assert str(final.state) == "SUCCEEDED", final.reason
    person = f"arn:aws:sts::{world.sb.account_id}:assumed-role/{world.stack_name}-release-managers/alice"
    assert (final.approval or {})["answered_by"]["id"] == person


def test_a_gate_before_traffic_rejected_rolls_back_without_moving_traffic(world: RolloutWorld) -> None:
    function, release = gated(world, "traffic")
    code, answer = cli(world, "reject", release.deployment_id, "--reason", "release freeze for the sale")
    assert code == 0, answer
    final = ended(world, function, release)
    assert str(final.state) == "ROLLED_BACK", final.reason
    assert "rejected by arn:aws:" in final.reason and "release freeze for the sale" in final.reason
    assert world.alias_version(function) == "1" and world.alias_weights(function) == {}
    assert (final.approval or {})["status"] == "REJECTED"
    notices = kinds(world, function, ["approval.rejected", "deployment.rolled_back"])
    assert "release freeze for the sale" in notices["deployment.rolled_back"]["reason"]["text"]


def test_a_gate_before_traffic_nobody_answers_is_rejected_before_codedeploys_hour(
    world: RolloutWorld,
) -> None:
    function, release = gated(world, "traffic", timeout_minutes=1)
    final = ended(world, function, release)
    assert str(final.state) == "ROLLED_BACK", final.reason
    assert "timed out" in final.reason and "1 minute" in final.reason
    assert (final.approval or {})["status"] == "EXPIRED"
    (deployment,) = [d for d in world.deployments(function) if d["deploymentId"] == release.deployment_id]
    # Rejected by Rollout (the hook reported Failed), not left to CodeDeploy's one-hour timeout.
    assert deployment["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert world.alias_version(function) == "1"
    kinds(world, function, ["approval.expired"])
    # An expired gate cannot be approved any more.
    code, refused = cli(world, "approve", release.deployment_id)
    assert code == 6, refused


# --- before completion ------------------------------------------------------------------------------
def test_a_gate_before_completion_holds_a_fully_shifted_deployment_until_approved(
    world: RolloutWorld,
) -> None:
    function, release = gated(world, "completion")
    # All traffic moved and the post-traffic checks and canary passed; the deployment has not completed.
    assert world.alias_version(function) == "2"
    assert release.hook_results["post_traffic"]["verdict"] == "Succeeded"
    assert release.hook_results["post_traffic"]["canary"] is not None
    (deployment,) = [d for d in world.deployments(function) if d["deploymentId"] == release.deployment_id]
    assert deployment["status"] == "InProgress"

    code, answer = cli(world, "approve", release.deployment_id)
    assert code == 0, answer
    final = ended(world, function, release)
    assert str(final.state) == "SUCCEEDED", final.reason
    assert (final.approval or {})["position"] == "completion"


def test_a_gate_before_completion_rejected_rolls_traffic_back(world: RolloutWorld) -> None:
    function, release = gated(world, "completion")
    code, answer = cli(world, "reject", release.deployment_id, "--reason", "error budget spent")
    assert code == 0, answer
    final = ended(world, function, release)
    assert str(final.state) == "ROLLED_BACK", final.reason
    assert "error budget spent" in final.reason
    wait_for(lambda: world.alias_version(function) == "1" or None, 60, "the alias back on v1")


def test_a_gate_before_completion_nobody_answers_rolls_back(world: RolloutWorld) -> None:
    function, release = gated(world, "completion", timeout_minutes=1)
    final = ended(world, function, release)
    assert str(final.state) == "ROLLED_BACK", final.reason
    assert (final.approval or {})["status"] == "EXPIRED" and "timed out" in final.reason
    wait_for(lambda: world.alias_version(function) == "1" or None, 60, "the alias back on v1")


# --- refusals ---------------------------------------------------------------------------------------
def test_answers_for_a_deployment_without_a_gate_or_malformed_are_refused(world: RolloutWorld) -> None:
    code, refused = cli(world, "approve", "d-NOSUCHDEP")
    assert code == 3, refused
    code, refused = cli(world, "approve", "not-a-deployment")
    assert code == 2, refused


# --- Slack ------------------------------------------------------------------------------------------
def test_an_approval_from_slack_is_verified_allowed_and_answered_in_the_thread(world: RolloutWorld) -> None:
    endpoint = world.outputs["SlackInteractionsUrl"]
    function, release = gated(world, "traffic")
    # The awaiting message carries the buttons.
    text = world.wait_slack(function, ["awaits approval"])
    assert "awaits approval" in text
    posted = [
        p
        for p in world.slack.payloads()
        if "rollout-approve" in json.dumps(p) and release.deployment_id in json.dumps(p)
    ]
    assert posted, "the approval request reached Slack with its buttons"

    click = world.slack.click
    # Refused, nothing done: a bad signature, a stale timestamp, a user not on the allow-list.
    assert click(endpoint, "wrong-secret", "rollout-approve", release.deployment_id, APPROVER)[0] == 401
    stale = int(time.time()) - 600
    assert (
        click(endpoint, SIGNING_SECRET, "rollout-approve", release.deployment_id, APPROVER, timestamp=stale)[
            0
        ]
        == 401
    )
    assert click(endpoint, SIGNING_SECRET, "rollout-unknown", release.deployment_id, APPROVER)[0] == 400
    assert click(endpoint, SIGNING_SECRET, "rollout-approve", release.deployment_id, "U0STRANGER")[0] == 200
    refusal = wait_for(
        lambda: [r for r in world.slack.thread_replies() if "U0STRANGER" in r["text"]], 30, "refusal"
    )
    assert refusal[0]["response_type"] == "ephemeral"
    assert (world.release_of_id(function, release.release_id).approval or {})["status"] == "AWAITING"

    stamp = int(time.time())
    status, _ = click(
        endpoint, SIGNING_SECRET, "rollout-approve", release.deployment_id, APPROVER, timestamp=stamp
    )
    assert status == 200
    # The same signed request again is a replay.
    assert (
        click(endpoint, SIGNING_SECRET, "rollout-approve", release.deployment_id, APPROVER, timestamp=stamp)[
            0
        ]
        == 401
    )

    final = ended(world, function, release)
    assert str(final.state) == "SUCCEEDED", final.reason
    gate = final.approval or {}
    assert gate["answered_by"] == {"kind": "slack", "id": APPROVER, "name": "ops"}
    replies = wait_for(
        lambda: [r for r in world.slack.thread_replies() if "approved by" in r["text"]], 30, "reply"
    )
    assert replies[0]["thread_ts"] == "1700000000.000100" and replies[0]["response_type"] == "in_channel"
    assert release.deployment_id in replies[0]["text"]


def test_a_click_lambda_refuses_to_hand_over_is_answered_and_a_new_click_still_works(
    world: RolloutWorld,
) -> None:
    endpoint = world.outputs["SlackInteractionsUrl"]
    function, release = gated(world, "traffic")
    # Lambda refuses the asynchronous hand-over to DeploymentActions: the clicker hears so at once.
    world.sb.faults.fail("lambda", "Invoke", "TooManyRequestsException", path_contains="-DeploymentActions/")
    try:
        status, _ = world.slack.click(
            endpoint, SIGNING_SECRET, "rollout-approve", release.deployment_id, APPROVER
        )
        assert status == 200
        refused = wait_for(
            lambda: [
                r
                for r in world.slack.thread_replies()
                if release.deployment_id in r["text"] and "could not be handed" in r["text"]
            ],
            30,
            "the clicker told the hand-over failed",
        )
    finally:
        world.sb.faults.clear()
    assert refused[0]["response_type"] == "ephemeral" and "nothing was done" in refused[0]["text"]
    assert (world.release_of_id(function, release.release_id).approval or {})["status"] == "AWAITING"

    # A second click is a new request (Slack's differ); one within the same second would sign alike.
    again = int(time.time()) + 1
    status, _ = world.slack.click(
        endpoint, SIGNING_SECRET, "rollout-approve", release.deployment_id, APPROVER, timestamp=again
    )
    assert status == 200
    final = ended(world, function, release)
    assert str(final.state) == "SUCCEEDED", final.reason
    wait_for(
        lambda: [
            r
            for r in world.slack.thread_replies()
            if release.deployment_id in r["text"] and "approved by" in r["text"]
        ],
        30,
        "the approval's reply in the thread",
    )


def test_abort_from_slack_stops_a_waiting_deployment_and_rolls_back(world: RolloutWorld) -> None:
    endpoint = world.outputs["SlackInteractionsUrl"]
    function, release = gated(world, "traffic")
    status, _ = world.slack.click(endpoint, SIGNING_SECRET, "rollout-abort", release.deployment_id, APPROVER)
    assert status == 200
    final = ended(world, function, release)
    assert str(final.state) == "ROLLED_BACK" and final.reason_code == "MANUAL_STOP", final.reason
    assert f"stopped on request by Slack user ops ({APPROVER})" in final.reason, final.reason
    assert world.alias_version(function) == "1"
    replies = wait_for(
        lambda: [
            r
            for r in world.slack.thread_replies()
            if release.deployment_id in r["text"] and "aborted" in r["text"]
        ],
        30,
        "the abort's reply in the thread",
    )
    assert f"<@{APPROVER}> aborted" in replies[0]["text"]


def test_an_answer_whose_report_failed_is_reported_by_the_reconciler(world: RolloutWorld) -> None:
    function, release = gated(world, "traffic")
    # DeploymentActions records the approval, then CodeDeploy refuses its report once.
    world.sb.faults.fail(
        "codedeploy", "PutLifecycleEventHookExecutionStatus", "AccessDeniedException", count=1
    )
    code, failed = cli(world, "approve", release.deployment_id)
    assert code == 4, failed
    gate = world.release_of_id(function, release.release_id).approval or {}
    assert gate["status"] == "APPROVED" and gate["reported"] is False
    # The reconciler's next run hands the recorded answer back to DeploymentActions, which reports it.
    final = ended(world, function, release)
    assert str(final.state) == "SUCCEEDED", final.reason
    assert (final.approval or {})["reported"] is True


def test_a_slack_answer_whose_report_failed_is_told_pending_not_failed(world: RolloutWorld) -> None:
    endpoint = world.outputs["SlackInteractionsUrl"]
    function, release = gated(world, "traffic")
    world.sb.faults.fail(
        "codedeploy", "PutLifecycleEventHookExecutionStatus", "AccessDeniedException", count=1
    )
    status, _ = world.slack.click(
        endpoint, SIGNING_SECRET, "rollout-approve", release.deployment_id, APPROVER
    )
    assert status == 200
    (reply,) = wait_for(
        lambda: [r for r in world.slack.thread_replies() if release.deployment_id in r["text"]],
        30,
        "the approval's reply in the thread",
    )
    assert f"approved by <@{APPROVER}>" in reply["text"] and "recorded" in reply["text"], reply
    assert "failed" not in reply["text"] and "reports it again" in reply["text"], reply
    final = ended(world, function, release)
    assert str(final.state) == "SUCCEEDED" and (final.approval or {})["reported"] is True, final.reason


def test_roll_back_from_slack_returns_the_live_release_and_refuses_a_stale_click(world: RolloutWorld) -> None:
    endpoint = world.outputs["SlackInteractionsUrl"]
    function = world.create_target("slack-rb", config="AllAtOnce")
    states = [
        str(world.wait_release(world.release_build(function, "healthy", build)).state)
        for build in ("v1", "v2", "v3")
    ]
    assert states == ["BOOTSTRAPPED", "SUCCEEDED", "SUCCEEDED"]
    second, third = sorted(world.releases(function), key=lambda r: r.order)[1:]
    assert world.alias_version(function) == "3"
    # The success message carries Roll back, for its own deployment.
    wait_for(
        lambda: [
            p
            for p in map(json.dumps, world.slack.payloads())
            if "rollout-rollback" in p and third.deployment_id in p
        ],
        30,
        "the success message with its Roll back button",
    )

    # A click on v2's message: v3 went live since, so it is refused and nothing is done.
    status, _ = world.slack.click(
        endpoint, SIGNING_SECRET, "rollout-rollback", second.deployment_id, APPROVER
    )
    assert status == 200
    stale = wait_for(
        lambda: [r for r in world.slack.thread_replies() if second.deployment_id in r["text"]], 30, "refusal"
    )
    assert "refused" in stale[0]["text"] and "no longer the live one" in stale[0]["text"], stale
    assert not [r for r in world.releases(function) if r.kind == "rollback"]
    assert world.alias_version(function) == "3"

    # A click on v3's message rolls the alias back to v2, as `rollout rollback` would.
    status, _ = world.slack.click(endpoint, SIGNING_SECRET, "rollout-rollback", third.deployment_id, APPROVER)
    assert status == 200

    def rolled_back() -> Release | None:
        found = [r for r in world.releases(function) if r.kind == "rollback"]
        return found[0] if found and found[0].is_terminal else None

    back = wait_for(rolled_back, 120, f"the rollback of {function} to end")
    assert str(back.state) == "SUCCEEDED", back.reason
    assert (back.current_version, back.target_version) == ("3", "2")
    assert back.requested_by == f"Slack user ops ({APPROVER})"
    assert back.message == "rolled back from Slack by ops"
    assert world.alias_version(function) == "2" and world.alias_weights(function) == {}
    started = wait_for(
        lambda: [
            r
            for r in world.slack.thread_replies()
            if third.deployment_id not in r["text"] and back.release_id in r["text"]
        ],
        30,
        "the rollback's reply in the thread",
    )
    assert started[0]["thread_ts"] == "1700000000.000100" and started[0]["response_type"] == "in_channel"
    assert f"<@{APPROVER}> started a rollback of `{function}` to version 2" in started[0]["text"]
