"""CloudFormation intrinsic functions, conditions and resource ordering, evaluated locally.

`Resolver` turns template values into concrete ones the way CloudFormation does when it creates a
stack: Ref, Fn::GetAtt, Fn::Sub (both forms), Fn::If with Conditions, Fn::Join/Select/Split,
Fn::FindInMap, Fn::GetAZs, Fn::Base64, Fn::Length, Fn::ToJsonString and the pseudo-parameters
(AWS::NoValue removes the key or list item it stands in). `creation_order` sorts resources so that
everything a resource references (Ref, GetAtt, Sub variables, DependsOn) exists before it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from sandbox.provision.errors import TemplateError


class _NoValue:
    """What `Ref: AWS::NoValue` resolves to; containers drop it."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
CONDITION_FUNCTIONS = frozenset({"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"})

RefLookup = Callable[[str], Any]
GetAttLookup = Callable[[str, str], Any]


def parse_get_att(arguments: Any) -> tuple[str, str]:
    """`Fn::GetAtt` takes [LogicalId, Attribute] or "LogicalId.Attribute" (attribute may hold dots)."""
    if isinstance(arguments, str):
        logical_id, sep, attribute = arguments.partition(".")
        if not sep:
            raise TemplateError(f"Fn::GetAtt {arguments!r} needs LogicalId.Attribute")
        return logical_id, attribute
    if (
        isinstance(arguments, list)
        and len(arguments) == 2
        and isinstance(arguments[0], str)
        and isinstance(arguments[1], str)
    ):
        return arguments[0], arguments[1]
    raise TemplateError(f"Fn::GetAtt takes [LogicalId, Attribute], got {arguments!r}")


def _sub_arguments(arguments: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(arguments, str):
        return arguments, {}
    if (
        isinstance(arguments, list)
        and len(arguments) == 2
        and isinstance(arguments[0], str)
        and isinstance(arguments[1], dict)
    ):
        return arguments[0], arguments[1]
    raise TemplateError(f"Fn::Sub takes a string or [string, {{variables}}], got {arguments!r}")


def _sub_references(template: str) -> list[str]:
    """The variable names a Fn::Sub string uses (`${!Literal}` is text, not a variable)."""
    return [name for name in _SUB_VARIABLE.findall(template) if not name.startswith("!")]


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    """(function, arguments) when `value` is a one-key intrinsic mapping, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arguments), *_ = value.items()
        if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
            return key, arguments
    return None


class Resolver:
    """Evaluates template values against parameters, conditions and created resources.

    `ref` and `get_att` answer for resources (they raise when a resource is unknown or not created);
    parameters and pseudo-parameters are answered here.
    """

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        pseudo_parameters: Mapping[str, Any],
        conditions: Mapping[str, Any],
        mappings: Mapping[str, Any] | None = None,
        ref: RefLookup,
        get_att: GetAttLookup,
    ) -> None:
        self._parameters = dict(parameters)
        self._pseudo = dict(pseudo_parameters)
        self._pseudo["AWS::NoValue"] = NO_VALUE
        self._condition_definitions = dict(conditions)
        self._mappings = dict(mappings or {})
        self._ref = ref
        self._get_att = get_att
        self._condition_values: dict[str, bool] = {}
        self._evaluating: list[str] = []

    # -- conditions -----------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name in self._condition_values:
            return self._condition_values[name]
        if name not in self._condition_definitions:
            raise TemplateError(f"condition {name!r} is not defined in Conditions")
        if name in self._evaluating:
            raise TemplateError(
                "conditions refer to each other in a loop: " + " -> ".join([*self._evaluating, name])
            )
        self._evaluating.append(name)
        try:
            value = self._boolean(self._condition_definitions[name], f"condition {name}")
        finally:
            self._evaluating.pop()
        self._condition_values[name] = value
        return value

    def _boolean(self, definition: Any, where: str) -> bool:
        intrinsic = _intrinsic(definition)
        if intrinsic is None:
            if isinstance(definition, bool):
                return definition
            if definition in ("true", "false"):
                return definition == "true"
            raise TemplateError(f"{where}: {definition!r} is not a condition function")
        function, arguments = intrinsic
        if function == "Condition":
            if not isinstance(arguments, str):
                raise TemplateError(f"{where}: Condition takes a condition name, got {arguments!r}")
            return self.condition(arguments)
        if function == "Fn::Equals":
            if not isinstance(arguments, list) or len(arguments) != 2:
                raise TemplateError(f"{where}: Fn::Equals takes two values, got {arguments!r}")
            left, right = (self.resolve(argument) for argument in arguments)
            return _comparable(left) == _comparable(right)
        if function in ("Fn::Not", "Fn::And", "Fn::Or"):
            if not isinstance(arguments, list) or not arguments:
                raise TemplateError(f"{where}: {function} takes a list of conditions, got {arguments!r}")
            values = [self._boolean(argument, where) for argument in arguments]
            if function == "Fn::Not":
                if len(values) != 1:
                    raise TemplateError(f"{where}: Fn::Not takes exactly one condition")
                return not values[0]
            return all(values) if function == "Fn::And" else any(values)
        raise TemplateError(f"{where}: {function} is not a condition function")

    # -- values ---------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """The concrete value of `value`; NO_VALUE when it is `Ref: AWS::NoValue` (or an If picking it)."""
        intrinsic = _intrinsic(value)
        if intrinsic is not None:
            return self._call(*intrinsic)
        if isinstance(value, dict):
            resolved_dict = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved_dict.items() if item is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not NO_VALUE]
        return value

    def _call(self, function: str, arguments: Any) -> Any:
        if function == "Ref":
            return self._resolve_ref(arguments)
        if function == "Condition" or function in CONDITION_FUNCTIONS:
            return self._boolean({function: arguments}, function)
        handler = self._functions.get(function)
        if handler is None:
            raise TemplateError(f"intrinsic function {function} is not supported by the local provisioner")
        return handler(self, arguments)

    def _resolve_ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref takes a name, got {name!r}")
        if name in self._pseudo:
            return self._pseudo[name]
        if name.startswith("AWS::"):
            raise TemplateError(f"pseudo-parameter {name} is not supported")
        if name in self._parameters:
            return self._parameters[name]
        return self._ref(name)

    def _fn_get_att(self, arguments: Any) -> Any:
        logical_id, attribute = parse_get_att(
            self.resolve(arguments) if isinstance(arguments, list) else arguments
        )
        return self._get_att(logical_id, attribute)

    def _fn_sub(self, arguments: Any) -> str:
        template, variables = _sub_arguments(arguments)
        local = {name: self.resolve(value) for name, value in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return _text(local[name], f"Fn::Sub variable {name}")
            if name in self._pseudo or name in self._parameters:
                return _text(self._resolve_ref(name), f"Fn::Sub variable {name}")
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return _text(self._get_att(logical_id, attribute), f"Fn::Sub variable {name}")
            return _text(self._ref(name), f"Fn::Sub variable {name}")

        return _SUB_VARIABLE.sub(substitute, template)

    def _fn_if(self, arguments: Any) -> Any:
        if not isinstance(arguments, list) or len(arguments) != 3 or not isinstance(arguments[0], str):
            raise TemplateError(f"Fn::If takes [Condition, ValueIfTrue, ValueIfFalse], got {arguments!r}")
        name, when_true, when_false = arguments
        return self.resolve(when_true if self.condition(name) else when_false)

    def _fn_join(self, arguments: Any) -> str:
        if not isinstance(arguments, list) or len(arguments) != 2:
            raise TemplateError(f"Fn::Join takes [delimiter, [values]], got {arguments!r}")
        delimiter, values = self.resolve(arguments[0]), self.resolve(arguments[1])
        if not isinstance(delimiter, str) or not isinstance(values, list):
            raise TemplateError(f"Fn::Join takes [delimiter, [values]], got {arguments!r}")
        return delimiter.join(_text(value, "Fn::Join") for value in values)

    def _fn_select(self, arguments: Any) -> Any:
        if not isinstance(arguments, list) or len(arguments) != 2:
            raise TemplateError(f"Fn::Select takes [index, [values]], got {arguments!r}")
        index, values = self.resolve(arguments[0]), self.resolve(arguments[1])
        if not isinstance(values, list):
            raise TemplateError(f"Fn::Select needs a list, got {values!r}")
        try:
            return values[int(index)]
        except (ValueError, IndexError) as exc:
            raise TemplateError(f"Fn::Select index {index!r} is outside {values!r}") from exc

    def _fn_split(self, arguments: Any) -> list[str]:
        if not isinstance(arguments, list) or len(arguments) != 2:
            raise TemplateError(f"Fn::Split takes [delimiter, string], got {arguments!r}")
        delimiter, source = self.resolve(arguments[0]), self.resolve(arguments[1])
        if not isinstance(delimiter, str) or not isinstance(source, str):
            raise TemplateError(f"Fn::Split takes [delimiter, string], got {arguments!r}")
        return source.split(delimiter)

    def _fn_get_azs(self, arguments: Any) -> list[str]:
        region = self.resolve(arguments) or self._pseudo["AWS::Region"]
        return [f"{region}{zone}" for zone in "abc"]

    def _fn_base64(self, arguments: Any) -> str:
        return base64.b64encode(_text(self.resolve(arguments), "Fn::Base64").encode()).decode()

    def _fn_find_in_map(self, arguments: Any) -> Any:
        if not isinstance(arguments, list) or len(arguments) not in (3, 4):
            raise TemplateError(f"Fn::FindInMap takes [Map, TopKey, SecondKey], got {arguments!r}")
        map_name, top, second = (self.resolve(argument) for argument in arguments[:3])
        try:
            return self._mappings[map_name][top][second]
        except (KeyError, TypeError) as exc:
            if len(arguments) == 4 and isinstance(arguments[3], dict) and "DefaultValue" in arguments[3]:
                return self.resolve(arguments[3]["DefaultValue"])
            raise TemplateError(f"Fn::FindInMap found nothing at {map_name}/{top}/{second}") from exc

    def _fn_length(self, arguments: Any) -> int:
        values = self.resolve(arguments)
        if not isinstance(values, list):
            raise TemplateError(f"Fn::Length needs a list, got {values!r}")
        return len(values)

    def _fn_to_json_string(self, arguments: Any) -> str:
        return json.dumps(self.resolve(arguments), separators=(",", ":"))

    _functions: Final[dict[str, Callable[[Resolver, Any], Any]]] = {
        "Fn::GetAtt": _fn_get_att,
        "Fn::Sub": _fn_sub,
        "Fn::If": _fn_if,
        "Fn::Join": _fn_join,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::GetAZs": _fn_get_azs,
        "Fn::Base64": _fn_base64,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::Length": _fn_length,
        "Fn::ToJsonString": _fn_to_json_string,
    }

    # -- references -----------------------------------------------------------------------------

    def references(self, value: Any) -> set[str]:
        """Every name `value` refers to (Ref, GetAtt, Sub variables), following only the Fn::If
        branches its conditions choose, so a resource skipped by a condition is never required."""
        found: set[str] = set()
        self._collect(value, found)
        return found

    def _collect(self, value: Any, found: set[str]) -> None:
        intrinsic = _intrinsic(value)
        if intrinsic is not None:
            function, arguments = intrinsic
            if function == "Ref" and isinstance(arguments, str):
                found.add(arguments)
                return
            if (
                function == "Fn::GetAtt"
                and isinstance(arguments, str | list)
                and not _contains_intrinsic(arguments)
            ):
                found.add(parse_get_att(arguments)[0])
                return
            if function == "Fn::Sub":
                template, variables = _sub_arguments(arguments)
                for name in _sub_references(template):
                    if name not in variables:
                        found.add(name.split(".", 1)[0])
                self._collect(list(variables.values()), found)
                return
            if function == "Fn::If" and isinstance(arguments, list) and len(arguments) == 3:
                self._collect(arguments[1] if self.condition(arguments[0]) else arguments[2], found)
                return
        if isinstance(value, dict):
            for item in value.values():
                self._collect(item, found)
        elif isinstance(value, list):
            for item in value:
                self._collect(item, found)


def _contains_intrinsic(value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(item, dict) for item in value)
    return False


def _comparable(value: Any) -> Any:
    # CloudFormation compares parameter values as strings ("1" equals 1, "true" equals true).
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {value!r}")


def creation_order(dependencies: Mapping[str, Iterable[str]]) -> list[str]:
    """Resources ordered so that each comes after everything it depends on.

    Keeps template order among independent resources; a dependency loop is an error naming it.
    """
    pending = {name: set(needs) for name, needs in dependencies.items()}
    for name, needs in pending.items():
        missing = needs - pending.keys()
        if missing:
            raise TemplateError(
                f"{name} depends on {', '.join(sorted(missing))}, which the stack does not create"
            )
    order: list[str] = []
    done: set[str] = set()
    while pending:
        ready = [name for name, needs in pending.items() if needs <= done]
        if not ready:
            raise TemplateError("resources depend on each other in a loop: " + ", ".join(sorted(pending)))
        for name in ready:
            order.append(name)
            done.add(name)
            del pending[name]
    return order
