"""Managed functions, releases and CodeDeploy deployments for deployment-event and reconciler tests.

Releases start through the real start path (rollout.starter.start_release) against moto and the
CodeDeploy stand-in; tests then end deployments with `finish`, which also moves the alias the way
CodeDeploy would have.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rollout.config import Settings
from rollout.ledger import Ledger, Release, new_release_id
from rollout.starter import start_release
from rollout.states import State
from rollout.transitions import ReleaseContext
from tests.support.artifacts_world import function_zip
from tests.support.aws_stack import ACCOUNT, APPLICATION, LEDGER_TABLE, REGION, StackUnderTest, moto_client
from tests.support.codedeploy_standin import CodeDeployStandIn

DETAIL_TYPE = "CodeDeploy Deployment State-change Notification"


class ReleaseWorld:
    def __init__(self, stack: StackUnderTest, codedeploy: CodeDeployStandIn) -> None:
        self.stack = stack
        self.codedeploy = codedeploy
        self.ledger = Ledger(LEDGER_TABLE)
        self.lambda_client = moto_client("lambda")
        self.cloudwatch = moto_client("cloudwatch")

    @property
    def settings(self) -> Settings:
        return Settings.from_env()

    @property
    def context(self) -> ReleaseContext:
        return ReleaseContext.from_settings(self.settings, self.ledger)

    # --- functions -------------------------------------------------------------------------------
    def managed_function(self, name: str, versions: int = 4, live: str = "1") -> None:
        """A managed function with published versions 1..`versions` and alias live on `live`."""
        self.lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=self.stack.function_role_arn,
            Handler="app.handler",
            Code={"ZipFile": function_zip("v0")},
            Tags={"rollout:managed": "true", "rollout:deployment-config": "Canary10Percent5Minutes"},
        )
        for number in range(1, versions + 1):
            self.lambda_client.update_function_code(FunctionName=name, ZipFile=function_zip(f"v{number}"))
            self.lambda_client.publish_version(FunctionName=name, Description=f"build {number}")
        self.lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion=live)

    def alias(self, function: str) -> dict[str, Any]:
        return dict(self.lambda_client.get_alias(FunctionName=function, Name="live"))

    def point_alias(self, function: str, version: str, weights: dict[str, float] | None = None) -> None:
        self.lambda_client.update_alias(
            FunctionName=function,
            Name="live",
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": weights or {}},
        )

    def alarm_names(self) -> list[str]:
        return [a["AlarmName"] for a in self.cloudwatch.describe_alarms()["MetricAlarms"]]

    # --- releases ----------------------------------------------------------------------------------
    def received(self, function: str, target: str, **fields: Any) -> Release:
        """A release as the deployer leaves it once its version is published."""
        release = Release(
            function=function,
            release_id=new_release_id(),
            bucket=self.stack.bucket,
            key=f"{function}/build-{target}.zip",
            object_version=uuid.uuid4().hex,
            alias="live",
            deployment_config="CodeDeployDefault.LambdaCanary10Percent5Minutes",
            code_sha256=f"sha-{target}",
            target_version=target,
            commit=f"c0ffee{target}",
            author="alice",
            checks={"pre_traffic": [], "post_traffic": [], "canary": {"max_error_rate": 0.05}},
        )
        for key, value in fields.items():
            setattr(release, key, value)
        return self.ledger.create(release)

    def deploying(self, function: str, target: str, **fields: Any) -> Release:
        started = start_release(self.context, self.received(function, target, **fields))
        assert started.state == State.DEPLOYING, started
        return started

    def queued(self, function: str, target: str, **fields: Any) -> Release:
        release = start_release(self.context, self.received(function, target, **fields))
        assert release.state == State.QUEUED, release
        return release

    def get(self, release: Release) -> Release:
        stored = self.ledger.get(release.function, release.release_id)
        assert stored is not None
        return stored

    # --- CodeDeploy --------------------------------------------------------------------------------
    def succeed(self, release: Release) -> None:
        self.codedeploy.finish(release.deployment_id, "Succeeded")
        self.point_alias(release.function, release.target_version)

    def roll_back(self, release: Release, status: str, error: dict[str, str]) -> None:
        """End the deployment as CodeDeploy does with automatic rollback: alias back on the old version."""
        self.codedeploy.finish(
            release.deployment_id,
            status,
            error_information=error,
            rollback_info={"rollbackDeploymentId": "d-RB" + release.deployment_id[4:], "rollbackMessage": ""},
        )
        self.point_alias(release.function, release.current_version)

    def event(self, deployment_id: str, state: str, function: str = "orders") -> dict[str, Any]:
        """A CodeDeploy Deployment State-change Notification as EventBridge delivers it."""
        group_arn = f"arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{APPLICATION}/{function}"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": DETAIL_TYPE,
            "source": "aws.codedeploy",
            "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:codedeploy:{REGION}:{ACCOUNT}:application:{APPLICATION}", group_arn],
            "detail": {
                "region": REGION,
                "deploymentId": deployment_id,
                "instanceGroupId": str(uuid.uuid4()),
                "deploymentGroup": function,
                "application": APPLICATION,
                "state": state,
            },
        }
