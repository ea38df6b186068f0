"""Deployment configurations: the built-in ones, custom ones, and the weight schedule they imply."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

LAMBDA = "Lambda"
CANARY = "TimeBasedCanary"
LINEAR = "TimeBasedLinear"
ALL_AT_ONCE = "AllAtOnce"
BUILTIN_PREFIX = "CodeDeployDefault."
# Built-in configurations report a fixed creation time (they predate any sandbox).
BUILTIN_CREATE_TIME = 1511913600.0


class ConfigError(ValueError):
    """A deployment configuration that CodeDeploy would refuse; `code` is the AWS error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DeploymentConfig:
    name: str
    compute_platform: str
    traffic_routing: dict[str, Any] | None = None
    minimum_healthy_hosts: dict[str, Any] | None = None
    create_time: float = BUILTIN_CREATE_TIME
    config_id: str = field(default="")

    @property
    def builtin(self) -> bool:
        return self.name.startswith(BUILTIN_PREFIX)

    def to_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "deploymentConfigId": self.config_id or str(uuid.uuid5(uuid.NAMESPACE_URL, self.name)),
            "deploymentConfigName": self.name,
            "createTime": self.create_time,
            "computePlatform": self.compute_platform,
        }
        if self.traffic_routing is not None:
            info["trafficRoutingConfig"] = self.traffic_routing
        if self.minimum_healthy_hosts is not None:
            info["minimumHealthyHosts"] = self.minimum_healthy_hosts
        return info


def _canary(percent: int, minutes: int) -> dict[str, Any]:
    return {"type": CANARY, "timeBasedCanary": {"canaryPercentage": percent, "canaryInterval": minutes}}


def _linear(percent: int, minutes: int) -> dict[str, Any]:
    return {"type": LINEAR, "timeBasedLinear": {"linearPercentage": percent, "linearInterval": minutes}}


def _builtin_configs() -> dict[str, DeploymentConfig]:
    lambda_routing = {
        "LambdaCanary10Percent5Minutes": _canary(10, 5),
        "LambdaCanary10Percent10Minutes": _canary(10, 10),
        "LambdaCanary10Percent15Minutes": _canary(10, 15),
        "LambdaCanary10Percent30Minutes": _canary(10, 30),
        "LambdaLinear10PercentEvery1Minute": _linear(10, 1),
        "LambdaLinear10PercentEvery2Minutes": _linear(10, 2),
        "LambdaLinear10PercentEvery3Minutes": _linear(10, 3),
        "LambdaLinear10PercentEvery10Minutes": _linear(10, 10),
        "LambdaAllAtOnce": {"type": ALL_AT_ONCE},
    }
    ecs_routing = {
        "ECSAllAtOnce": {"type": ALL_AT_ONCE},
        "ECSLinear10PercentEvery1Minutes": _linear(10, 1),
        "ECSLinear10PercentEvery3Minutes": _linear(10, 3),
        "ECSCanary10Percent5Minutes": _canary(10, 5),
        "ECSCanary10Percent15Minutes": _canary(10, 15),
    }
    server_hosts = {
        "OneAtATime": {"type": "HOST_COUNT", "value": 1},
        "HalfAtATime": {"type": "FLEET_PERCENT", "value": 50},
        "AllAtOnce": {"type": "HOST_COUNT", "value": 0},
    }
    configs: dict[str, DeploymentConfig] = {}
    for short, routing in lambda_routing.items():
        configs[BUILTIN_PREFIX + short] = DeploymentConfig(BUILTIN_PREFIX + short, LAMBDA, routing)
    for short, routing in ecs_routing.items():
        configs[BUILTIN_PREFIX + short] = DeploymentConfig(BUILTIN_PREFIX + short, "ECS", routing)
    for short, hosts in server_hosts.items():
        configs[BUILTIN_PREFIX + short] = DeploymentConfig(
            BUILTIN_PREFIX + short, "Server", None, minimum_healthy_hosts=hosts
        )
    return configs


BUILTIN_CONFIGS: dict[str, DeploymentConfig] = _builtin_configs()
LAMBDA_BUILTINS = sorted(name for name, c in BUILTIN_CONFIGS.items() if c.compute_platform == LAMBDA)


def validate_traffic_routing(routing: dict[str, Any] | None) -> dict[str, Any]:
    """Check a Lambda trafficRoutingConfig and return it normalised (only the part its type uses)."""
    if not routing or "type" not in routing:
        raise ConfigError(
            "InvalidTrafficRoutingConfigurationException",
            "A Lambda deployment configuration needs a trafficRoutingConfig with a type.",
        )
    kind = routing["type"]
    if kind == ALL_AT_ONCE:
        return {"type": ALL_AT_ONCE}
    if kind == CANARY:
        part, pct_key, int_key = routing.get("timeBasedCanary"), "canaryPercentage", "canaryInterval"
        section = "timeBasedCanary"
    elif kind == LINEAR:
        part, pct_key, int_key = routing.get("timeBasedLinear"), "linearPercentage", "linearInterval"
        section = "timeBasedLinear"
    else:
        raise ConfigError(
            "InvalidTrafficRoutingConfigurationException", f"Unknown traffic routing type {kind!r}."
        )
    if not isinstance(part, dict):
        raise ConfigError(
            "InvalidTrafficRoutingConfigurationException", f"Traffic routing type {kind} needs {section}."
        )
    percent, interval = part.get(pct_key), part.get(int_key)
    if not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 99:
        raise ConfigError(
            "InvalidTrafficRoutingConfigurationException",
            f"{section}.{pct_key} must be an integer from 1 to 99.",
        )
    if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 2880:
        raise ConfigError(
            "InvalidTrafficRoutingConfigurationException",
            f"{section}.{int_key} must be a whole number of minutes from 1 to 2880.",
        )
    return {"type": kind, section: {pct_key: percent, int_key: interval}}


@dataclass(frozen=True)
class ShiftStep:
    """Set the target version's weight to `weight` `offset` seconds after AllowTraffic starts.

    A weight of 1.0 means the shift is complete: the alias points at the target with no weights."""

    offset: float
    weight: float


def weight_schedule(routing: dict[str, Any]) -> list[ShiftStep]:
    """The alias updates a traffic routing config makes, the first one when AllowTraffic starts.

    Canary: p for one interval, then everything. Linear: p, 2p, ... one interval apart, until 1."""
    kind = routing.get("type")
    if kind == CANARY:
        canary = routing["timeBasedCanary"]
        interval = canary["canaryInterval"] * 60.0
        return [ShiftStep(0.0, canary["canaryPercentage"] / 100.0), ShiftStep(interval, 1.0)]
    if kind == LINEAR:
        linear = routing["timeBasedLinear"]
        percent, interval = linear["linearPercentage"], linear["linearInterval"] * 60.0
        steps = math.ceil(100 / percent)
        schedule = [
            ShiftStep(k * interval, round(min(100, (k + 1) * percent) / 100.0, 6)) for k in range(steps)
        ]
        return schedule
    return [ShiftStep(0.0, 1.0)]


def shifting_seconds(routing: dict[str, Any]) -> float:
    """Sandbox seconds from the first weight change to the last."""
    return weight_schedule(routing)[-1].offset
