"""Request checks from botocore's codedeploy model: required members, enums and basic types.

AWS answers these with operation-specific codes (ApplicationNameRequiredException,
InvalidRevisionException...), so each failure is mapped to the code the operation declares."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

GENERIC_ERROR = "InvalidInputException"

# Member -> code when it is missing, where the code is not simply "<Member>RequiredException".
REQUIRED_CODES = {
    "serviceRoleArn": "RoleRequiredException",
    "currentDeploymentGroupName": "DeploymentGroupNameRequiredException",
    "deploymentIds": "DeploymentIdRequiredException",
    "applicationNames": "ApplicationNameRequiredException",
    "targetId": "DeploymentTargetIdRequiredException",
    "targetIds": "DeploymentTargetIdRequiredException",
}

# Member -> code when its value is wrong, where it is not "Invalid<Member>Exception".
INVALID_CODES = {
    "alarmConfiguration": "InvalidAlarmConfigException",
    "overrideAlarmConfiguration": "InvalidAlarmConfigException",
    "autoRollbackConfiguration": "InvalidAutoRollbackConfigException",
    "trafficRoutingConfig": "InvalidTrafficRoutingConfigurationException",
    "includeOnlyStatuses": "InvalidDeploymentStatusException",
    "createTimeRange": "InvalidTimeRangeException",
    "status": "InvalidLifecycleEventHookExecutionStatusException",
    "lifecycleEventHookExecutionId": "InvalidLifecycleEventHookExecutionIdException",
    "currentDeploymentGroupName": "InvalidDeploymentGroupNameException",
    "newDeploymentGroupName": "InvalidDeploymentGroupNameException",
    "serviceRoleArn": "InvalidRoleException",
    "deploymentIds": "InvalidDeploymentIdException",
    "targetIds": "InvalidDeploymentTargetIdException",
    "targetId": "InvalidDeploymentTargetIdException",
    "description": "DescriptionTooLongException",
}


class RequestInvalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("codedeploy")


def operation_model(operation: str) -> OperationModel | None:
    model = service_model()
    if operation not in model.operation_names:
        return None
    return model.operation_model(operation)


def _capitalised(member: str) -> str:
    return member[:1].upper() + member[1:]


def _code(operation: OperationModel, member: str, table: dict[str, str], pattern: str) -> str:
    declared = {shape.name for shape in operation.error_shapes}
    candidates = [table.get(member), pattern.format(_capitalised(member))]
    for code in candidates:
        if code and code in declared:
            return code
    return GENERIC_ERROR


def _problem(value: Any, shape: Shape, path: str) -> str | None:
    """What is wrong with `value` for `shape`, or None."""
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return f"{path} must be an object"
        for name in shape.required_members:
            if name not in value or value[name] is None:
                return f"{path}.{name} is required"
        for name, item in value.items():
            if name not in shape.members:
                return f"{path} has no member {name!r}"
            found = _problem(item, shape.members[name], f"{path}.{name}")
            if found:
                return found
        return None
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return f"{path} must be a list"
        for index, item in enumerate(value):
            found = _problem(item, shape.member, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return f"{path} must be a map"
        for key, item in value.items():
            found = _problem(key, shape.key, f"{path} key") or _problem(item, shape.value, f"{path}.{key}")
            if found:
                return found
        return None
    if kind == "string":
        if not isinstance(value, str):
            return f"{path} must be a string"
        enum = shape.enum
        if enum and value not in enum:
            return f"{path} must be one of {', '.join(enum)}, got {value!r}"
        limit = shape.metadata.get("max")
        if limit is not None and len(value) > limit:
            return f"{path} is longer than {limit} characters"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{path} must be a boolean"
    if kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{path} must be an integer"
    if kind in ("double", "float", "timestamp"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"{path} must be a number"
    return None


def validate(operation_name: str, body: dict[str, Any]) -> None:
    """Raise RequestInvalid with the operation's own error code for the first problem found."""
    operation = operation_model(operation_name)
    if operation is None or operation.input_shape is None:
        return
    shape = operation.input_shape
    if not isinstance(body, dict):
        raise RequestInvalid(GENERIC_ERROR, "The request body must be a JSON object.")
    for name in shape.required_members:
        if body.get(name) in (None, "", []):
            raise RequestInvalid(
                _code(operation, name, REQUIRED_CODES, "{}RequiredException"), f"{name} is required."
            )
    for name, value in body.items():
        if name not in shape.members:
            raise RequestInvalid(GENERIC_ERROR, f"{operation_name} has no parameter {name!r}.")
        if value is None:
            continue
        problem = _problem(value, shape.members[name], name)
        if problem:
            raise RequestInvalid(_code(operation, name, INVALID_CODES, "Invalid{}Exception"), problem + ".")
