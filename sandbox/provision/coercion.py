"""Template values converted to the types the AWS API expects, as CloudFormation does.

A template says `Timeout: !Ref TimeoutParameter` and gets the string "60"; CloudFormation converts it
by the resource's schema. Here the botocore input shape of each call decides: strings become numbers
or booleans where the API wants them, and numbers or booleans become strings where it wants strings.
"""

from __future__ import annotations

from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

_INTEGERS = frozenset({"integer", "long"})
_FLOATS = frozenset({"float", "double"})


def _coerce(value: Any, shape: Shape) -> Any:
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = shape.members
        return {key: _coerce(item, members[key]) if key in members else item for key, item in value.items()}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_coerce(item, shape.member) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: _coerce(item, shape.value) for key, item in value.items()}
    kind = shape.type_name
    if kind in _INTEGERS and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if kind in _FLOATS and isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    if kind == "string" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "string" and isinstance(value, int | float):
        return str(value)
    return value


def coerce_parameters(params: dict[str, Any], model: OperationModel, **_: Any) -> None:
    """botocore `before-parameter-build` handler: fixes `params` in place."""
    shape = model.input_shape
    if shape is None:
        return
    coerced = _coerce(params, shape)
    params.clear()
    params.update(coerced)
