"""Provision a whole stack from its template against a local AWS endpoint, as CloudFormation would.

The template (SAM or plain CloudFormation) is transformed, its Conditions evaluated, every remaining
resource checked against the handler registry before anything is created, then created in dependency
order through plain boto3 clients. There is no rollback: a failure names the resource and leaves what
was created for inspection (a sandbox is thrown away, not repaired).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sandbox.provision.coercion import coerce_parameters
from sandbox.provision.context import Created, ResourceContext, StackContext
from sandbox.provision.errors import (
    ProvisionError,
    ResourceCreationError,
    TemplateError,
    UnsupportedResourceError,
)
from sandbox.provision.intrinsics import NO_VALUE, Resolver, creation_order
from sandbox.provision.resources import HANDLERS
from sandbox.provision.template import LocalCode, load_template, to_cloudformation

# Local credentials: the sandbox accepts any; never real ones, so nothing here can reach AWS.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)

StackOutputs = dict[str, str]


@dataclass
class ProvisionedResource:
    logical_id: str
    resource_type: str
    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    """The properties it was created with, intrinsics resolved."""


@dataclass
class ProvisionedStack:
    """What was provisioned: outputs, and every resource's physical id by logical id."""

    stack_name: str
    region: str
    account_id: str
    endpoint_url: str
    outputs: StackOutputs
    exports: dict[str, str]
    resources: dict[str, ProvisionedResource]
    skipped: dict[str, str]
    """Resources left out by their Condition (logical id -> condition name)."""
    code_folders: dict[str, str]
    """Function logical id -> the local code folder it was built from (relative to the template)."""
    notes: list[str]
    elapsed_seconds: float

    @property
    def physical_ids(self) -> dict[str, str]:
        return {logical_id: resource.physical_id for logical_id, resource in self.resources.items()}

    @property
    def function_names(self) -> dict[str, str]:
        return {
            logical_id: resource.physical_id
            for logical_id, resource in self.resources.items()
            if resource.resource_type == "AWS::Lambda::Function"
        }

    def function_for(self, code_folder: str) -> str:
        """The function built from `code_folder` (e.g. "functions/reconciler", or just "reconciler")."""
        wanted = code_folder.rstrip("/")
        matches = [
            self.resources[logical_id].physical_id
            for logical_id, folder in self.code_folders.items()
            if folder == wanted or Path(folder).name == wanted
        ]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} functions built from {code_folder!r}: {matches}")
        return matches[0]

    def to_json(self) -> str:
        document = asdict(self)
        document["physical_ids"] = self.physical_ids
        document["function_names"] = self.function_names
        return json.dumps(document, indent=2, sort_keys=True, default=str)


def _partition(region: str) -> tuple[str, str]:
    if region.startswith("cn-"):
        return "aws-cn", "amazonaws.com.cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov", "amazonaws.com"
    return "aws", "amazonaws.com"


def _check_parameter(name: str, value: str, spec: dict[str, Any]) -> None:
    """The constraints CloudFormation checks before it creates anything."""
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(item) for item in allowed]:
        raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")


def _parameter_values(template: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """Each template parameter's value: given, else its Default; lists split as CloudFormation does."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"parameters {', '.join(unknown)} are not declared in the template")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value: Any = given[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default and no value was given")
        value = str(value) if not isinstance(value, list) else ",".join(map(str, value))
        _check_parameter(name, value, spec)
        kind = str(spec.get("Type", "String"))
        values[name] = (
            value.split(",") if (kind == "CommaDelimitedList" or kind.startswith("List<")) else value
        )
    return values


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _output_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return value if isinstance(value, str) else json.dumps(value)


class _Provisioner:
    def __init__(
        self,
        template: dict[str, Any],
        local_code: LocalCode,
        stack: StackContext,
        parameters: dict[str, Any],
        pseudo: dict[str, Any],
    ) -> None:
        self.template = template
        self.local_code = local_code
        self.stack = stack
        self.definitions: dict[str, dict[str, Any]] = template["Resources"]
        self.created: dict[str, Created] = {}
        self.resolver = Resolver(
            parameters=parameters,
            pseudo_parameters=pseudo,
            conditions=template.get("Conditions") or {},
            mappings=template.get("Mappings") or {},
            ref=self._ref,
            get_att=self._get_att,
        )
        self.skipped: dict[str, str] = {}
        self.properties: dict[str, dict[str, Any]] = {}

    # -- lookups for the resolver ---------------------------------------------------------------

    def _known(self, logical_id: str) -> Created:
        if logical_id in self.created:
            return self.created[logical_id]
        if logical_id in self.skipped:
            raise TemplateError(
                f"{logical_id} is referenced but condition {self.skipped[logical_id]} leaves it out of the stack"
            )
        if logical_id in self.definitions:
            raise TemplateError(f"{logical_id} is referenced before it was created")
        raise TemplateError(f"{logical_id} is neither a parameter nor a resource of the template")

    def _ref(self, logical_id: str) -> Any:
        return self._known(logical_id).physical_id

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        created = self._known(logical_id)
        resource_type = self.definitions[logical_id]["Type"]
        if attribute not in HANDLERS[resource_type].attributes or attribute not in created.attributes:
            raise TemplateError(
                f"Fn::GetAtt {logical_id}.{attribute}: {resource_type} has no attribute {attribute} here "
                f"(available: {', '.join(sorted(HANDLERS[resource_type].attributes)) or 'none'})"
            )
        return created.attributes[attribute]

    # -- planning -------------------------------------------------------------------------------

    def plan(self) -> list[str]:
        """The resources to create, in order; refuses the stack if any cannot be provisioned."""
        active: dict[str, dict[str, Any]] = {}
        for logical_id, definition in self.definitions.items():
            if not isinstance(definition, dict) or "Type" not in definition:
                raise TemplateError(f"resource {logical_id} has no Type")
            condition = definition.get("Condition")
            if condition is not None and not self.resolver.condition(condition):
                self.skipped[logical_id] = condition
            else:
                active[logical_id] = definition
        problems = []
        for logical_id, definition in active.items():
            resource_type = definition["Type"]
            handler = HANDLERS.get(resource_type)
            if handler is None:
                problems.append(f"resource {logical_id} has type {resource_type}, which has no local handler")
                continue
            properties = definition.get("Properties") or {}
            for prop in handler.unsupported_properties(properties):
                problems.append(
                    f"resource {logical_id} ({resource_type}) uses property {prop}, which is not supported"
                )
        if problems:
            raise UnsupportedResourceError(problems)
        dependencies: dict[str, set[str]] = {}
        for logical_id, definition in active.items():
            referenced = self.resolver.references(definition.get("Properties") or {})
            needs = {name for name in referenced if name in self.definitions}
            for name in needs | set(_as_list(definition.get("DependsOn"))):
                if name in self.skipped:
                    raise TemplateError(
                        f"{logical_id} needs {name}, which condition {self.skipped[name]} leaves out of the stack"
                    )
                if name not in self.definitions:
                    raise TemplateError(
                        f"{logical_id} depends on {name}, which the template does not declare"
                    )
            dependencies[logical_id] = needs | set(_as_list(definition.get("DependsOn")))
        return creation_order(dependencies)

    # -- creation -------------------------------------------------------------------------------

    def create(self, order: list[str]) -> None:
        for logical_id in order:
            definition = self.definitions[logical_id]
            resource_type = definition["Type"]
            try:
                properties = self.resolver.resolve(definition.get("Properties") or {})
                ctx = ResourceContext(logical_id, resource_type, properties, self.stack)
                self.created[logical_id] = HANDLERS[resource_type].create(ctx)
                self.properties[logical_id] = properties
            except (ClientError, BotoCoreError, TemplateError, KeyError, TypeError, ValueError) as exc:
                raise ResourceCreationError(logical_id, resource_type, exc, list(self.created)) from exc

    def outputs(self) -> tuple[dict[str, str], dict[str, str]]:
        outputs: dict[str, str] = {}
        exports: dict[str, str] = {}
        for name, output in (self.template.get("Outputs") or {}).items():
            condition = output.get("Condition")
            if condition is not None and not self.resolver.condition(condition):
                continue
            try:
                value = self.resolver.resolve(output["Value"])
                if value is NO_VALUE:
                    continue
                outputs[name] = _output_text(value)
                if "Export" in output:
                    exports[_output_text(self.resolver.resolve(output["Export"]["Name"]))] = outputs[name]
            except TemplateError as exc:
                raise TemplateError(f"output {name}: {exc}") from exc
        return outputs, exports

    def code_folders(self, base_dir: Path) -> dict[str, str]:
        folders = {}
        for logical_id in self.created:
            definition = self.definitions[logical_id]
            if definition["Type"] != "AWS::Lambda::Function":
                continue
            folder = self.local_code.folder((definition.get("Properties") or {}).get("Code"))
            if folder is not None:
                try:
                    folders[logical_id] = folder.relative_to(base_dir.resolve()).as_posix()
                except ValueError:
                    folders[logical_id] = folder.as_posix()
        return folders


def _client_factory(endpoint_url: str, region: str) -> Any:
    session = boto3.session.Session(region_name=region, **_LOCAL_CREDENTIALS)

    @cache
    def client(service: str) -> Any:
        created = session.client(service, endpoint_url=endpoint_url, config=_CLIENT_CONFIG)
        created.meta.events.register("before-parameter-build", coerce_parameters)
        return created

    return client


def _prepare(
    template_path: Path,
    stack_name: str,
    parameters: dict[str, str] | None,
    region: str,
    account_id: str,
    client: Any,
) -> tuple[_Provisioner, list[str]]:
    given = dict(parameters or {})
    source = load_template(template_path)
    template, local_code = to_cloudformation(
        source, base_dir=template_path.parent, parameters=given, region=region, account_id=account_id
    )
    partition, url_suffix = _partition(region)
    stack_id = (
        f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/"
        f"{uuid.uuid5(uuid.NAMESPACE_URL, f'{account_id}/{region}/{stack_name}')}"
    )
    pseudo = {
        "AWS::StackName": stack_name,
        "AWS::StackId": stack_id,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": partition,
        "AWS::URLSuffix": url_suffix,
        "AWS::NotificationARNs": [],
    }
    stack = StackContext(stack_name, region, account_id, partition, local_code, client)
    provisioner = _Provisioner(template, local_code, stack, _parameter_values(template, given), pseudo)
    return provisioner, provisioner.plan()


@dataclass
class StackPlan:
    """What provisioning would create, in order, and what its conditions leave out."""

    order: list[str]
    resource_types: dict[str, str]
    skipped: dict[str, str]


def _no_client(service: str) -> Any:
    raise ProvisionError(f"planning makes no AWS calls (asked for {service})")


def plan_stack(
    template_path: Path,
    stack_name: str,
    parameters: dict[str, str] | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> StackPlan:
    """Transform and check the template and order its resources, without creating anything.

    Raises the same errors provisioning would raise before its first call (unsupported types or
    properties, bad parameters, references to missing or skipped resources, dependency loops).
    """
    provisioner, order = _prepare(Path(template_path), stack_name, parameters, region, account_id, _no_client)
    types = {logical_id: provisioner.definitions[logical_id]["Type"] for logical_id in order}
    return StackPlan(order, types, provisioner.skipped)


def _record_in_cloudformation(
    client: Any, stack_name: str, outputs: dict[str, str], notes: list[str]
) -> None:
    """Make the stack answer CloudFormation DescribeStacks with its outputs, as a deployed stack does,
    so tools that find the stack's resources that way (the `rollout` command) work unchanged.

    The record holds one no-op resource and the outputs as literal values: its resources were created
    directly, not by the local CloudFormation."""
    record = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Provisioned by the sandbox from the stack's template; outputs recorded as values.",
        "Resources": {"ProvisionedBySandbox": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    try:
        client("cloudformation").create_stack(StackName=stack_name, TemplateBody=json.dumps(record))
    except (ClientError, BotoCoreError) as exc:
        notes.append(f"stack not recorded in CloudFormation (DescribeStacks will not find it): {exc}")


def provision_stack(
    endpoint_url: str,
    template_path: Path,
    stack_name: str,
    parameters: dict[str, str] | None = None,
    region: str = "us-east-1",
    account_id: str | None = None,
    record_stack: bool = True,
) -> ProvisionedStack:
    """Create every resource of the template at `endpoint_url` and return the stack's outputs and ids.

    `account_id` defaults to the account the endpoint's STS reports. With `record_stack`, the stack
    and its outputs also answer CloudFormation DescribeStacks.
    """
    started = time.perf_counter()
    template_path = Path(template_path)
    client = _client_factory(endpoint_url, region)
    if account_id is None:
        account_id = str(client("sts").get_caller_identity()["Account"])
    provisioner, order = _prepare(template_path, stack_name, parameters, region, account_id, client)
    provisioner.create(order)
    outputs, exports = provisioner.outputs()
    if record_stack:
        _record_in_cloudformation(client, stack_name, outputs, provisioner.stack.notes)
    resources = {
        logical_id: ProvisionedResource(
            logical_id,
            provisioner.definitions[logical_id]["Type"],
            created.physical_id,
            created.attributes,
            provisioner.properties[logical_id],
        )
        for logical_id, created in provisioner.created.items()
    }
    return ProvisionedStack(
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        endpoint_url=endpoint_url,
        outputs=outputs,
        exports=exports,
        resources=resources,
        skipped=provisioner.skipped,
        code_folders=provisioner.code_folders(template_path.parent),
        notes=provisioner.stack.notes,
        elapsed_seconds=round(time.perf_counter() - started, 3),
    )
