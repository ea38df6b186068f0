"""Live traffic, bad input and injected faults against the provisioned control plane in the sandbox.

At 30x a sandbox minute lasts two real seconds: at 15 calls a second the canary's 10% sees about three
calls a sandbox minute, enough for the per-release alarms to judge it.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta

import pytest

from examples.hello.build import artifact_bytes
from examples.hello.traffic import TrafficGenerator
from tests.support.e2e_world import ALIAS, E2E_CHECKS, RolloutWorld, wait_for

pytestmark = pytest.mark.e2e

SPEED = 30.0
TRAFFIC_RATE = 15.0


def bootstrap(world: RolloutWorld, function: str) -> None:
    first = world.wait_release(world.release_build(function, "healthy", "v1"))
    assert str(first.state) == "BOOTSTRAPPED", (first.reason_code, first.reason)


def invocations_since(world: RolloutWorld, function: str, since: datetime) -> float:
    """Invocations of `function` since `since` that CloudWatch has so far (Lambda publishes them a minute
    at a time, so the count grows a publish lag behind)."""
    now = world.sb.clock.now_datetime()
    stats = world.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=since,
        EndTime=now + timedelta(minutes=5),
        Period=86400,
        Statistics=["Sum"],
    )
    return float(sum(point["Sum"] for point in stats["Datapoints"]))


def test_a_version_erroring_under_traffic_is_stopped_by_its_canary_alarm(world: RolloutWorld) -> None:
    function = world.create_target("erroring")
    bootstrap(world, function)

    lam = world.fresh_client("lambda")
    with TrafficGenerator(lam, function, ALIAS, rate=TRAFFIC_RATE, max_seconds=120) as generator:
        release = world.wait_release(world.release_build(function, "erroring", "v2"), timeout=120)
    assert str(release.state) == "ROLLED_BACK", (release.reason_code, release.reason)
    assert release.reason_code == "ALARM_ACTIVE"
    alarm_prefix = f"{world.stack_name}-canary-{function}-v2-"
    assert alarm_prefix in release.reason
    # It passed its checks before traffic; live traffic found the errors.
    assert release.hook_results["pre_traffic"]["verdict"] == "Succeeded"
    assert generator.report.by_version["2"] > 0 and generator.report.errors > 0
    assert world.alias_version(function) == "1" and world.alias_weights(function) == {}

    (deployment,) = [d for d in world.deployments(function) if d["deploymentId"] == release.deployment_id]
    assert deployment["status"] == "Stopped"
    assert deployment["errorInformation"]["code"] == "ALARM_ACTIVE"
    notices = world.wait_notices(function, ["deployment.rolled_back"])
    rolled_back = next(n for n in notices if n.kind == "deployment.rolled_back")
    assert alarm_prefix in rolled_back.text
    world.wait_slack(function, ["rolled back", alarm_prefix])


def test_a_duplicated_upload_event_makes_one_release(world: RolloutWorld) -> None:
    function = world.create_target("dupe")
    deployer = world.outputs["ArtifactDeployerName"]
    since = world.sb.clock.now_datetime()
    fault = world.sb.faults.duplicate_event(
        {"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": f"{function}/"}]}}}, count=1
    )
    upload = world.release_build(function, "healthy", "v1")
    release = world.wait_release(upload)
    assert len(fault.matched_ids) == 1, "the upload's event was not duplicated"
    # The deployer ran twice for the one upload; the ledger has one release.
    wait_for(
        lambda: invocations_since(world, deployer, since) >= 2, 20, "both deliveries to reach the deployer"
    )
    assert [str(r.state) for r in world.releases(function)] == ["BOOTSTRAPPED"]
    assert str(release.state) == "BOOTSTRAPPED" and world.published_versions(function) == ["1"]
    kinds = [n.kind for n in world.wait_notices(function, ["release.bootstrapped"])]
    assert kinds == ["release.bootstrapped"]


def zip_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_bad_artifacts_are_rejected_notified_and_never_deployed(world: RolloutWorld) -> None:
    managed = world.create_target("badart")
    unmanaged = world.create_target("unmanaged", managed=False)
    missing = f"missing-{managed.rsplit('-', 1)[-1]}"
    good = artifact_bytes("healthy", "v1", checks=E2E_CHECKS)
    unsafe = zip_with({"app.py": b"def lambda_handler(e, c):\n    return 1\n", "../escape.py": b"x = 1\n"})
    invalid_checks = artifact_bytes("healthy", "v1", checks={"pre_traffic": "not a list"})
    cases = [
        ("BAD_SUFFIX", managed, f"{managed}/.zip", good),
        ("NO_FUNCTION_SEGMENT", "(none)", f"no-function-{managed}.zip", good),
        ("EMPTY_OBJECT", managed, f"{managed}/empty.zip", b""),
        ("CORRUPT_ZIP", managed, f"{managed}/corrupt.zip", b"this is not a zip archive"),
        ("UNSAFE_ZIP", managed, f"{managed}/unsafe.zip", unsafe),
        ("INVALID_CHECKS", managed, f"{managed}/checks.zip", invalid_checks),
        ("FUNCTION_NOT_MANAGED", unmanaged, f"{unmanaged}/build.zip", good),
        # The deployer may read only functions tagged rollout:managed=true, and a function that does not
        # exist has no tags: IAM refuses it as it refuses an untagged one (the sandbox enforces IAM).
        ("FUNCTION_NOT_MANAGED", missing, f"{missing}/build.zip", good),
    ]
    uploads = [(code, world.upload(function, data, key=key)) for code, function, key, data in cases]
    for code, upload in uploads:
        release = world.wait_release(upload, timeout=60)
        assert (str(release.state), release.reason_code) == ("REJECTED", code), (upload.key, release.reason)
        assert release.reason, f"{upload.key}: a rejection says why"
        # The notice follows the ledger's write: wait for this upload's own notice, not any rejection.
        notice = wait_for(
            lambda key=upload.key, function=upload.function: next(
                (
                    n
                    for n in world.notices(function)
                    if n.kind == "release.rejected" and n.message["artifact"]["key"] == key
                ),
                None,
            ),
            30,
            f"a release.rejected notification for {upload.key}",
        )
        assert notice.message["reason"]["code"] == code and notice.attributes["severity"] == "error"
    # Nothing was deployed: no version published, no alias, no deployment.
    for function in (managed, unmanaged):
        assert world.published_versions(function) == []
        assert world.alias(function) is None and world.deployments(function) == []
    world.wait_slack(managed, ["rejected", "CORRUPT_ZIP"])


def test_throttled_codedeploy_and_lambda_calls_still_release(world: RolloutWorld) -> None:
    function = world.create_target("throttled")
    bootstrap(world, function)
    faults = world.sb.faults
    injected = [
        faults.fail("codedeploy", operation, "ThrottlingException", share=0.4, message="Rate exceeded")
        for operation in (
            "CreateDeployment",
            "GetDeployment",
            "GetDeploymentGroup",
            "GetApplicationRevision",
            "PutLifecycleEventHookExecutionStatus",
        )
    ] + [
        faults.fail("lambda", operation, "TooManyRequestsException", share=0.3, status=429)
        for operation in (
            "GetFunction",
            "GetAlias",
            "UpdateFunctionCode",
            "GetFunctionConfiguration",
            "PublishVersion",
        )
    ]
    try:
        release = world.wait_release(world.release_build(function, "healthy", "v2"), timeout=120)
    finally:
        faults.clear()
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert world.alias_version(function) == release.target_version == "2"
    throttled = {f"{f.service}:{f.operation}": f.injected for f in injected if f.injected}
    assert any(name.startswith("codedeploy:") for name in throttled), throttled
    assert any(name.startswith("lambda:") for name in throttled), throttled


def test_each_throttled_publish_step_is_retried_by_the_deployer_and_the_release_succeeds(
    world: RolloutWorld,
) -> None:
    """Lambda and CodeDeploy throttle control-plane calls above their rate (Lambda: TooManyRequestsException;
    CodeDeploy: ThrottlingException "Rate exceeded"). The deployer's client backs off and tries again; the
    release neither fails nor publishes twice."""
    function = world.create_target("backoff")
    bootstrap(world, function)
    faults = world.sb.faults
    mark = world.sb.calls.mark()
    steps = [
        ("lambda", "UpdateFunctionCode", "TooManyRequestsException"),
        ("lambda", "PublishVersion", "TooManyRequestsException"),
        ("codedeploy", "CreateDeployment", "ThrottlingException"),
    ]
    injected = [faults.fail(svc, op, code, count=2, message="Rate exceeded") for svc, op, code in steps]
    try:
        release = world.wait_release(world.release_build(function, "healthy", "v2"), timeout=120)
    finally:
        faults.clear()
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert world.alias_version(function) == release.target_version == "2"
    assert [f.injected for f in injected] == [2, 2, 2]
    deployer = world.outputs["ArtifactDeployerName"]
    for service, operation, code in steps:
        outcomes = [
            c.outcome
            for c in world.sb.calls.since(mark)
            if c.session == deployer and (c.service, c.operation) == (service, operation)
        ]
        # two refusals, then the same call again and through: one publish, one deployment
        assert outcomes == [code, code, "ok"], (operation, outcomes)


def test_a_lost_success_event_is_repaired_by_the_reconciler(world: RolloutWorld) -> None:
    function = world.create_target("lostevent")
    bootstrap(world, function)
    fault = world.sb.faults.drop_event(
        {"source": ["aws.codedeploy"], "detail": {"deploymentGroup": [function], "state": ["SUCCESS"]}},
        count=1,
    )
    upload = world.release_build(function, "healthy", "v2")
    deploying = world.wait_release(upload, state="DEPLOYING", timeout=60)

    def succeeded_in_codedeploy() -> bool:
        info = world.client("codedeploy").get_deployment(deploymentId=deploying.deployment_id)[
            "deploymentInfo"
        ]
        return bool(info["status"] == "Succeeded")

    wait_for(succeeded_in_codedeploy, 60, "CodeDeploy to finish the deployment")
    wait_for(lambda: fault.matched_ids, 10, "the SUCCESS event to be dropped")
    release = world.release_of(upload)
    assert release is not None
    if str(release.state) == "DEPLOYING":
        # The scheduled run has not come yet: run the reconciler now, as the schedule would. A
        # scheduled run may still come first and settle it; the event was dropped, so either way a
        # reconciler run repaired it.
        summary = world.reconcile()
        settled_here = any(s.get("release_id") == release.release_id for s in summary["settled"])
        current = world.release_of(upload)
        assert settled_here or (current is not None and str(current.state) != "DEPLOYING"), summary
    release = world.wait_release(upload, timeout=30)
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert world.alias_version(function) == "2"
    world.wait_unlocked(function)
    world.wait_notices(function, ["deployment.succeeded"])
