"""Reading a SAM template and transforming it into plain CloudFormation, with no AWS account.

aws-sam-translator only accepts S3 code locations, so local `CodeUri` / `ContentUri` folders are
swapped for placeholder S3 locations before the transform and `LocalCode` maps them back to folders
(relative to the template's directory) when the functions and layers are created.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from sandbox.provision.errors import TemplateError

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
LOCAL_CODE_BUCKET = "sandbox-provision-local-code"

# AWS managed policies SAM templates name in `Policies` (name -> ARN). The translator needs this map
# and would otherwise ask IAM for it; a name not listed here fails the transform, naming it.
MANAGED_POLICY_ARNS: dict[str, str] = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in [
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaRole"),
        ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
        ("service-role/", "AWSLambdaDynamoDBExecutionRole"),
        ("service-role/", "AWSLambdaSQSQueueExecutionRole"),
        ("service-role/", "AWSCodeDeployRoleForLambda"),
        ("service-role/", "AWSCodeDeployRoleForLambdaLimited"),
        ("", "AWSXRayDaemonWriteAccess"),
        ("", "AWSLambdaExecute"),
        ("", "AWSLambda_ReadOnlyAccess"),
        ("", "AWSLambda_FullAccess"),
        ("", "CloudWatchLambdaInsightsExecutionRolePolicy"),
        ("", "CloudWatchReadOnlyAccess"),
        ("", "AmazonDynamoDBFullAccess"),
        ("", "AmazonDynamoDBReadOnlyAccess"),
        ("", "AmazonS3ReadOnlyAccess"),
        ("", "AmazonS3FullAccess"),
        ("", "AmazonSNSFullAccess"),
        ("", "AmazonSQSFullAccess"),
        ("", "SecretsManagerReadWrite"),
    ]
}


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsic tags (!Ref, !Sub, !GetAtt A.B, ...)."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if tag_suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    try:
        document = yaml.load(path.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources mapping)")
    return document


@dataclass
class LocalCode:
    """Local code folders standing behind placeholder S3 locations in the transformed template."""

    base_dir: Path
    folders: dict[str, Path] = field(default_factory=dict)
    # Folders whose build compiles every module to bytecode (a layer with `BuildMethod: makefile`:
    # layers/rollout/Makefile); `sam build`'s language methods ship sources only.
    compiled: set[str] = field(default_factory=set)

    def placeholder(self, uri: str, build_method: Any = None) -> str:
        folder = (self.base_dir / uri).resolve()
        if not folder.is_dir():
            raise TemplateError(f"code folder {uri!r} does not exist (looked in {folder})")
        key = f"{len(self.folders)}/{folder.name}"
        self.folders[key] = folder
        if build_method == "makefile":
            self.compiled.add(key)
        return f"s3://{LOCAL_CODE_BUCKET}/{key}"

    def is_compiled(self, location: Any) -> bool:
        """Whether the build behind this placeholder location ships bytecode for every module."""
        return isinstance(location, dict) and location.get("S3Key") in self.compiled

    def folder(self, location: Any) -> Path | None:
        """The local folder behind an S3 location {S3Bucket, S3Key}, or None for real S3 code."""
        if isinstance(location, dict) and location.get("S3Bucket") == LOCAL_CODE_BUCKET:
            return self.folders[location["S3Key"]]
        return None


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def _swap_local_code(template: dict[str, Any], local_code: LocalCode) -> None:
    globals_function = template.get("Globals", {}).get("Function", {})
    if _is_local(globals_function.get("CodeUri")):
        globals_function["CodeUri"] = local_code.placeholder(globals_function["CodeUri"])
    for resource in template["Resources"].values():
        properties = resource.get("Properties") if isinstance(resource, dict) else None
        if not isinstance(properties, dict):
            continue
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and _is_local(properties.get("CodeUri")):
            properties["CodeUri"] = local_code.placeholder(properties["CodeUri"])
        elif kind == "AWS::Serverless::LayerVersion" and _is_local(properties.get("ContentUri")):
            metadata = resource.get("Metadata")
            method = metadata.get("BuildMethod") if isinstance(metadata, dict) else None
            properties["ContentUri"] = local_code.placeholder(properties["ContentUri"], method)
        elif (
            kind == "AWS::Serverless::Function"
            and "CodeUri" not in properties
            and "InlineCode" not in properties
            and "CodeUri" not in globals_function
        ):
            # SAM CLI builds a function without CodeUri from the template's own folder.
            properties["CodeUri"] = local_code.placeholder(".")


def _uses_sam(template: dict[str, Any]) -> bool:
    transform = template.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    return SAM_TRANSFORM in transforms


def to_cloudformation(
    template: dict[str, Any], *, base_dir: Path, parameters: dict[str, str], region: str, account_id: str
) -> tuple[dict[str, Any], LocalCode]:
    """The plain CloudFormation for `template` (SAM-transformed if it declares the SAM transform)."""
    local_code = LocalCode(base_dir)
    document = copy.deepcopy(template)
    if not _uses_sam(document):
        return document, local_code
    _swap_local_code(document, local_code)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    parameter_values: dict[str, Any] = {**parameters, "AWS::AccountId": account_id}
    try:
        transformed = translator.translate(
            document, parameter_values=parameter_values, get_managed_policy_map=lambda: MANAGED_POLICY_ARNS
        )
    except InvalidDocumentException as exc:
        messages = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM transform failed: {messages}") from exc
    finally:
        translator.metrics.publish()  # to its offline publisher; unpublished metrics warn at exit
    return transformed, local_code
