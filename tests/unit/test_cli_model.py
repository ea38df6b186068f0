"""The command's pure parts: names, artifact checks, outcomes, the deployment picture and its rendering."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli import model, render
from cli.errors import CliError, ExitCode
from rollout.ledger import Release
from rollout.states import State


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buffer.getvalue()


def test_artifact_key_names_function_time_and_bytes() -> None:
    key = model.artifact_key("orders", b"abc", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    assert key == "orders/20260304T050607Z-ba7816bf.zip"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.zip", None, "no such file"),
        ("empty.zip", b"", "the file is empty"),
        ("notes.txt", b"hello", "must be a .zip"),
        ("fake.zip", b"this is not a zip", "not a valid zip"),
        ("hollow.zip", zip_bytes({}), "the zip is empty"),
    ],
)
def test_bad_artifacts_are_usage_errors(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CliError) as err:
        model.read_artifact(path)
    assert err.value.code == ExitCode.USAGE
    assert expected in err.value.message


def test_good_artifact_is_read(tmp_path: Path) -> None:
    data = zip_bytes({"app.py": "def lambda_handler(e, c): return 1"})
    path = tmp_path / "fn.zip"
    path.write_bytes(data)
    assert model.read_artifact(path) == data


def test_config_names() -> None:
    assert (
        model.full_config_name("Canary10Percent5Minutes") == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    )
    assert model.full_config_name("MyCustom") == "MyCustom"
    assert model.is_builtin_config("CodeDeployDefault.LambdaAllAtOnce")
    assert model.check_config_name("MyCustom") == "MyCustom"
    with pytest.raises(CliError) as err:
        model.check_config_name("CodeDeployDefault.LambdaCanary99Percent1Minute")
    assert err.value.code == ExitCode.USAGE


def test_alias_and_alarm_names() -> None:
    assert model.check_alias_name("live") == "live"
    for bad in ("123", "has space", ""):
        with pytest.raises(CliError):
            model.check_alias_name(bad)
    assert model.check_alarm_names(["a", "b", "a", " "]) == ["a", "b"]
    with pytest.raises(CliError, match="spaces"):
        model.check_alarm_names(["my alarm"])
    with pytest.raises(CliError, match="at most 10"):
        model.check_alarm_names([f"a{i}" for i in range(10)])


def test_metadata_values_are_header_safe() -> None:
    assert model.metadata_value("fix  the\nbug") == "fix the bug"
    encoded = model.metadata_value("café")
    assert encoded.startswith("=?UTF-8?B?") and encoded.isascii()
    assert len(model.metadata_value("x" * 5000)) == model.METADATA_VALUE_LIMIT


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (State.SUCCEEDED, ExitCode.OK),
        (State.BOOTSTRAPPED, ExitCode.OK),
        (State.UNCHANGED, ExitCode.OK),
        (State.ROLLED_BACK, ExitCode.RELEASE_FAILED),
        (State.FAILED, ExitCode.RELEASE_FAILED),
        (State.REJECTED, ExitCode.RELEASE_FAILED),
        (State.SUPERSEDED, ExitCode.RELEASE_FAILED),
    ],
)
def test_release_exit_codes(state: State, code: ExitCode) -> None:
    assert model.release_exit_code(state) == code


def canary_info(status: str = "InProgress", **extra: object) -> dict[str, object]:
    return {
        "deploymentId": "d-ABCDEFGH1",
        "status": status,
        "deploymentConfigName": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "applicationName": "rollout-dev",
        "deploymentGroupName": "orders",
        "createTime": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        **extra,
    }


def lambda_target(events: dict[str, str]) -> dict[str, object]:
    return {
        "lambdaFunctionInfo": {
            "functionName": "orders",
            "functionAlias": "live",
            "currentVersion": "3",
            "targetVersion": "4",
            "targetVersionWeight": 0.1,
        },
        "lifecycleEvents": [{"lifecycleEventName": n, "status": s} for n, s in events.items()],
    }


def test_snapshot_reads_traffic_from_the_alias() -> None:
    alias = {"FunctionVersion": "3", "RoutingConfig": {"AdditionalVersionWeights": {"4": 0.1}}}
    snap = model.build_snapshot(
        canary_info(), [lambda_target({"Start": "Succeeded", "AllowTraffic": "InProgress"})], alias, None
    )
    assert (snap.function, snap.alias, snap.current_version, snap.target_version) == (
        "orders",
        "live",
        "3",
        "4",
    )
    assert snap.traffic_on_target == pytest.approx(0.1)
    assert [e.name for e in snap.lifecycle] == ["Start", "AllowTraffic"]
    assert not snap.done
    assert model.traffic_on("4", {"FunctionVersion": "4"}) == 1.0
    assert model.traffic_on("4", {"FunctionVersion": "3"}) == 0.0
    assert model.traffic_on("4", None, 0.3) == 0.3


def test_failed_snapshot_explains_with_the_ledger_reason() -> None:
    release = Release(
        function="orders",
        release_id="r1",
        state=State.ROLLED_BACK,
        reason_code="HOOK_EXECUTION_FAILURE",
        reason="pre-traffic check health failed: statusCode 503",
        hook_results={
            "pre_traffic": {
                "verdict": "Failed",
                "checks": [
                    {
                        "name": "health",
                        "verdict": "Failed",
                        "duration_ms": 12,
                        "excerpt": '{"statusCode": 503}',
                    }
                ],
                "reason": "1 of 1 checks failed",
            }
        },
    )
    info = canary_info(
        "Failed", errorInformation={"code": "HOOK_EXECUTION_FAILURE", "message": "hook failed"}
    )
    snap = model.build_snapshot(
        info, [lambda_target({"BeforeAllowTraffic": "Failed"})], {"FunctionVersion": "3"}, release
    )
    assert snap.done
    assert "traffic back on version 3" in snap.outcome_text()
    assert "statusCode 503" in snap.outcome_text()
    lines = [t.plain for t in render.hook_lines(snap.hook_results)]
    assert lines[0].startswith("pre-traffic hook: ✘ Failed")
    assert "health" in lines[1] and "503" in lines[1]
    data = snap.to_json()
    assert data["release"]["reason_code"] == "HOOK_EXECUTION_FAILURE"
    assert data["done"] is True


def test_plain_changes_report_only_what_moved() -> None:
    before = model.build_snapshot(
        canary_info(), [lambda_target({"Start": "Succeeded"})], {"FunctionVersion": "3"}, None
    )
    first = render.snapshot_changes(None, before)
    assert first[0].startswith("d-ABCDEFGH1: orders:live v3 -> v4")
    alias = {"FunctionVersion": "3", "RoutingConfig": {"AdditionalVersionWeights": {"4": 0.1}}}
    after = model.build_snapshot(
        canary_info(), [lambda_target({"Start": "Succeeded", "AllowTraffic": "InProgress"})], alias, None
    )
    assert render.snapshot_changes(before, after) == ["  AllowTraffic: InProgress", "  traffic on v4: 10%"]
    assert render.snapshot_changes(after, after) == []


def test_release_rendering() -> None:
    rel = Release(
        function="orders",
        release_id="0001",
        state=State.SUCCEEDED,
        current_version="3",
        target_version="4",
        deployment_id="d-ABCDEFGH1",
        received_at="2026-01-01T12:00:00.000Z",
        completed_at="2026-01-01T12:06:30.000Z",
    )
    assert model.versions_text(rel) == "3 → 4"
    assert model.when_text(rel) == "2026-01-01 12:00:00Z (6m30s)"
    assert model.release_why(rel) == "new version live"
    assert render.release_line(rel) == "orders 0001: SUCCEEDED 3 → 4 d-ABCDEFGH1 - new version live"


def test_a_release_waiting_at_its_gate_says_how_to_answer() -> None:
    rel = Release(function="orders", release_id="0002", state=State.DEPLOYING, deployment_id="d-ABCDEFGH2")
    assert model.release_why(rel) == "deployment in progress"
    rel.approval = {"status": "AWAITING", "position": "traffic", "deadline_at": "2026-01-01T12:30:00.000Z"}
    assert model.release_why(rel) == (
        "awaiting approval before traffic until 2026-01-01T12:30:00.000Z: rollout approve d-ABCDEFGH2 (or reject)"
    )
    rel.approval = {**rel.approval, "status": "APPROVED"}
    assert model.release_why(rel) == "deployment in progress"


def unproven_release() -> Release:
    """CodeDeploy completed the deployment of v4 although Rollout's post-traffic hook recorded Failed."""
    return Release(
        function="orders",
        release_id="0003",
        state=State.FAILED,
        current_version="3",
        target_version="4",
        deployment_id="d-ABCDEFGH3",
        reason_code="UNPROVEN_SUCCESS",
        reason="CodeDeploy completed deployment d-ABCDEFGH3, so alias live serves version 4, but ...",
        hook_results={"post_traffic": {"verdict": "Failed", "reason": "post-traffic canary: error rate 9%"}},
    )


def test_a_release_that_went_live_unproven_says_so_and_what_to_run() -> None:
    rel = unproven_release()
    assert model.release_why(rel) == (
        "v4 went live UNPROVEN: CodeDeploy completed its deployment although post-traffic hook failed: "
        "post-traffic canary: error rate 9%; while it is live, run `rollout rollback orders`"
    )
    assert model.unproven_attention("orders", "live", rel) == [
        "orders: v4 is LIVE on alias live but UNPROVEN: CodeDeploy completed deployment d-ABCDEFGH3 "
        "(release 0003) although post-traffic hook failed: post-traffic canary: error rate 9%.",
        "  Roll it back to the last version that went live properly: rollout rollback orders",
    ]
    assert model.unproven_attention("orders", "live", None) == []


def test_watching_a_deployment_that_went_live_unproven_does_not_end_as_a_success() -> None:
    snap = model.build_snapshot(
        canary_info("Succeeded"), [lambda_target({})], {"FunctionVersion": "4"}, unproven_release()
    )
    assert snap.outcome_text().startswith("Succeeded in CodeDeploy, but v4 went live UNPROVEN")
    assert model.deployment_exit_code(snap.status, snap.release) == ExitCode.RELEASE_FAILED
    snap.release = None  # a deployment no release names: CodeDeploy's word is all there is
    assert model.deployment_exit_code(snap.status, snap.release) == ExitCode.OK


def test_a_release_line_and_a_registration_show_when_alarms_cannot_act_within_the_first_step() -> None:
    warning = "deployment config X moves more traffic to the new version after 60 s"
    deploying = Release(function="orders", release_id="r1", state=State.DEPLOYING, warnings=[warning])
    assert f"- warning: {warning}" in render.release_line(deploying)
    went_live = Release(function="orders", release_id="r1", state=State.SUCCEEDED, warnings=[warning])
    assert "warning" not in render.release_line(went_live)
    assert "after 60 s" in model.config_warning("orders", "live", "Linear10PercentEvery1Minute")
    assert model.config_warning("orders", "live", "Canary10Percent5Minutes") == ""
    assert model.config_warning("orders", "live", "Team.Custom") == ""  # read when a release starts
