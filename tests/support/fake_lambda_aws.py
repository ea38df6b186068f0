"""An in-memory stand-in for the calls the sandbox CodeDeploy engine makes (Lambda aliases and
async invokes, CloudWatch alarm states, EventBridge events), for engine tests without a server.

Hooks are Python callables run on their own thread, as Lambda runs an Event invocation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.codedeploy.aws import AwsCallError

HookBehaviour = Callable[[dict[str, Any]], None]


class FakeLambdaAws:
    def __init__(self, region: str = "us-east-1", account_id: str = "123456789012") -> None:
        self.region, self.account_id = region, account_id
        self.lock = threading.Lock()
        self.versions: dict[str, set[str]] = {}
        self.aliases: dict[tuple[str, str], dict[str, Any]] = {}
        self.alias_history: list[tuple[str, str, str, dict[str, float]]] = []
        self.hooks: dict[str, HookBehaviour] = {}
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self.alarms: dict[str, str] = {}
        self.alarm_reads: list[list[str]] = []  # the names of each DescribeAlarms, in order
        self.fail_alarm_reads: AwsCallError | None = None
        self.denied_alarms: set[str] = set()  # alarms the caller may not describe (IAM checks each name)
        self.events: list[dict[str, Any]] = []
        self.fail_update_alias: AwsCallError | None = None

    # --- test setup ------------------------------------------------------------------------------
    def add_function(self, name: str, versions: list[str], alias: str, alias_version: str) -> None:
        self.versions[name] = set(versions)
        self.aliases[(name, alias)] = {"FunctionVersion": alias_version, "RoutingConfig": {}}

    def alias(self, name: str, alias: str) -> tuple[str, dict[str, float]]:
        with self.lock:
            record = self.aliases[(name, alias)]
            return record["FunctionVersion"], dict(
                record["RoutingConfig"].get("AdditionalVersionWeights", {})
            )

    def states(self) -> list[str]:
        with self.lock:
            return [e["detail"]["state"] for e in self.events]

    # --- AwsPort ---------------------------------------------------------------------------------
    def get_alias(self, function: str, alias: str) -> dict[str, Any]:
        with self.lock:
            if function not in self.versions or (function, alias) not in self.aliases:
                raise AwsCallError("ResourceNotFoundException", f"Alias not found: {function}:{alias}")
            record = self.aliases[(function, alias)]
            arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{function}:{alias}"
            return {"AliasArn": arn, "Name": alias, **record}

    def get_function_configuration(self, function: str, qualifier: str | None = None) -> dict[str, Any]:
        with self.lock:
            if function not in self.versions or (qualifier and qualifier not in self.versions[function]):
                raise AwsCallError("ResourceNotFoundException", f"Function not found: {function}:{qualifier}")
            return {"FunctionName": function, "Version": qualifier or "$LATEST"}

    def update_alias(self, function: str, alias: str, version: str, weights: dict[str, float]) -> None:
        with self.lock:
            if self.fail_update_alias is not None:
                raise self.fail_update_alias
            self.aliases[(function, alias)] = {
                "FunctionVersion": version,
                "RoutingConfig": {"AdditionalVersionWeights": dict(weights)} if weights else {},
            }
            self.alias_history.append((function, alias, version, dict(weights)))

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        with self.lock:
            behaviour = self.hooks.get(function)
            if behaviour is None:
                raise AwsCallError("ResourceNotFoundException", f"Function not found: {function}")
            self.invocations.append((function, dict(payload)))
        threading.Thread(target=behaviour, args=(dict(payload),), daemon=True).start()

    def alarm_states(self, names: list[str]) -> dict[str, str]:
        with self.lock:
            self.alarm_reads.append(list(names))
            if self.fail_alarm_reads is not None:
                raise self.fail_alarm_reads
            denied = sorted(self.denied_alarms.intersection(names))
            if denied:
                raise AwsCallError(
                    "AccessDenied", f"not authorized to perform: cloudwatch:DescribeAlarms on {denied[0]}"
                )
            return {name: self.alarms[name] for name in names if name in self.alarms}

    def put_event(self, detail: dict[str, Any], resources: list[str], time: datetime) -> None:
        with self.lock:
            self.events.append({"detail": dict(detail), "resources": list(resources), "time": time})
