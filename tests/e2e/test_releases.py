"""Releases through the provisioned control plane, driven only through AWS APIs against the sandbox.

At 60x a five-minute canary takes five real seconds. Each test creates its own target functions from
examples/hello; all share the module's stack.
"""

from __future__ import annotations

import io
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from itertools import pairwise

import pytest

from examples.hello.build import artifact_bytes
from examples.hello.traffic import TrafficGenerator
from rollout.ledger import Release
from tests.support.e2e_world import ALIAS, E2E_CHECKS, Notice, RolloutWorld, parse_time, wait_for
from tests.support.sandbox_support import wait_lambda_metrics_published, zip_unzipping_to

pytestmark = pytest.mark.e2e

SPEED = 60.0
# The deployer's reserved concurrency below twenty, so that twenty uploads at once are throttled and wait
# on Lambda's queue (test_twenty_uploads_at_once_all_reach_the_ledger); the template's default is 25.
PARAMETERS = {"DeployerReservedConcurrency": "5"}
CANARY = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
TRAFFIC_RATE = 12.0  # calls a real second: a dozen calls a sandbox minute to the canary's 10%
# "Deployment package (.zip file archive) size: 250 MB (unzipped)", code and layers together ("Lambda quotas")
LAMBDA_UNZIPPED_LIMIT = 262_144_000


def bootstrap(world: RolloutWorld, function: str) -> Release:
    first = world.wait_release(world.release_build(function, "healthy", "v1"))
    assert str(first.state) == "BOOTSTRAPPED", (first.reason_code, first.reason)
    return first


def of_release(notices: list[Notice], release: Release) -> list[Notice]:
    return [n for n in notices if n.message.get("release_id") == release.release_id]


def unzipped_bytes(artifact: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(artifact)) as archive:
        return sum(info.file_size for info in archive.infolist())


def traffic(world: RolloutWorld, function: str, rate: float = TRAFFIC_RATE) -> TrafficGenerator:
    return TrafficGenerator(world.fresh_client("lambda"), function, ALIAS, rate=rate, max_seconds=120)


def alias_invocations(world: RolloutWorld, function: str, version: str) -> float:
    """Invocations of `version` through the alias, as CloudWatch counts them (ExecutedVersion)."""
    now = world.sb.clock.now_datetime()
    stats = world.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "FunctionName", "Value": function},
            {"Name": "Resource", "Value": f"{function}:{ALIAS}"},
            {"Name": "ExecutedVersion", "Value": version},
        ],
        StartTime=now - timedelta(hours=3),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Sum"],
    )
    return float(sum(point["Sum"] for point in stats["Datapoints"]))


def test_a_healthy_upload_goes_live_through_a_canary_and_is_announced(world: RolloutWorld) -> None:
    function = world.create_target("healthy")
    first = bootstrap(world, function)

    with traffic(world, function) as generator:
        upload = world.release_build(function, "healthy", "v2")
        # The canary step: the alias keeps v1 and sends 10% to v2.
        wait_for(lambda: world.alias_weights(function) == {"2": 0.1}, 30, "the 10% canary on the alias")
        release = world.wait_release(upload)
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert (release.current_version, release.target_version) == (first.target_version, "2")
    assert release.deployment_config == CANARY
    assert world.alias_version(function) == "2" and world.alias_weights(function) == {}
    assert [h["state"] for h in release.history] == ["RECEIVED", "DEPLOYING", "SUCCEEDED"]
    assert release.hook_results["pre_traffic"]["verdict"] == "Succeeded"
    assert [c["name"] for c in release.hook_results["pre_traffic"]["checks"]] == ["health"]
    assert release.hook_results["post_traffic"]["verdict"] == "Succeeded"
    assert generator.report.by_version["2"] > 0 and generator.report.errors == 0

    (deployment,) = [d for d in world.deployments(function) if d["deploymentId"] == release.deployment_id]
    assert deployment["status"] == "Succeeded" and deployment["deploymentConfigName"] == CANARY
    # The per-release canary alarms are gone once the release ended.
    assert release.alarms
    wait_for(
        lambda: not world.client("cloudwatch").describe_alarms(AlarmNames=release.alarms)["MetricAlarms"],
        20,
        "the release's canary alarms to be deleted",
    )

    notices = of_release(world.wait_notices(function, ["deployment.succeeded"]), release)
    assert [n.kind for n in notices] == ["deployment.started", "deployment.succeeded"]
    started, succeeded = notices
    assert started.message["versions"] == {"current": "1", "target": "2"}
    assert started.message["deployment_id"] == release.deployment_id
    assert started.attributes == {"kind": "deployment.started", "function": function, "severity": "info"}
    assert succeeded.subject == f"{function}: v2 is live"
    assert succeeded.message["commit"] == "v2abc12" and succeeded.message["durations"]["total_seconds"] > 0

    started_post = world.wait_slack(function, ["deploying v1 -> v2", release.deployment_id])
    assert CANARY in started_post
    live_post = world.wait_slack(function, ["v2 is live"])
    assert "v1 → v2" in live_post and "v2abc12" in live_post


def test_the_first_upload_bootstraps_the_alias_and_the_same_code_again_is_unchanged(
    world: RolloutWorld,
) -> None:
    function = world.create_target("bootstrap")
    assert world.alias(function) is None
    first = bootstrap(world, function)
    assert world.alias_version(function) == first.target_version == "1"
    assert not world.deployments(function), "the first release creates the alias without a deployment"

    again = world.wait_release(world.release_build(function, "healthy", "v1"))
    assert str(again.state) == "UNCHANGED"
    assert again.reason_code == "CODE_UNCHANGED" and again.current_version == "1"
    assert world.published_versions(function) == ["1"]
    assert world.alias_version(function) == "1"
    kinds = [n.kind for n in world.wait_notices(function, ["release.bootstrapped", "release.unchanged"])]
    assert kinds == ["release.bootstrapped", "release.unchanged"]
    world.wait_slack(function, ["code unchanged"])


def test_a_first_upload_that_fails_its_checks_never_gets_an_alias(world: RolloutWorld) -> None:
    """No deployment, so no hook, tests a function's first version: Rollout runs its checks itself
    against the new version, and creates the alias only when they pass."""
    function = world.create_target("firstcheck")
    failing = world.wait_release(world.release_build(function, "failing-check", "v1"))
    assert (str(failing.state), failing.reason_code) == ("REJECTED", "CHECKS_FAILED"), failing.reason
    assert "health" in failing.reason and "version 1" in failing.reason
    assert world.alias(function) is None, "nothing may invoke the alias of a version that failed"
    pre = failing.hook_results["pre_traffic"]
    assert pre["verdict"] == "Failed" and [c["executed_version"] for c in pre["checks"]] == ["1"]
    assert "post_traffic" not in failing.hook_results  # CodeDeploy too stops at the first failed hook
    assert world.wait_notices(function, ["release.rejected"])

    healthy = bootstrap(world, function)
    assert world.alias_version(function) == healthy.target_version == "2"
    assert not world.deployments(function)
    tested = healthy.hook_results
    assert (tested["pre_traffic"]["verdict"], tested["post_traffic"]["verdict"]) == ("Succeeded", "Succeeded")
    assert {c["executed_version"] for hook in tested.values() for c in hook["checks"]} == {"2"}


def test_a_canary_without_traffic_is_inconclusive_and_rolls_back_by_default(world: RolloutWorld) -> None:
    """Nobody called the new version through the alias: its canary proves nothing, and with the default
    policy (strict) that is a "no", never a silent pass. The reason says how to get a verdict."""
    function = world.create_target("quietcanary", config="AllAtOnce")
    bootstrap(world, function)
    default_policy = {**E2E_CHECKS, "canary": {"min_invocations": 2}}

    release = world.wait_release(world.release_build(function, "healthy", "v2", checks=default_policy))

    assert str(release.state) == "ROLLED_BACK", (release.reason_code, release.reason)
    assert "canary inconclusive" in release.reason and "fewer than the 2 needed" in release.reason
    assert "canary.strict to false" in release.reason
    assert release.hook_results["post_traffic"]["canary"]["inconclusive"] is True
    assert world.alias_version(function) == "1"


def test_a_failing_pre_traffic_check_rolls_back_before_any_traffic(world: RolloutWorld) -> None:
    function = world.create_target("precheck")
    bootstrap(world, function)

    with traffic(world, function) as generator:
        release = world.wait_release(world.release_build(function, "failing-check", "v2"))
    assert str(release.state) == "ROLLED_BACK", (release.reason_code, release.reason)
    assert release.reason_code == "HOOK_EXECUTION_FAILURE"
    assert "health" in release.reason
    assert world.alias_version(function) == "1" and world.alias_weights(function) == {}
    # No caller of the alias ever reached v2, by the callers' own count and by CloudWatch's (once Lambda
    # has published every call's figures).
    assert generator.report.sent > 0 and set(generator.report.by_version) == {"1"}
    wait_lambda_metrics_published(world.sb, world.sb.clock.now())
    assert alias_invocations(world, function, "2") == 0
    assert alias_invocations(world, function, "1") > 0

    (check,) = release.hook_results["pre_traffic"]["checks"]
    assert (check["name"], check["verdict"]) == ("health", "Failed")
    assert "503" in check["excerpt"]

    notices = of_release(world.wait_notices(function, ["deployment.rolled_back"]), release)
    rolled_back = next(n for n in notices if n.kind == "deployment.rolled_back")
    assert rolled_back.attributes["severity"] == "error"
    assert rolled_back.message["reason"]["code"] == "HOOK_EXECUTION_FAILURE"
    failed = rolled_back.message["hook_results"]["pre_traffic"]["checks"][0]
    assert failed["name"] == "health" and "503" in failed["excerpt"]
    post = world.wait_slack(function, ["rolled back", "health", "503"])
    assert "degraded" in post  # the excerpt of the response a reader needs to see


def test_fifty_failing_checks_named_with_emoji_are_announced_whole(world: RolloutWorld) -> None:
    # Names of 128 emoji and `expect` keys of 342 the answer lacks, as long as the checks file may hold:
    # as ASCII-only JSON the rollback's notification came to over SNS's 262,144 bytes and was lost.
    emoji = "\N{GRINNING FACE}"
    pre_traffic = [
        {
            "name": f"{i:02d}" + emoji * 126,
            "event": {"path": "/health"},
            "expect": {f"{i:02d}" + emoji * 340: 1},
        }
        for i in range(50)
    ]
    function = world.create_target("emoji")
    bootstrap(world, function)

    upload = world.release_build(function, "healthy", "v2", checks={**E2E_CHECKS, "pre_traffic": pre_traffic})
    release = world.wait_release(upload)

    assert (str(release.state), release.reason_code) == ("ROLLED_BACK", "HOOK_EXECUTION_FAILURE"), (
        release.reason
    )
    notices = of_release(world.wait_notices(function, ["deployment.rolled_back"]), release)
    rolled_back = next(n for n in notices if n.kind == "deployment.rolled_back")
    assert rolled_back.message["reason"] == {"code": "HOOK_EXECUTION_FAILURE", "text": release.reason}
    checks = rolled_back.message["hook_results"]["pre_traffic"]["checks"]
    assert [c["name"] for c in checks] == [c["name"] for c in pre_traffic]
    assert all(c["verdict"] == "Failed" and c["error"].endswith(": missing") for c in checks)
    assert "truncated" not in rolled_back.message
    world.wait_slack(function, ["rolled back", pre_traffic[0]["name"], "and 47 more failing checks"])


def test_an_upload_that_fits_alone_but_not_beside_the_functions_layers_is_rejected_too_large(
    world: RolloutWorld,
) -> None:
    function = world.create_target("layered")
    first = bootstrap(world, function)
    lam = world.client("lambda")
    # A layer that takes all the room Lambda leaves beside the live code: the next build, a few bytes
    # larger unzipped and far below Rollout's own limit for the artifact alone, no longer fits.
    live_code = artifact_bytes("healthy", "v1", checks=E2E_CHECKS)
    layer_bytes = LAMBDA_UNZIPPED_LIMIT - unzipped_bytes(live_code)
    layer = lam.publish_layer_version(
        LayerName=f"{function}-deps", Content={"ZipFile": zip_unzipping_to(layer_bytes)}
    )["LayerVersionArn"]
    lam.update_function_configuration(FunctionName=function, Layers=[layer])
    lam.get_waiter("function_updated_v2").wait(FunctionName=function, WaiterConfig={"Delay": 1})
    latest_before = lam.get_function_configuration(FunctionName=function)["CodeSha256"]

    upload = world.release_build(function, "healthy", "v2-a-little-larger")
    assert unzipped_bytes(
        artifact_bytes("healthy", "v2-a-little-larger", checks=E2E_CHECKS)
    ) + layer_bytes > (LAMBDA_UNZIPPED_LIMIT)
    release = world.wait_release(upload)

    assert (str(release.state), release.reason_code) == ("REJECTED", "TOO_LARGE"), release.reason
    assert "262144000 bytes" in release.reason and "layers" in release.reason
    assert world.published_versions(function) == [first.target_version]
    assert lam.get_function_configuration(FunctionName=function)["CodeSha256"] == latest_before
    assert world.alias_version(function) == first.target_version
    assert world.lock(function) is None
    assert not world.deployments(function)
    (rejected,) = [
        n for n in world.wait_notices(function, ["release.rejected"]) if n.kind == "release.rejected"
    ]
    assert rejected.message["reason"] == {"code": "TOO_LARGE", "text": release.reason}


def test_a_slower_version_fails_post_traffic_analysis(world: RolloutWorld) -> None:
    function = world.create_target("slow")
    bootstrap(world, function)

    with traffic(world, function):
        release = world.wait_release(world.release_build(function, "slow", "v2", slow_ms=300))
    assert str(release.state) == "ROLLED_BACK", (release.reason_code, release.reason)
    assert release.reason_code == "HOOK_EXECUTION_FAILURE"
    assert "p99" in release.reason and "duration" in release.reason
    assert release.hook_results["pre_traffic"]["verdict"] == "Succeeded"
    post_traffic = release.hook_results["post_traffic"]
    assert post_traffic["verdict"] == "Failed" and "p99" in post_traffic["reason"]
    assert world.alias_version(function) == "1" and world.alias_weights(function) == {}
    world.wait_slack(function, ["rolled back", "p99"])


def test_a_crashed_hook_is_reported_and_the_deployment_ends_in_minutes(world: RolloutWorld) -> None:
    function = world.create_target("crash")
    bootstrap(world, function)
    hook = world.outputs["PreTrafficHookName"]

    # Killed as it reports its verdict, so it dies without reporting however fast it ran (a kill a fixed
    # time into the invocation came after a fast hook had already reported Succeeded).
    world.sb.faults.kill_on_call(hook, "codedeploy", "PutLifecycleEventHookExecutionStatus")
    release = world.wait_release(world.release_build(function, "healthy", "v2"), timeout=120)
    assert str(release.state) == "ROLLED_BACK", (release.reason_code, release.reason)
    assert release.reason_code == "HOOK_EXECUTION_FAILURE"
    assert "failed without reporting" in release.reason
    assert world.alias_version(function) == "1"

    (deployment,) = [d for d in world.deployments(function) if d["deploymentId"] == release.deployment_id]
    assert deployment["status"] in ("Failed", "Stopped")
    sandbox_minutes = (deployment["completeTime"] - deployment["createTime"]).total_seconds() / 60
    assert sandbox_minutes < 15, f"the deployment took {sandbox_minutes:.0f} sandbox minutes"
    notices = of_release(world.wait_notices(function, ["deployment.rolled_back"]), release)
    assert "failed without reporting" in next(n for n in notices if n.kind == "deployment.rolled_back").text


def test_several_functions_released_at_once(world: RolloutWorld) -> None:
    functions = [world.create_target(f"multi{i}") for i in range(3)]
    for function in functions:
        bootstrap(world, function)

    with ThreadPoolExecutor(len(functions)) as pool:
        uploads = list(pool.map(lambda f: world.release_build(f, "healthy", "v2"), functions))
    releases = [world.wait_release(upload) for upload in uploads]
    assert [str(r.state) for r in releases] == ["SUCCEEDED"] * len(functions)
    for function, release in zip(functions, releases, strict=True):
        assert world.alias_version(function) == release.target_version == "2"
        world.wait_unlocked(function)
    # They ran side by side: every deployment started before the first one ended.
    spans = [(parse_time(r.deploying_at), parse_time(r.completed_at)) for r in releases]
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_a_burst_of_five_uploads_never_overlaps_and_ends_on_the_last(world: RolloutWorld) -> None:
    function = world.create_target("burst")
    bootstrap(world, function)

    # Back to back: each upload follows as soon as the previous one reached the ledger, so arrival order
    # is upload order while their code updates, publications and deployments overlap.
    uploads = []
    for i in range(1, 6):
        upload = world.release_build(function, "healthy", f"b{i}")
        wait_for(partial(world.release_of, upload), 30, f"upload b{i} in the ledger", interval=0.05)
        uploads.append(upload)
    world.wait_terminal(function, count=6, timeout=180)
    burst = [world.release_of(upload) for upload in uploads]
    assert all(r is not None for r in burst)
    releases = [r for r in burst if r is not None]
    states = [str(r.state) for r in releases]
    assert set(states) <= {"SUCCEEDED", "SUPERSEDED"}, [(r.state, r.reason) for r in releases]
    last = releases[-1]
    assert str(last.state) == "SUCCEEDED"
    assert world.alias_version(function) == last.target_version
    assert world.alias_weights(function) == {}
    world.wait_unlocked(function)
    # What went live is the last upload's code.
    assert world.version_code(function, last.target_version) == uploads[-1].code_sha256

    deployments = sorted(world.deployments(function), key=lambda d: d["createTime"])
    assert len(deployments) == states.count("SUCCEEDED")
    for earlier, later in pairwise(deployments):
        assert earlier["completeTime"] <= later["createTime"], (
            earlier["deploymentId"],
            later["deploymentId"],
        )
    spans = sorted(
        (parse_time(r.deploying_at), parse_time(r.completed_at)) for r in releases if r.deploying_at
    )
    for (_, end), (start, _) in pairwise(spans):
        assert end <= start
    notices = world.wait_notices(function, ["deployment.succeeded"])
    wait_for(
        lambda: (
            len([n for n in world.notices(function) if n.kind == "release.superseded"])
            == states.count("SUPERSEDED")
        ),
        20,
        "a release.superseded notification per superseded upload",
    )
    assert notices


def test_uploads_racing_for_one_function_each_release_the_code_they_carry(world: RolloutWorld) -> None:
    """Uploads processed at the same time share $LATEST: a release's version must hold its own code."""
    function = world.create_target("race")
    bootstrap(world, function)

    with ThreadPoolExecutor(5) as pool:
        uploads = list(pool.map(lambda i: world.release_build(function, "healthy", f"r{i}"), range(1, 6)))
    world.wait_terminal(function, count=6, timeout=180)
    for upload in uploads:
        release = world.release_of(upload)
        assert release is not None and str(release.state) in ("SUCCEEDED", "SUPERSEDED", "UNCHANGED"), release
        if str(release.state) == "SUPERSEDED":
            # Superseded while queued: it never touched $LATEST and published nothing.
            assert (release.code_sha256, release.target_version) == ("", ""), release
            continue
        assert release.code_sha256 == upload.code_sha256, f"{upload.key} recorded another upload's code"
        if release.target_version:
            assert world.version_code(function, release.target_version) == upload.code_sha256, (
                f"{upload.key}: version {release.target_version} holds another upload's code"
            )
    live = world.alias_version(function)
    assert any(world.version_code(function, live) == u.code_sha256 for u in uploads)


def test_twenty_uploads_at_once_all_reach_the_ledger(world: RolloutWorld) -> None:
    """More uploads than the deployer's reserved concurrency: Lambda queues throttled async events (for up
    to MaximumEventAgeInSeconds) instead of failing them, so every upload ends in a recorded state."""
    functions = [world.create_target(f"wide{i}") for i in range(20)]
    dlq = world.outputs["UndeliveredEventsQueueUrl"]

    with ThreadPoolExecutor(10) as pool:
        uploads = list(pool.map(lambda f: world.release_build(f, "healthy", "v1"), functions))

    def undelivered() -> int:
        """Records of these uploads in the undelivered-events queue (looked at, left in place). Other
        records may be there too (a scheduled reconciler run that aged out on a busy machine)."""
        sqs = world.client("sqs")
        seen: dict[str, str] = {}
        for _ in range(3):
            got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0)
            seen.update({m["MessageId"]: m["Body"] for m in got.get("Messages", [])})
        return sum(1 for body in seen.values() if any(u.key in body for u in uploads))

    def settled() -> bool:
        releases = [world.release_of(upload) for upload in uploads]
        return undelivered() > 0 or all(r is not None and r.is_terminal for r in releases)

    wait_for(settled, 120, "every upload to be recorded")
    recorded = [r for r in map(world.release_of, uploads) if r is not None]
    assert undelivered() == 0, (
        f"{undelivered()} upload events went to the undelivered-events queue; "
        f"{len(recorded)} of {len(uploads)} uploads reached the ledger"
    )
    assert [str(r.state) for r in recorded] == ["BOOTSTRAPPED"] * len(uploads)
