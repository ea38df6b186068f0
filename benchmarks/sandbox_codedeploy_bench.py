"""How long a Canary10Percent5Minutes deployment takes in the sandbox at speed 60.

At speed 60 the five sandbox minutes of shifting take 5 real seconds; with hooks that succeed
quickly, the whole deployment should end within 10% of (5 s + the time the hooks took).

    .venv/bin/python -m benchmarks.sandbox_codedeploy_bench [--runs 3] [--speed 60]

Prints one JSON document; exits non-zero when a run misses the 10% budget."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
import zipfile
from typing import Any

import boto3

from sandbox import Sandbox

CONFIG = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
SHIFT_SANDBOX_SECONDS = 300.0
TOLERANCE = 0.10
APP = "bench"
HOOK = """
import boto3

def handler(event, context):
    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status="Succeeded",
    )
"""


def zipped(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def seconds(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def run(speed: float, runs: int) -> dict[str, Any]:
    started = time.monotonic()
    # IAM off: the benchmark's roles carry no policies; it measures the runtime and CodeDeploy, not IAM.
    with Sandbox(speed=speed, iam=False) as sb:
        startup = time.monotonic() - started
        kwargs = {
            "endpoint_url": sb.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench",
        }
        iam, lam, cd = (boto3.client(s, **kwargs) for s in ("iam", "lambda", "codedeploy"))
        role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        cd.create_application(applicationName=APP, computePlatform="Lambda")
        hook = "CodeDeployHook_bench"
        lam.create_function(
            FunctionName=hook,
            Runtime="python3.13",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": zipped(HOOK)},
        )
        results = []
        for index in range(runs):
            function = f"bench-{index}"
            source = 'def handler(event, context):\n    return "{v}"\n'
            lam.create_function(
                FunctionName=function,
                Runtime="python3.13",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": zipped(source.format(v=1))},
            )
            lam.get_waiter("function_active_v2").wait(FunctionName=function)
            v1 = lam.publish_version(FunctionName=function)["Version"]
            lam.update_function_code(FunctionName=function, ZipFile=zipped(source.format(v=2)))
            lam.get_waiter("function_updated_v2").wait(FunctionName=function)
            v2 = lam.publish_version(FunctionName=function)["Version"]
            lam.create_alias(FunctionName=function, Name="live", FunctionVersion=v1)
            cd.create_deployment_group(
                applicationName=APP,
                deploymentGroupName=function,
                serviceRoleArn=role,
                deploymentConfigName=CONFIG,
                deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            )
            content = json.dumps(
                {
                    "version": 0.0,
                    "Resources": [
                        {
                            function: {
                                "Type": "AWS::Lambda::Function",
                                "Properties": {
                                    "Name": function,
                                    "Alias": "live",
                                    "CurrentVersion": v1,
                                    "TargetVersion": v2,
                                },
                            }
                        }
                    ],
                    "Hooks": [{"BeforeAllowTraffic": hook}, {"AfterAllowTraffic": hook}],
                }
            )
            revision = {
                "revisionType": "AppSpecContent",
                "appSpecContent": {
                    "content": content,
                    "sha256": hashlib.sha256(content.encode()).hexdigest(),
                },
            }
            begin = time.monotonic()
            deployment_id = cd.create_deployment(
                applicationName=APP, deploymentGroupName=function, revision=revision
            )["deploymentId"]
            while True:
                info = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
                if info["status"] in ("Succeeded", "Failed", "Stopped"):
                    break
                time.sleep(0.02)
            wall = time.monotonic() - begin
            target = cd.get_deployment_target(deploymentId=deployment_id, targetId=f"{function}:live")
            events = {
                e["lifecycleEventName"]: e
                for e in target["deploymentTarget"]["lambdaTarget"]["lifecycleEvents"]
            }

            def real(name: str, events: dict[str, Any] = events) -> float:
                event = events[name]
                return (seconds(event["endTime"]) - seconds(event["startTime"])) / speed

            hooks_real = real("BeforeAllowTraffic") + real("AfterAllowTraffic")
            budget = SHIFT_SANDBOX_SECONDS / speed + hooks_real
            results.append(
                {
                    "deployment_id": deployment_id,
                    "status": info["status"],
                    "wall_seconds": round(wall, 3),
                    "shift_seconds": round(real("AllowTraffic"), 3),
                    "hook_seconds": round(hooks_real, 3),
                    "expected_seconds": round(budget, 3),
                    "overrun_ratio": round(wall / budget - 1, 4),
                    "within_budget": info["status"] == "Succeeded" and wall <= budget * (1 + TOLERANCE),
                    "sandbox_minutes": round(
                        (seconds(info["completeTime"]) - seconds(info["createTime"])) / 60, 2
                    ),
                }
            )
    return {
        "benchmark": "sandbox_codedeploy_canary",
        "config": CONFIG,
        "speed": speed,
        "sandbox_start_seconds": round(startup, 3),
        "tolerance": TOLERANCE,
        "runs": results,
        "all_within_budget": all(r["within_budget"] for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--speed", type=float, default=60.0)
    args = parser.parse_args()
    report = run(args.speed, args.runs)
    print(json.dumps(report, indent=2))
    return 0 if report["all_within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
