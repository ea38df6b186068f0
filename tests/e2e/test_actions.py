"""A release manager's actions end to end: rollback, freeze, hotfix, version retention, pre-flight.

The actions run through the `rollout` command (in this process, against the provisioned sandbox), the
uploads through S3, the reconciler through Lambda; everything else is the control plane's own path.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.errors import ExitCode
from cli.main import app
from examples.hello.build import artifact_bytes
from rollout import aws
from rollout.ledger import Release
from tests.support.e2e_world import E2E_CHECKS, RolloutWorld, Upload, wait_for

pytestmark = pytest.mark.e2e

SPEED = 60.0
ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"
runner = CliRunner()


@pytest.fixture
def rollout(world: RolloutWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run `rollout ARGS --json` against the world's stack; returns (exit code, JSON output)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", world.sb.endpoint_url)
    monkeypatch.setenv("ROLLOUT_STACK", world.stack_name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", world.sb.region)
    aws.reset_clients()

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        result = runner.invoke(app, [*args, "--json"])
        try:
            return result.exit_code, json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"exit {result.exit_code}, not JSON: {result.output}") from result.exception

    yield run
    aws.reset_clients()


def why(out: dict[str, Any]) -> Any:
    found = out.get("release") or {}
    return out.get("error") or (found.get("state"), found.get("reason_code"), found.get("reason"))


def reconcile(world: RolloutWorld) -> dict[str, Any]:
    """One reconciler run of our own (it runs one at a time: a scheduled run in progress throttles us)."""

    def run() -> dict[str, Any] | None:
        try:
            return world.reconcile()
        except world.client("lambda").exceptions.TooManyRequestsException:
            return None

    return dict(wait_for(run, 60, "a reconciler run"))


def held_no_more(world: RolloutWorld, upload: Upload, _run: dict[str, Any]) -> bool:
    found = world.release_of(upload)
    return found is not None and str(found.state) != "HELD"


def release(world: RolloutWorld, function: str, variant: str, label: str, state: str = "") -> Release:
    try:
        done = world.wait_release(world.release_build(function, variant, label))
    except AssertionError as timeout:
        found = [(r.state, r.reason_code, r.reason) for r in world.releases(function)]
        raise AssertionError(f"{timeout}; releases of {function}: {found}") from None
    if state:
        assert str(done.state) == state, (label, done.state, done.reason_code, done.reason)
    return done


def hotfix_upload(world: RolloutWorld, function: str, variant: str, label: str) -> Upload:
    data = artifact_bytes(variant, label, checks=E2E_CHECKS)
    key = f"{function}/hotfix-{label}-{uuid.uuid4().hex[:6]}.zip"
    put = world.client("s3").put_object(
        Bucket=world.bucket, Key=key, Body=data, Metadata={"hotfix": "true", "commit": label}
    )
    return Upload(function, world.bucket, key, str(put.get("VersionId") or ""), 0.0, Upload.sha_of(data))


def tag(world: RolloutWorld, function: str, tags: dict[str, str]) -> None:
    lam = world.client("lambda")
    arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags=tags)


# --- roll back -------------------------------------------------------------------------------------


def test_rollback_after_a_succeeded_release_returns_to_the_previous_version(
    world: RolloutWorld, rollout: Any
) -> None:
    function = world.create_target("rollback")
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")
    release(world, function, "healthy", "v2", "SUCCEEDED")
    assert world.alias_version(function) == "2"

    code, out = rollout("rollback", function, "--reason", "v2 breaks checkout", "--wait")

    assert code == ExitCode.OK, why(out)
    back = out["release"]
    assert (back["kind"], back["state"]) == ("rollback", "SUCCEEDED")
    assert (back["current_version"], back["target_version"]) == ("2", "1")
    assert back["deployment_config"] == ALL_AT_ONCE and back["message"] == "v2 breaks checkout"
    assert back["requested_by"].startswith("arn:aws:")
    assert world.alias_version(function) == "1" and world.alias_weights(function) == {}
    # The pre-traffic checks of the version it returned to ran (v1's rollout.json: "health").
    assert [c["name"] for c in back["hook_results"]["pre_traffic"]["checks"]] == ["health"]
    (deployment,) = [d for d in world.deployments(function) if d["deploymentId"] == back["deployment_id"]]
    assert deployment["deploymentConfigName"] == ALL_AT_ONCE and deployment["status"] == "Succeeded"
    notices = world.wait_notices(function, ["deployment.started", "deployment.succeeded"])
    announced = [n.message for n in notices if n.message.get("release_id") == back["release_id"]]
    assert {m["release_kind"] for m in announced} == {"rollback"}
    assert {m["requested_by"] for m in announced} == {back["requested_by"]}

    # Nothing earlier went live than v1: a second rollback has nowhere to go.
    code, out = rollout("rollback", function)
    assert code == ExitCode.CONFLICT and "nothing to roll back to" in out["error"]["message"]


def test_rollback_is_refused_while_a_deployment_runs_unless_it_aborts_it(
    world: RolloutWorld, rollout: Any
) -> None:
    function = world.create_target("busy", config="Canary10Percent15Minutes")
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")
    release(world, function, "healthy", "v2", "SUCCEEDED")
    third = world.release_build(function, "healthy", "v3")
    deploying = world.wait_release(third, state="DEPLOYING")

    code, out = rollout("rollback", function)
    assert code == ExitCode.CONFLICT, out
    assert deploying.deployment_id in out["error"]["message"] and "--abort-current" in out["error"]["message"]
    assert not [r for r in world.releases(function) if r.kind == "rollback"]

    code, out = rollout("rollback", function, "--abort-current", "--wait", "--reason", "stop it all")
    assert code == ExitCode.OK, why(out)
    assert out["stopped"] == [deploying.deployment_id]
    assert (out["release"]["state"], out["release"]["target_version"]) == ("SUCCEEDED", "1")
    stopped = world.release_of(third)
    assert stopped is not None and str(stopped.state) == "ROLLED_BACK"
    by = out["release"]["requested_by"]
    assert by.startswith("arn:aws:") and f"stopped on request by {by} (for a rollback)" in stopped.reason
    assert world.alias_version(function) == "1"


# --- freeze ----------------------------------------------------------------------------------------


def test_a_freeze_holds_three_uploads_and_releases_the_newest(world: RolloutWorld, rollout: Any) -> None:
    function = world.create_target("frozen", config="AllAtOnce")
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")
    code, out = rollout("freeze", function, "--reason", "black friday")
    assert code == ExitCode.OK and out["freezes"][0]["scope"] == function

    uploads = [world.release_build(function, "healthy", label) for label in ("v2", "v3", "v4")]
    held = [world.wait_release(upload, state="HELD") for upload in uploads]
    assert {(r.reason_code, r.target_version) for r in held} == {("FROZEN", "")}
    assert all("black friday" in r.reason for r in held)
    code, out = rollout("status")
    assert [f["reason"] for f in out["freezes"] if f["scope"] == function] == ["black friday"]
    assert world.alias_version(function) == "1" and len(world.deployments(function)) == 0
    started = world.wait_notices(function, ["release.held", "freeze.started"])
    (frozen,) = [n.message for n in started if n.kind == "freeze.started"]
    assert frozen["freeze"]["reason"] == "black friday" and frozen["requested_by"].startswith("arn:aws:")

    code, out = rollout("unfreeze", function)
    assert code == ExitCode.OK and out["unfrozen"] == [function], out
    world.wait_notices(function, ["freeze.ended"])
    newest = world.wait_release(uploads[-1])
    assert str(newest.state) == "SUCCEEDED", (newest.reason_code, newest.reason)
    older = [world.wait_release(upload) for upload in uploads[:-1]]
    assert [str(r.state) for r in older] == ["SUPERSEDED", "SUPERSEDED"]
    assert world.alias_version(function) == newest.target_version == "2"  # only the newest was published
    assert len(world.deployments(function)) == 1
    code, out = rollout("unfreeze", function)
    assert code == ExitCode.CONFLICT  # nothing left to unfreeze


def test_a_freeze_named_by_arn_or_qualified_name_holds_the_function_itself(
    world: RolloutWorld, rollout: Any
) -> None:
    """Lambda answers a function's ARN and `name:alias` as the function; a freeze recorded under those
    spellings held nothing, since releases are held by the function's name."""
    function = world.create_target("frozenarn", config="AllAtOnce")
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")
    arn = world.client("lambda").get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    code, out = rollout("freeze", arn, "--reason", "audit")
    assert code == ExitCode.OK and [f["scope"] for f in out["freezes"]] == [function], out

    upload = world.release_build(function, "healthy", "v2")

    def settled() -> Release | None:  # held, or (not held) on its way to the end
        found = world.release_of(upload)
        return found if found is not None and (str(found.state) == "HELD" or found.is_terminal) else None

    held = wait_for(settled, 90, "the upload to be held or to end")
    assert (str(held.state), held.reason_code) == ("HELD", "FROZEN"), (held.state, held.reason)
    assert world.alias_version(function) == "1"

    code, out = rollout("unfreeze", f"{function}:live")
    assert code == ExitCode.OK and out["unfrozen"] == [function], out
    done = world.wait_release(upload)
    assert str(done.state) == "SUCCEEDED", (done.reason_code, done.reason)


def test_the_reconciler_releases_uploads_held_by_a_freeze_that_has_expired(
    world: RolloutWorld, rollout: Any
) -> None:
    function = world.create_target("expiring", config="AllAtOnce")
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")
    assert rollout("freeze", function, "--reason", "maintenance", "--until", "1d")[0] == ExitCode.OK
    upload = world.release_build(function, "healthy", "v2")
    world.wait_release(upload, state="HELD")
    # The freeze's time passes (the record's end moved into the past, as the clock would).
    world.table.update_item(
        Key={"pk": "FREEZE", "sk": f"FN#{function}"},
        UpdateExpression="SET #u = :u",
        ExpressionAttributeNames={"#u": "until"},
        ExpressionAttributeValues={":u": "2020-01-01T00:00:00Z"},
    )
    # Our run, or a scheduled one (every five sandbox minutes), starts it; the open-releases index it
    # reads may trail a moment.
    wait_for(lambda: held_no_more(world, upload, reconcile(world)), 30, "the reconciler to start it")
    assert str(world.wait_release(upload).state) == "SUCCEEDED"


# --- hotfix ----------------------------------------------------------------------------------------


def test_a_hotfix_skips_the_shift_but_fails_on_a_broken_check(world: RolloutWorld) -> None:
    function = world.create_target("hotfix", config="Canary10Percent30Minutes")
    tag(world, function, {"rollout:hotfix": "allowed"})
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")

    fixed = world.wait_release(hotfix_upload(world, function, "healthy", "v2"))
    assert (str(fixed.state), fixed.kind, fixed.deployment_config) == ("SUCCEEDED", "hotfix", ALL_AT_ONCE)
    assert [c["name"] for c in fixed.hook_results["pre_traffic"]["checks"]] == ["health"]
    # All at once: no canary step, far less than the function's 30 sandbox minutes of canary.
    (deployment,) = [d for d in world.deployments(function) if d["deploymentId"] == fixed.deployment_id]
    assert deployment["deploymentConfigName"] == ALL_AT_ONCE

    broken = world.wait_release(hotfix_upload(world, function, "failing-check", "v3"))
    assert (str(broken.state), broken.kind) == ("ROLLED_BACK", "hotfix"), (broken.reason_code, broken.reason)
    assert broken.hook_results["pre_traffic"]["verdict"] == "Failed"
    assert world.alias_version(function) == "2"

    plain = world.create_target("nohotfix")
    release(world, plain, "healthy", "v1", "BOOTSTRAPPED")
    refused = world.wait_release(hotfix_upload(world, plain, "healthy", "v2"))
    assert (str(refused.state), refused.reason_code) == ("REJECTED", "HOTFIX_NOT_ALLOWED")


# --- version retention -----------------------------------------------------------------------------


def test_retention_keeps_exactly_the_right_versions(world: RolloutWorld) -> None:
    function = world.create_target("retain", config="AllAtOnce")
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")
    for label in ("v2", "v3", "v4", "v5"):
        release(world, function, "healthy", label, "SUCCEEDED")
    release(world, function, "failing-check", "v6", "ROLLED_BACK")
    lam = world.client("lambda")
    lam.create_alias(FunctionName=function, Name="pinned", FunctionVersion="1")
    lam.create_alias(
        FunctionName=function,
        Name="split",
        FunctionVersion="5",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    assert sorted(world.published_versions(function), key=int) == ["1", "2", "3", "4", "5", "6"]
    # Only now: the scheduled reconciler runs every few seconds at this speed.
    tag(world, function, {"rollout:retain-versions": "2"})

    reconcile(world)  # this run, or a scheduled one that came first, deletes

    # Newest two: 6 and 5. Kept besides: 1 (alias pinned), 2 (weighted on alias split),
    # 4 (where a rollback from live v5 would go). Only 3 goes.
    assert sorted(world.published_versions(function), key=int) == ["1", "2", "4", "5", "6"]
    # Written by the run a moment ago: only a consistent read is sure to see it.
    retention = {"pk": f"FN#{function}", "sk": "RETENTION"}
    record = world.table.get_item(Key=retention, ConsistentRead=True)["Item"]
    assert record["deleted"] == ["3"]
    assert set(record["protected"]) == {"1", "2", "4"}
    assert "rollback" in record["protected"]["4"]
    assert reconcile(world)["versions_deleted"].get(function) is None  # nothing more to delete
    assert sorted(world.published_versions(function), key=int) == ["1", "2", "4", "5", "6"]


# --- pre-flight ------------------------------------------------------------------------------------


def test_an_upload_is_held_while_an_alarm_of_the_function_is_in_alarm(world: RolloutWorld) -> None:
    cloudwatch = world.client("cloudwatch")
    alarm = f"orders-errors-{uuid.uuid4().hex[:6]}"
    dims = [{"Name": "Service", "Value": alarm}]
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="Rollout/E2E",
        MetricName="Errors",
        Dimensions=dims,
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=3,
        DatapointsToAlarm=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    function = world.create_target("preflight", config="AllAtOnce")
    release(world, function, "healthy", "v1", "BOOTSTRAPPED")
    tag(world, function, {"rollout:alarms": alarm})

    stop = threading.Event()

    def breach() -> None:
        while not stop.wait(0.3):
            cloudwatch.put_metric_data(
                Namespace="Rollout/E2E",
                MetricData=[{"MetricName": "Errors", "Dimensions": dims, "Value": 50}],
            )

    breaching = threading.Thread(target=breach, daemon=True)
    breaching.start()
    try:
        wait_for(lambda: state_of(world, alarm) == "ALARM", 30, "the function's alarm in ALARM")
        upload = world.release_build(function, "healthy", "v2")
        held = world.wait_release(upload, state="HELD")
    finally:
        stop.set()
        breaching.join()
    assert held.reason_code == "PREFLIGHT_ALARM" and alarm in held.reason
    assert len(world.deployments(function)) == 0  # refused before CodeDeploy was asked

    wait_for(lambda: state_of(world, alarm) == "OK", 60, "the alarm to clear")
    wait_for(lambda: held_no_more(world, upload, reconcile(world)), 30, "the reconciler to start it")
    assert str(world.wait_release(upload).state) == "SUCCEEDED"
    assert world.alias_version(function) == "2"


def state_of(world: RolloutWorld, alarm: str) -> str:
    alarms = world.client("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    return str(alarms[0]["StateValue"]) if alarms else ""
