"""The article Rollout grew from (a hand-wired CodeDeploy canary for one Lambda function), replayed step by
step with the AWS CLI against the sandbox, as a reader would type it.

Where AWS would refuse one of the article's commands, the sandbox refuses too: the article attaches
`arn:aws:iam::aws:policy/AWSCodeDeployRoleForLambda`, but the managed policy lives under the
`service-role/` path, so IAM answers NoSuchEntity; and its hooks are named `pre-traffic-hook`, which the
managed policy does not let CodeDeploy invoke (it allows only functions named `CodeDeployHook_*`).
"""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from sandbox import Sandbox
from tests.support.e2e_world import wait_for

AWS = Path(sys.executable).with_name("aws")
FUNCTION = "my-function"
APPLICATION = "my-function-deploy"
GROUP = "my-function-dg"

FUNCTION_SOURCE = """
def handler(event, context):
    return {"statusCode": 200, "body": "v%d"}
"""

BROKEN_SOURCE = """
def handler(event, context):
    return {"statusCode": 500, "body": "v%d is broken"}
"""

# The article's pre-traffic hook, unchanged but for its name (see the module docstring).
ARTICLE_HOOK = """
import json
import boto3

codedeploy = boto3.client('codedeploy')
lambda_client = boto3.client('lambda')

def handler(event, context):
    deployment_id = event['DeploymentId']
    lifecycle_event_hook_execution_id = event['LifecycleEventHookExecutionId']
    status = 'Succeeded'
    try:
        response = lambda_client.invoke(
            FunctionName='my-function',
            Qualifier='live',
            Payload=json.dumps({'test': True, 'path': '/health'})
        )
        payload = json.loads(response['Payload'].read())
        if response.get('FunctionError'):
            status = 'Failed'
        elif payload.get('statusCode') != 200:
            status = 'Failed'
    except Exception as e:
        print(f"Validation failed with exception: {str(e)}")
        status = 'Failed'
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id,
        lifecycleEventHookExecutionId=lifecycle_event_hook_execution_id,
        status=status
    )
    return {'statusCode': 200}
"""

HOOK_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "codedeploy:PutLifecycleEventHookExecutionStatus", "Resource": "*"},
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"},
    ],
}

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "%s"}, "Action": "sts:AssumeRole"}],
}


class Cli:
    """The AWS CLI as a user runs it, pointed at the sandbox."""

    def __init__(self, endpoint: str, workdir: Path) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        # The test's own polls read through boto3: each CLI run costs most of a second of CPU.
        self.sdk = functools.cache(
            lambda service: boto3.client(
                service,
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        )
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(workdir),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(workdir / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-credentials"),
            "AWS_PAGER": "",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AWS), "--endpoint-url", self.endpoint, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def __call__(self, *args: str) -> Any:
        done = self.run(*args)
        assert done.returncode == 0, f"aws {' '.join(args)} failed ({done.returncode}): {done.stderr}"
        out = done.stdout.strip()
        if not out:
            return None
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            return out


def zip_file(path: Path, source: str, module: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{module}.py", source)
    path.write_bytes(buffer.getvalue())
    return f"fileb://{path}"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    if not AWS.exists():
        pytest.fail(f"the AWS CLI is missing at {AWS}: `make install` installs it from requirements/dev.lock")
    with Sandbox(speed=60) as sandbox:
        yield Cli(sandbox.endpoint_url, tmp_path_factory.mktemp("seed"))


def live_alias(aws: Cli) -> tuple[str, dict[str, float]]:
    alias = aws.sdk("lambda").get_alias(FunctionName=FUNCTION, Name="live")
    return alias["FunctionVersion"], (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def appspec_revision(current: str, target: str, hook: str | None = None) -> str:
    spec: dict[str, Any] = {
        "version": 0.0,
        "Resources": [
            {
                "MyFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": FUNCTION,
                        "Alias": "live",
                        "CurrentVersion": current,
                        "TargetVersion": target,
                    },
                }
            }
        ],
    }
    if hook:
        spec["Hooks"] = [{"BeforeAllowTraffic": hook}]
    return json.dumps({"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(spec)}})


def new_version(aws: Cli, n: int, source: str = FUNCTION_SOURCE) -> str:
    code = zip_file(aws.workdir / f"v{n}.zip", source % n, "index")
    aws("lambda", "update-function-code", "--function-name", FUNCTION, "--zip-file", code)
    aws("lambda", "wait", "function-updated-v2", "--function-name", FUNCTION)
    return str(
        aws(
            "lambda", "publish-version", "--function-name", FUNCTION, "--query", "Version", "--output", "text"
        )
    )


def deploy(aws: Cli, revision: str, config: str | None = None) -> str:
    created = aws(
        "deploy", "create-deployment", "--application-name", APPLICATION,
        "--deployment-group-name", GROUP, "--revision", revision,
        *(["--deployment-config-name", config] if config else []),
    )  # fmt: skip
    return str(created["deploymentId"])


FINAL = ("Succeeded", "Failed", "Stopped")


def status(aws: Cli, deployment: str) -> str:
    return str(aws.sdk("codedeploy").get_deployment(deploymentId=deployment)["deploymentInfo"]["status"])


def test_the_article_replayed_with_the_aws_cli(aws: Cli) -> None:
    workdir = aws.workdir
    (workdir / "lambda-trust.json").write_text(json.dumps(TRUST) % "lambda.amazonaws.com")
    function_role = aws(
        "iam", "create-role", "--role-name", "my-function-role",
        "--assume-role-policy-document", f"file://{workdir / 'lambda-trust.json'}",
    )["Role"]["Arn"]  # fmt: skip
    aws(
        "lambda", "create-function", "--function-name", FUNCTION, "--runtime", "python3.13", "--timeout", "30",
        "--role", function_role, "--handler", "index.handler",
        "--zip-file", zip_file(workdir / "v1.zip", FUNCTION_SOURCE % 1, "index"),
    )  # fmt: skip
    aws("lambda", "wait", "function-active-v2", "--function-name", FUNCTION)

    # Step 1: a published version and an alias.
    first = aws(
        "lambda",
        "publish-version",
        "--function-name",
        FUNCTION,
        "--description",
        "Version 1 - initial release",
    )
    assert first["Version"] == "1"
    aws("lambda", "create-alias", "--function-name", FUNCTION, "--name", "live", "--function-version", "1")

    # Step 2: the service role. The article's policy ARN lacks the service-role/ path: IAM refuses it.
    (workdir / "trust-policy.json").write_text(json.dumps(TRUST) % "codedeploy.amazonaws.com")
    role = aws(
        "iam", "create-role", "--role-name", "CodeDeployLambdaRole",
        "--assume-role-policy-document", "file://trust-policy.json",
    )["Role"]["Arn"]  # fmt: skip
    as_written = aws.run(
        "iam", "attach-role-policy", "--role-name", "CodeDeployLambdaRole",
        "--policy-arn", "arn:aws:iam::aws:policy/AWSCodeDeployRoleForLambda",
    )  # fmt: skip
    assert as_written.returncode != 0 and "NoSuchEntity" in as_written.stderr, as_written.stderr
    aws(
        "iam", "attach-role-policy", "--role-name", "CodeDeployLambdaRole",
        "--policy-arn", "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
    )  # fmt: skip

    # Steps 3 to 6: application, custom configurations, deployment group with alarms, the alarms.
    aws("deploy", "create-application", "--application-name", APPLICATION, "--compute-platform", "Lambda")
    for name, routing in (
        ("LambdaCanary5Percent10Minutes", {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 5, "canaryInterval": 10}}),
        ("LambdaLinear20PercentEvery5Minutes", {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 20, "linearInterval": 5}}),
    ):  # fmt: skip
        aws(
            "deploy", "create-deployment-config", "--deployment-config-name", name,
            "--compute-platform", "Lambda", "--traffic-routing-config", json.dumps(routing),
        )  # fmt: skip
    aws(
        "deploy", "create-deployment-group", "--application-name", APPLICATION,
        "--deployment-group-name", GROUP, "--service-role-arn", role,
        "--deployment-config-name", "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "--auto-rollback-configuration", "enabled=true,events=DEPLOYMENT_FAILURE,DEPLOYMENT_STOP_ON_ALARM",
        "--alarm-configuration", "enabled=true,alarms=[{name=my-function-errors},{name=my-function-duration}]",
    )  # fmt: skip
    group = aws(
        "deploy", "get-deployment-group", "--application-name", APPLICATION, "--deployment-group-name", GROUP
    )
    assert [a["name"] for a in group["deploymentGroupInfo"]["alarmConfiguration"]["alarms"]] == [
        "my-function-errors",
        "my-function-duration",
    ]
    for alarm, metric, statistic, periods, threshold in (
        ("my-function-errors", "Errors", "Sum", "1", "5"),
        ("my-function-duration", "Duration", "Average", "2", "3000"),
    ):
        aws(
            "cloudwatch", "put-metric-alarm", "--alarm-name", alarm, "--metric-name", metric,
            "--namespace", "AWS/Lambda", "--statistic", statistic, "--period", "60",
            "--evaluation-periods", periods, "--threshold", threshold,
            "--comparison-operator", "GreaterThanThreshold",
            "--dimensions", f"Name=FunctionName,Value={FUNCTION}", f"Name=Resource,Value={FUNCTION}:live",
        )  # fmt: skip

    # Step 8: publish, deploy, wait with the CLI's own waiter; the canary ends with v2 live.
    target = new_version(aws, 2)
    assert target == "2"
    deployment = deploy(aws, appspec_revision("1", target))
    aws("deploy", "wait", "deployment-successful", "--deployment-id", deployment)
    watched = aws(
        "deploy", "get-deployment", "--deployment-id", deployment,
        "--query", "deploymentInfo.{status:status,rollbackInfo:rollbackInfo}",
    )  # fmt: skip
    assert watched == {"status": "Succeeded", "rollbackInfo": None}
    assert live_alias(aws) == ("2", {})
    invoked = aws.run(
        "lambda", "invoke", "--function-name", FUNCTION, "--qualifier", "live", str(workdir / "out.json")
    )
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads((workdir / "out.json").read_text()) == {"statusCode": 200, "body": "v2"}

    # Monitoring and rollback: stop a deployment while it shifts traffic (the article's linear
    # configuration, 20% every 5 minutes); the rollback puts the alias back on v2 alone.
    third = new_version(aws, 3)
    stopped = deploy(aws, appspec_revision("2", third), "LambdaLinear20PercentEvery5Minutes")
    shifting = wait_for(lambda: live_alias(aws)[1], 120, "the first shift", interval=0.05)
    assert shifting == {third: pytest.approx(0.2)}
    aws("deploy", "stop-deployment", "--deployment-id", stopped, "--auto-rollback-enabled")
    assert wait_for(lambda: status(aws, stopped) in FINAL, 120, "deployment stopped to end", interval=0.05)
    assert status(aws, stopped) == "Stopped"
    assert live_alias(aws) == ("2", {})

    # Step 7 as written: a hook named pre-traffic-hook. AWSCodeDeployRoleForLambda lets CodeDeploy
    # invoke only CodeDeployHook_* functions, so on AWS as here the lifecycle event fails and v4 never
    # gets traffic.
    hook_arn = aws(
        "lambda", "create-function", "--function-name", "pre-traffic-hook", "--runtime", "python3.13", "--timeout", "30",
        "--role", function_role, "--handler", "hook.handler",
        "--zip-file", zip_file(workdir / "hook.zip", ARTICLE_HOOK, "hook"),
    )["FunctionArn"]  # fmt: skip
    aws("lambda", "wait", "function-active-v2", "--function-name", "pre-traffic-hook")
    fourth = new_version(aws, 4)
    hooked = deploy(aws, appspec_revision("2", fourth, hook=hook_arn))
    assert wait_for(lambda: status(aws, hooked) in FINAL, 120, "deployment hooked to end", interval=0.05)
    info = aws("deploy", "get-deployment", "--deployment-id", hooked)["deploymentInfo"]
    assert info["status"] == "Failed", info
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert "not authorized to perform: lambda:InvokeFunction" in info["errorInformation"]["message"]
    assert live_alias(aws) == ("2", {})

    # Named as CodeDeploy may invoke it, the article's hook runs, and shows the article's mistake: it
    # invokes the alias before any traffic moved, so it tests the old version and a build that
    # answers 500 goes live. (Rollout's hooks invoke the exact version under test.)
    # The article gives its hooks no role; on AWS as here, one needs to report and to invoke.
    (workdir / "hook-policy.json").write_text(json.dumps(HOOK_POLICY))
    hook_role = aws(
        "iam", "create-role", "--role-name", "my-function-hook-role",
        "--assume-role-policy-document", f"file://{workdir / 'lambda-trust.json'}",
    )["Role"]["Arn"]  # fmt: skip
    aws(
        "iam", "put-role-policy", "--role-name", "my-function-hook-role", "--policy-name", "validate",
        "--policy-document", f"file://{workdir / 'hook-policy.json'}",
    )  # fmt: skip
    named = aws(
        "lambda", "create-function", "--function-name", "CodeDeployHook_my-function-pre",
        "--runtime", "python3.13", "--timeout", "30", "--role", hook_role, "--handler", "hook.handler",
        "--zip-file", zip_file(workdir / "hook.zip", ARTICLE_HOOK, "hook"),
    )["FunctionArn"]  # fmt: skip
    aws("lambda", "wait", "function-active-v2", "--function-name", "CodeDeployHook_my-function-pre")
    broken = new_version(aws, 5, BROKEN_SOURCE)
    tested_old = deploy(aws, appspec_revision("2", broken, hook=named), "CodeDeployDefault.LambdaAllAtOnce")
    assert wait_for(
        lambda: status(aws, tested_old) in FINAL, 120, "deployment tested_old to end", interval=0.05
    )
    info = aws("deploy", "get-deployment", "--deployment-id", tested_old)["deploymentInfo"]
    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert live_alias(aws) == (broken, {})
    invoked = aws.run(
        "lambda", "invoke", "--function-name", FUNCTION, "--qualifier", "live", str(workdir / "out.json")
    )
    assert json.loads((workdir / "out.json").read_text())["statusCode"] == 500
