"""Managed functions: what a target function's `rollout:*` tags ask for, and where its alias points (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rollout.errors import Rejected

TAG_MANAGED = "rollout:managed"
TAG_ALIAS = "rollout:alias"
TAG_DEPLOYMENT_CONFIG = "rollout:deployment-config"
TAG_ALARMS = "rollout:alarms"
DEFAULT_ALIAS = "live"

BUILTIN_PREFIX = "CodeDeployDefault."
# Short names of the built-in Lambda configurations, as people write them in tags.
BUILTIN_SHORT_NAMES = frozenset(
    {
        "Canary10Percent5Minutes",
        "Canary10Percent10Minutes",
        "Canary10Percent15Minutes",
        "Canary10Percent30Minutes",
        "Linear10PercentEvery1Minute",
        "Linear10PercentEvery2Minutes",
        "Linear10PercentEvery3Minutes",
        "Linear10PercentEvery10Minutes",
        "AllAtOnce",
    }
)
MAX_GROUP_ALARMS = 10  # CodeDeploy's limit per deployment group
CANARY_ALARMS_PER_RELEASE = 2
ALIAS_NAME = re.compile(r"(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}")
CONFIG_NAME = re.compile(r"[A-Za-z0-9._+=,@-]{1,100}")


def is_builtin_config(full_name: str) -> bool:
    """A CodeDeploy-defined configuration (its full name, `deployment_config_name`), not a custom one."""
    return full_name.startswith(BUILTIN_PREFIX)


def deployment_config_name(name: str) -> str:
    """Full CodeDeploy name for a tag value: short built-in names gain their prefix; others pass."""
    name = name.strip()
    if is_builtin_config(name):
        return name
    if name in BUILTIN_SHORT_NAMES:
        return f"{BUILTIN_PREFIX}Lambda{name}"
    if name.startswith("Lambda") and name.removeprefix("Lambda") in BUILTIN_SHORT_NAMES:
        return f"{BUILTIN_PREFIX}{name}"
    return name  # a custom configuration, used as named


@dataclass(frozen=True)
class AliasRouting:
    """Where an alias sends traffic: its version and any additional version weights."""

    version: str
    weights: dict[str, float] = field(default_factory=dict)
    name: str = ""
    revision_id: str = ""

    @property
    def has_weights(self) -> bool:
        return bool(self.weights)

    def serves_only(self, version: str) -> bool:
        return self.version == version and not any(w > 0 for w in self.weights.values())

    def describe(self) -> str:
        if not self.weights:
            return f"all traffic on v{self.version}"
        shares = ", ".join(f"v{v} {w:.0%}" for v, w in sorted(self.weights.items()))
        return f"traffic split: v{self.version} main, {shares}"


@dataclass(frozen=True)
class ManagedFunction:
    """A function Rollout releases, as its `rollout:` tags and configuration describe it."""

    name: str
    alias: str
    deployment_config: str
    alarms: list[str] = field(default_factory=list)
    # From the function's configuration: what the handler check needs to know.
    handler: str = ""
    runtime: str = ""
    has_layers: bool = False
    environment: dict[str, str] = field(default_factory=dict)


def managed_function(name: str, tags: dict[str, str], default_config: str) -> ManagedFunction:
    """Read the function's rollout tags; raise Rejected when it is not managed or a tag is unusable."""
    managed = tags.get(TAG_MANAGED)
    if (managed or "").strip().lower() != "true":
        shown = f"is {managed!r}" if managed is not None else "is missing"
        raise Rejected(
            "FUNCTION_NOT_MANAGED",
            f"function {name!r} is not managed by Rollout: tag {TAG_MANAGED} {shown} (must be 'true')",
        )
    alias = (tags.get(TAG_ALIAS) or DEFAULT_ALIAS).strip()
    if not ALIAS_NAME.fullmatch(alias):
        raise Rejected(
            "BAD_TAG",
            f"function {name!r}: tag {TAG_ALIAS} {alias!r} is not an alias name "
            "(1-128 letters, digits, hyphens or underscores, not only digits)",
        )
    config = deployment_config_name(tags.get(TAG_DEPLOYMENT_CONFIG) or default_config)
    if not CONFIG_NAME.fullmatch(config):
        raise Rejected(
            "BAD_TAG",
            f"function {name!r}: tag {TAG_DEPLOYMENT_CONFIG} {config!r} is not a configuration name",
        )
    alarms = list(dict.fromkeys((tags.get(TAG_ALARMS) or "").split()))
    room = MAX_GROUP_ALARMS - CANARY_ALARMS_PER_RELEASE
    if len(alarms) > room:
        raise Rejected(
            "BAD_TAG",
            f"function {name!r}: tag {TAG_ALARMS} names {len(alarms)} alarms; a deployment group takes "
            f"{MAX_GROUP_ALARMS}, {CANARY_ALARMS_PER_RELEASE} of them for the release's canary alarms, so at most {room}",
        )
    return ManagedFunction(name=name, alias=alias, deployment_config=config, alarms=alarms)
