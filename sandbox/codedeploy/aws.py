"""The calls the engine makes to the sandbox's other services, through plain boto3 clients.

The engine only sees `AwsPort`; `BotoAws` is the real one (the sandbox endpoint), tests may pass a
fake. Every failure comes back as `AwsCallError` carrying the AWS error code."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any, Protocol

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader

# Generous retries: the sandbox can inject throttling, and a deployment should survive it as on AWS.
RETRY_CONFIG = Config(
    retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=5, read_timeout=60, tcp_keepalive=True
)
DETAIL_TYPE = "CodeDeploy Deployment State-change Notification"
SOURCE = "aws.codedeploy"


class AwsCallError(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AwsPort(Protocol):
    def get_alias(self, function: str, alias: str) -> dict[str, Any]: ...

    def get_function_configuration(self, function: str, qualifier: str | None = None) -> dict[str, Any]: ...

    def update_alias(self, function: str, alias: str, version: str, weights: dict[str, float]) -> None: ...

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None: ...

    def alarm_states(self, names: list[str]) -> dict[str, str]: ...

    def put_event(self, detail: dict[str, Any], resources: list[str], time: datetime) -> None: ...


def _call_error(exc: Exception) -> AwsCallError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return AwsCallError(str(error.get("Code", "Unknown")), str(error.get("Message", "")))
    return AwsCallError(type(exc).__name__, str(exc))


# What CodeDeploy reads of each alarm DescribeAlarms returns.
ALARM_MEMBERS = frozenset({"AlarmName", "StateValue"})


class AlarmStatesLoader(Loader):
    """botocore's models, with CloudWatch's alarm shapes cut to the members CodeDeploy reads.

    A poll's answer holds up to a hundred whole alarms; parsing every member of each (metrics, dimensions,
    timestamps, reasons) was most of the CPU a poll cost the sandbox's CodeDeploy. With these shapes botocore
    builds only the name and state of each alarm from the same answer. Requests are built from the input
    shapes, which are untouched: the same call reaches the sandbox, is authorised, and is answered as before.
    """

    def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        model = super().load_service_model(service_name, type_name, api_version)
        if service_name != "cloudwatch" or type_name != "service-2":
            return model
        shapes = dict(model["shapes"])
        for name in ("MetricAlarm", "CompositeAlarm"):
            shape = dict(shapes[name])
            shape["members"] = {k: v for k, v in shape["members"].items() if k in ALARM_MEMBERS}
            if "required" in shape:
                shape["required"] = [k for k in shape["required"] if k in ALARM_MEMBERS]
            shapes[name] = shape
        return {**model, "shapes": shapes}


def _botocore_session() -> botocore.session.Session:
    session = botocore.session.Session()
    data_path = session.get_config_variable("data_path")
    # as botocore.loaders.create_loader reads AWS_DATA_PATH
    paths = (
        [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else []
    )
    session.register_component("data_loader", AlarmStatesLoader(extra_search_paths=paths))
    return session


class BotoAws:
    def __init__(self, endpoint_url: str, region: str, credentials: dict[str, str] | None = None) -> None:
        # Without credentials (the service's own calls) fixed fake ones keep the host's out of the picture;
        # the sandbox treats them as its operator's.
        fake = "sandbox"
        arguments = credentials or {"aws_access_key_id": fake, "aws_secret_access_key": fake}
        session = boto3.session.Session(region_name=region, botocore_session=_botocore_session(), **arguments)

        def make(service: str) -> Any:
            return session.client(service, endpoint_url=endpoint_url, config=RETRY_CONFIG)

        self._lambda = make("lambda")
        self._cloudwatch = make("cloudwatch")
        self._events = make("events")

    def get_alias(self, function: str, alias: str) -> dict[str, Any]:
        try:
            return dict(self._lambda.get_alias(FunctionName=function, Name=alias))
        except (ClientError, BotoCoreError) as exc:
            raise _call_error(exc) from exc

    def get_function_configuration(self, function: str, qualifier: str | None = None) -> dict[str, Any]:
        params = {"FunctionName": function}
        if qualifier:
            params["Qualifier"] = qualifier
        try:
            return dict(self._lambda.get_function_configuration(**params))
        except (ClientError, BotoCoreError) as exc:
            raise _call_error(exc) from exc

    def update_alias(self, function: str, alias: str, version: str, weights: dict[str, float]) -> None:
        try:
            self._lambda.update_alias(
                FunctionName=function,
                Name=alias,
                FunctionVersion=version,
                RoutingConfig={"AdditionalVersionWeights": weights},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _call_error(exc) from exc

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        try:
            self._lambda.invoke(
                FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode()
            )
        except (ClientError, BotoCoreError) as exc:
            raise _call_error(exc) from exc

    def alarm_states(self, names: list[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        try:
            paginator = self._cloudwatch.get_paginator("describe_alarms")
            for page in paginator.paginate(AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    states[alarm["AlarmName"]] = alarm["StateValue"]
        except (ClientError, BotoCoreError) as exc:
            raise _call_error(exc) from exc
        return states

    def put_event(self, detail: dict[str, Any], resources: list[str], time: datetime) -> None:
        try:
            answer = self._events.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": DETAIL_TYPE,
                        "Detail": json.dumps(detail),
                        "Resources": resources,
                        "EventBusName": "default",
                        "Time": time,
                    }
                ]
            )
        except (ClientError, BotoCoreError) as exc:
            raise _call_error(exc) from exc
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            raise AwsCallError(str(entry.get("ErrorCode")), str(entry.get("ErrorMessage")))


class RoleAws:
    """CodeDeploy acting for one deployment with its group's service role.

    What the role's policies govern goes through `role`: reading and updating the alias, invoking hooks
    and reading alarms, the calls AWSCodeDeployRoleForLambda grants (lambda:GetAlias, lambda:UpdateAlias,
    lambda:InvokeFunction on CodeDeployHook_*, cloudwatch:DescribeAlarms). The sandbox's own check that
    a version exists, and the state-change events CodeDeploy itself sends to EventBridge, are the
    service's and go through `service`: that managed policy grants no lambda:GetFunction* and no
    events:PutEvents, so CodeDeploy does not make them as the role.
    """

    def __init__(self, role: AwsPort, service: AwsPort) -> None:
        self.role = role
        self.service = service

    def get_alias(self, function: str, alias: str) -> dict[str, Any]:
        return self.role.get_alias(function, alias)

    def get_function_configuration(self, function: str, qualifier: str | None = None) -> dict[str, Any]:
        return self.service.get_function_configuration(function, qualifier)

    def update_alias(self, function: str, alias: str, version: str, weights: dict[str, float]) -> None:
        self.role.update_alias(function, alias, version, weights)

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        self.role.invoke_async(function, payload)

    def alarm_states(self, names: list[str]) -> dict[str, str]:
        return self.role.alarm_states(names)

    def put_event(self, detail: dict[str, Any], resources: list[str], time: datetime) -> None:
        self.service.put_event(detail, resources, time)
