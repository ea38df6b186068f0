"""A sandbox with the stack provisioned and `rollout dashboard` serving it, for the dashboard's tests.

Functions are created and released through the `rollout` command itself (CliRunner), as a person would;
the dashboard runs in a thread of the test process with its own Backend, exactly as `rollout dashboard`
builds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from typer.testing import CliRunner

from cli.backend import Backend, configure_environment
from cli.dashboard.server import RunningDashboard, Settings, serving
from cli.main import TEMPLATE, app
from cli.sandbox_run import RunningSandbox, running_sandbox
from examples.hello.build import artifact_bytes, build_artifact
from rollout import aws
from tests.support.e2e_world import E2E_CHECKS, wait_for

STACK = "rollout-dash"
SPEED = 120.0
ENV_KEYS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
runner = CliRunner()


@dataclass
class DashboardWorld:
    sandbox: RunningSandbox
    dashboard: RunningDashboard
    artifacts: Path

    @property
    def token(self) -> str:
        return self.dashboard.settings.token

    @property
    def csrf(self) -> str:
        return self.dashboard.settings.csrf

    def point_here(self) -> None:
        """Aim this process's AWS clients at the sandbox (the suite's autouse fixture resets them)."""
        os.environ["AWS_ENDPOINT_URL"] = self.sandbox.endpoint_url
        os.environ["ROLLOUT_STACK"] = STACK
        aws.reset_clients()

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1", endpoint_url=self.sandbox.endpoint_url)

    def rollout(self, *args: str) -> Any:
        return runner.invoke(app, [*args], catch_exceptions=False)

    def create_function(self, name: str, config: str = "Canary10Percent5Minutes") -> None:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = self.client("iam").create_role(
            RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust)
        )
        lam = self.client("lambda")
        lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role["Role"]["Arn"],
            Handler="app.lambda_handler",
            Code={"ZipFile": artifact_bytes("healthy", "v0")},
            Timeout=10,
        )
        lam.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        registered = self.rollout("register", name, "--config", config)
        assert registered.exit_code == 0, registered.output

    def deploy(
        self, name: str, variant: str, label: str, wait: bool = True, checks: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        path = build_artifact(variant, label, self.artifacts, checks=checks or E2E_CHECKS)
        args = [
            "deploy",
            name,
            str(path),
            "--json",
            "--commit",
            f"c-{label}",
            "--message",
            f"{variant} {label}",
        ]
        if wait:
            args += ["--wait", "--timeout", "120", "--interval", "0.2"]
        result = self.rollout(*args)
        return dict(json.loads(result.stdout))

    def deployment_of(self, name: str, key: str) -> tuple[str, str]:
        """(release id, deployment id) of the upload at `key`, once it has a deployment."""

        def find() -> tuple[str, str] | None:
            history = json.loads(self.rollout("history", name, "--json").stdout)
            for release in history["releases"]:
                if release["key"] == key and release.get("deployment_id"):
                    return str(release["release_id"]), str(release["deployment_id"])
            return None

        found: tuple[str, str] = wait_for(find, 60, f"a deployment for {key}")
        return found

    def history(self, name: str) -> list[dict[str, Any]]:
        return list(json.loads(self.rollout("history", name, "--json").stdout)["releases"])

    def alias_version(self, name: str) -> str:
        return str(self.client("lambda").get_alias(FunctionName=name, Name="live")["FunctionVersion"])


@contextmanager
def dashboard_world(artifacts: Path, refresh_seconds: float = 0.3) -> Iterator[DashboardWorld]:
    saved = {k: os.environ.get(k) for k in (*ENV_KEYS, "ROLLOUT_STACK")}
    try:
        with ExitStack() as stack:
            sandbox = stack.enter_context(running_sandbox(0, SPEED, STACK, TEMPLATE))
            configure_environment(sandbox.endpoint_url, None)
            backend = Backend(STACK)
            settings = Settings(backend, refresh_seconds=refresh_seconds, endpoint=sandbox.endpoint_url)
            dashboard = stack.enter_context(serving(settings))
            world = DashboardWorld(sandbox, dashboard, artifacts)
            world.point_here()
            yield world
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        aws.reset_clients()
