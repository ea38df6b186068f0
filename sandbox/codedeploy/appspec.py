"""The AppSpec of a Lambda deployment: parsing and the checks CodeDeploy makes on it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

BEFORE_ALLOW_TRAFFIC = "BeforeAllowTraffic"
AFTER_ALLOW_TRAFFIC = "AfterAllowTraffic"
HOOK_EVENTS = (BEFORE_ALLOW_TRAFFIC, AFTER_ALLOW_TRAFFIC)
FUNCTION_TYPE = "AWS::Lambda::Function"
PROPERTIES = ("Name", "Alias", "CurrentVersion", "TargetVersion")


class AppSpecError(ValueError):
    """The AppSpec content is not a valid Lambda AppSpec; the message says what is wrong."""


@dataclass(frozen=True)
class AppSpec:
    function_name: str
    alias: str
    current_version: str
    target_version: str
    hooks: dict[str, str]  # lifecycle event -> hook function name

    def hook_for(self, lifecycle_event: str) -> str | None:
        return self.hooks.get(lifecycle_event)


def content_sha256(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def render(spec: AppSpec) -> str:
    """AppSpec content for `spec` (JSON, which CodeDeploy accepts as well as YAML)."""
    document: dict[str, Any] = {
        "version": 0.0,
        "Resources": [
            {
                spec.function_name: {
                    "Type": FUNCTION_TYPE,
                    "Properties": {
                        "Name": spec.function_name,
                        "Alias": spec.alias,
                        "CurrentVersion": spec.current_version,
                        "TargetVersion": spec.target_version,
                    },
                }
            }
        ],
    }
    if spec.hooks:
        document["Hooks"] = [{event: spec.hooks[event]} for event in HOOK_EVENTS if event in spec.hooks]
    return json.dumps(document)


def _version(value: Any, field: str) -> str:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) < 1:
        raise AppSpecError(f"{field} must be a published version number (a positive integer), got {value!r}.")
    return str(int(text))


def _function_resource(resources: Any) -> dict[str, Any]:
    if not isinstance(resources, list) or len(resources) != 1:
        raise AppSpecError("Resources must list exactly one Lambda function.")
    entry = resources[0]
    if not isinstance(entry, dict) or len(entry) != 1:
        raise AppSpecError("Each Resources entry must map one logical name to a function definition.")
    definition = next(iter(entry.values()))
    if not isinstance(definition, dict):
        raise AppSpecError("The function definition in Resources must be a mapping.")
    if definition.get("Type") != FUNCTION_TYPE:
        raise AppSpecError(f"The resource Type must be {FUNCTION_TYPE}, got {definition.get('Type')!r}.")
    properties = definition.get("Properties")
    if not isinstance(properties, dict):
        raise AppSpecError("The function resource needs Properties.")
    missing = [name for name in PROPERTIES if properties.get(name) in (None, "")]
    if missing:
        raise AppSpecError(f"The function resource Properties lack {', '.join(missing)}.")
    return properties


def _hooks(hooks: Any) -> dict[str, str]:
    if hooks is None:
        return {}
    if not isinstance(hooks, list):
        raise AppSpecError("Hooks must be a list of {LifecycleEvent: FunctionName} entries.")
    found: dict[str, str] = {}
    for entry in hooks:
        if not isinstance(entry, dict) or not entry:
            raise AppSpecError("Each Hooks entry must map a lifecycle event to a function name.")
        for event, function in entry.items():
            if event not in HOOK_EVENTS:
                raise AppSpecError(
                    f"{event!r} is not a Lambda lifecycle event hook (use {' or '.join(HOOK_EVENTS)})."
                )
            if event in found:
                raise AppSpecError(f"The {event} hook is given more than once.")
            if not isinstance(function, str) or not function.strip():
                raise AppSpecError(f"The {event} hook must name one Lambda function.")
            found[event] = function.strip()
    return found


def parse(content: str) -> AppSpec:
    """Parse AppSpec content (YAML or JSON) into an AppSpec, or raise AppSpecError."""
    if not isinstance(content, str) or not content.strip():
        raise AppSpecError("The AppSpec content is empty.")
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise AppSpecError(f"The AppSpec content is neither YAML nor JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise AppSpecError("The AppSpec content must be a mapping with version, Resources and Hooks.")
    if str(document.get("version")) not in ("0.0", "0"):
        raise AppSpecError(f"The AppSpec version must be 0.0, got {document.get('version')!r}.")
    properties = _function_resource(document.get("Resources"))
    name, alias = properties["Name"], properties["Alias"]
    if not isinstance(name, str) or not isinstance(alias, str):
        raise AppSpecError("Name and Alias must be strings.")
    current = _version(properties["CurrentVersion"], "CurrentVersion")
    target = _version(properties["TargetVersion"], "TargetVersion")
    if current == target:
        raise AppSpecError(
            f"TargetVersion {target} is the same as CurrentVersion: there is nothing to deploy."
        )
    return AppSpec(name, alias, current, target, _hooks(document.get("Hooks")))
