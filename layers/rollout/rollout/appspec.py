"""The Lambda AppSpec: built for CreateDeployment, parsed back by the hooks (pure).

The hooks learn what to test from the deployment's own AppSpec, so a deployment started by SAM,
CDK or a person (JSON or YAML AppSpec) parses the same way as one started by Rollout.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from rollout.errors import AppSpecError

RESOURCE_TYPE = "AWS::Lambda::Function"


class LambdaAppSpec(NamedTuple):
    function: str
    alias: str
    current_version: str
    target_version: str
    before_allow_traffic: str | None = None
    after_allow_traffic: str | None = None


def build_appspec(
    function: str,
    alias: str,
    current_version: str,
    target_version: str,
    before_allow_traffic: str | None = None,
    after_allow_traffic: str | None = None,
) -> dict[str, Any]:
    """The AppSpec document moving `alias` of `function` from `current_version` to `target_version`."""
    for name, value in (("current_version", current_version), ("target_version", target_version)):
        if not str(value).isdigit() or int(value) < 1:
            raise AppSpecError(f"{name} must be a published version number, got {value!r}")
    if str(current_version) == str(target_version):
        # CodeDeploy refuses a deployment whose target is already the current version.
        raise AppSpecError(f"target version {target_version} is already the current version")
    hooks = []
    if before_allow_traffic:
        hooks.append({"BeforeAllowTraffic": before_allow_traffic})
    if after_allow_traffic:
        hooks.append({"AfterAllowTraffic": after_allow_traffic})
    document: dict[str, Any] = {
        "version": 0.0,
        "Resources": [
            {
                _logical_id(function): {
                    "Type": RESOURCE_TYPE,
                    "Properties": {
                        "Name": function,
                        "Alias": alias,
                        "CurrentVersion": str(current_version),
                        "TargetVersion": str(target_version),
                    },
                }
            }
        ],
    }
    if hooks:
        document["Hooks"] = hooks
    return document


def revision_for(appspec: dict[str, Any]) -> dict[str, Any]:
    """The CreateDeployment `revision` carrying `appspec` inline, with its SHA-256."""
    content = json.dumps(appspec, sort_keys=True, separators=(",", ":"))
    return {
        "revisionType": "AppSpecContent",
        "appSpecContent": {"content": content, "sha256": hashlib.sha256(content.encode()).hexdigest()},
    }


def parse_appspec(content: str) -> LambdaAppSpec:
    """Read function, alias, versions and hooks from an AppSpec's content (JSON or YAML)."""
    try:
        document = json.loads(content)  # what Rollout and SAM send
    except ValueError:
        document = _load_yaml(content)
    return _from_document(document)


def _load_yaml(content: str) -> Any:
    # Imported here: PyYAML costs ~40 ms of cold start and only hand-written AppSpecs use YAML.
    import yaml

    try:
        return yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise AppSpecError(f"AppSpec is neither JSON nor YAML: {exc}") from exc


def _from_document(document: Any) -> LambdaAppSpec:
    if not isinstance(document, dict):
        raise AppSpecError("AppSpec must be a mapping")
    resources = document.get("Resources")
    if not isinstance(resources, list) or len(resources) != 1 or not isinstance(resources[0], dict):
        raise AppSpecError("AppSpec Resources must list exactly one function")
    resource = next(iter(resources[0].values())) if len(resources[0]) == 1 else None
    if not isinstance(resource, dict) or resource.get("Type") != RESOURCE_TYPE:
        raise AppSpecError(f"AppSpec resource must be one {RESOURCE_TYPE}")
    properties = resource.get("Properties")
    if not isinstance(properties, dict):
        raise AppSpecError("AppSpec resource has no Properties")
    values = {}
    for key in ("Name", "Alias", "CurrentVersion", "TargetVersion"):
        value = properties.get(key)
        if value is None or str(value).strip() == "":
            raise AppSpecError(f"AppSpec resource property {key} is missing")
        values[key] = str(value).strip()
    hooks: dict[str, str] = {}
    raw_hooks = document.get("Hooks") or []
    if not isinstance(raw_hooks, list):
        raise AppSpecError("AppSpec Hooks must be a list")
    for entry in raw_hooks:
        if not isinstance(entry, dict):
            raise AppSpecError("each AppSpec hook must be a mapping of lifecycle event to function")
        for event, hook_function in entry.items():
            hooks[str(event)] = str(hook_function)
    return LambdaAppSpec(
        function=values["Name"],
        alias=values["Alias"],
        current_version=values["CurrentVersion"],
        target_version=values["TargetVersion"],
        before_allow_traffic=hooks.get("BeforeAllowTraffic"),
        after_allow_traffic=hooks.get("AfterAllowTraffic"),
    )


def _logical_id(function: str) -> str:
    """A CloudFormation-style logical id (alphanumerics) naming the resource in the AppSpec."""
    return re.sub(r"[^A-Za-z0-9]", "", function) or "Function"


# The deployment's description names its release, so a hook finds the release by primary key (a
# consistent read) instead of racing the eventually consistent by-deployment index. CodeDeploy
# documents no length for it but answers DescriptionTooLongException; Lambda's version descriptions
# take 256 characters (botocore lambda model, PublishVersion.Description max), so both use that.
DESCRIPTION_LIMIT = 256
_RELEASE_DESCRIPTION = re.compile(r"^rollout release (?P<release_id>[0-9a-f]{23})(?::|$)")


def release_description(release_id: str, key: str) -> str:
    """`rollout release <id>: <key>`, clipped to DESCRIPTION_LIMIT; the id always survives the clip."""
    text = f"rollout release {release_id}: {key}"
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


def release_id_in(description: str) -> str:
    """The release id a Rollout deployment's description names; '' for any other description."""
    match = _RELEASE_DESCRIPTION.match(description or "")
    return match.group("release_id") if match else ""


def release_created_for(info: Mapping[str, Any]) -> str:
    """The release a start created the deployment `info` (its deploymentInfo) for, told by its description;
    '' for CodeDeploy's own rollback of another deployment, whatever its description says (whether
    CodeDeploy copies the original's into it is not documented): its AppSpec targets the version the
    release replaced, so taken as the release's own its success would read as the release's.
    botocore's codedeploy model: rollbackInfo.rollbackTriggeringDeploymentId, creator codeDeployRollback."""
    rollback = info.get("rollbackInfo") or {}
    if rollback.get("rollbackTriggeringDeploymentId") or info.get("creator") == "codeDeployRollback":
        return ""
    return release_id_in(str(info.get("description") or ""))
