"""DynamoDB items rendered for the wire in one pass, with exactly the output of moto's generic serializer.

moto renders every response through botocore's model: for each AttributeValue of an item it asks a value
picker, for each of the shape's ten members (S, N, B, SS, NS, BS, M, L, NULL, BOOL), which of up to a
dozen spellings of the name the object carries, and it does that again at every level of a map or list.
The ledger's release items (history, checks, step timings) are deep maps, so rendering them was most of
the time the sandbox spent on a DynamoDB call (a py-spy profile of `benchmarks.e2e_bench`: about 70% of
the DynamoDB requests' time, 30% of all the sandbox's request time).

moto hands the serializer items already in DynamoDB's wire shape (plain dicts keyed by the member names,
`dynamo_to_dict`). For those the picker's answer is always the member's own key, so `render` reads it
directly and applies the same conversions moto applies per member type (strings through str(), blobs
base64-encoded, booleans as they are, lists and maps member by member). Anything else (an object, a
dict with other keys) goes through moto's own path. tests/integration/test_sandbox_dynamodb_wire.py
checks the two agree on every kind of value.

The rest of a DynamoDB answer (counts, keys, capacities, the lists and maps around the items) is rendered
in the same pass when it is a plain dict: each member is read at the first of the keys moto's picker
would try (the picker's own list, kept per member shape, parent shape and class of the value), with the
conversions of moto's JSON methods, while the serializer's methods and picker are moto's and no response
transformer is set; anything else takes moto's path.

Before that, moto turns items into those dicts (`Item.to_json`, for UpdateItem's and PutItem's answers and
for projections) with DynamoType.to_regular_json, which deep-copies a value before converting it, at every
level again; `regular_json` builds the same dicts without the copies. Every answer then goes through
dynamo_to_dict, which asks each string whether it has a to_json method; `plain` decides by class.
"""

from __future__ import annotations

import base64
import copy
from decimal import Decimal
from enum import Enum
from typing import Any

ATTRIBUTE_VALUE = "AttributeValue"


def render(serializer: Any, value: dict[str, Any], shape: Any, into: dict[str, Any]) -> None:
    """Write AttributeValue `value`'s members into `into`, as moto's structure serializer would (in the
    shape's order of members; an AttributeValue has one)."""
    members = shape.members
    if len(value) == 1:
        name = next(iter(value))
        _member(serializer, name, members[name], value[name], into)
        return
    for name, member in members.items():
        if name in value:
            _member(serializer, name, member, value[name], into)


def _member(serializer: Any, name: str, member: Any, item: Any, into: dict[str, Any]) -> None:
    if item is None:
        return
    kind = member.type_name
    if kind == "string":
        rendered = _string(item)
    elif kind == "blob":
        rendered = serializer._base64(item)
    elif kind == "boolean":
        rendered = item
    elif kind == "list":
        rendered = _list(serializer, item, member)
    elif kind == "map":
        rendered = _map(serializer, item, member)
    else:
        serializer._serialize(into, item, member, name)
        return
    into[serializer.get_serialized_name(member, name)] = rendered


def is_wire_shaped(value: Any, shape: Any) -> bool:
    """A plain dict whose keys are all member names: the picker would find each member under its name."""
    return type(value) is dict and value.keys() <= shape.members.keys()


def _string(value: Any) -> Any:
    # moto's BaseJSONSerializer._serialize_type_string, as it is.
    if isinstance(value, Enum):
        value = value.value
    return str(value) if value not in [None, {}, []] else value


def _attribute(serializer: Any, value: Any, shape: Any, into: dict[str, Any], key: str) -> None:
    """One AttributeValue under `key` of `into` (a map entry or a list slot)."""
    if value is None:
        return
    if not is_wire_shaped(value, shape):
        serializer._serialize(into, value, shape, key)  # moto's own path (the patch passes it on)
        return
    if not key:  # moto writes a structure with an empty key into its parent
        render(serializer, value, shape, into)
        return
    rendered: dict[str, Any] = {}
    render(serializer, value, shape, rendered)
    into[serializer.get_serialized_name(shape, key)] = rendered


def _list(serializer: Any, values: Any, shape: Any) -> list[Any]:
    member = shape.member
    out: list[Any] = []
    for item in values:
        if member.type_name == "string":
            out.append(_string(item))
        elif member.type_name == "blob":
            out.append(serializer._base64(item))
        else:
            slot: dict[str, Any] = {}
            _attribute(serializer, item, member, slot, member.name)
            out.append(slot.get(member.name, item))
    return out


def _map(serializer: Any, values: Any, shape: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in values.items():
        _attribute(serializer, item, shape.value, out, key)
    return out


# (member shape, its structure, member name, class of the value) -> the keys moto's picker tries, in order
_picked: dict[tuple[int, int, str, type], tuple[Any, Any, tuple[str, ...]]] = {}
NOT_PICKED = ("",)  # a member whose keys would be looked up as a path: left to moto's own path


def _keys(serializer: Any, value: Any, shape: Any, member: Any, name: str) -> tuple[str, ...]:
    """The keys moto's value picker tries for `name` of a `value` of this class, in its order: they depend
    on the shapes, the name and the value's class (a plain dict has no Meta aliases)."""
    from moto.core.serialize import AttributePickerContext

    cache_key = (id(member), id(shape), name, type(value))
    found = _picked.get(cache_key)
    if found is not None and found[0] is member and found[1] is shape:
        return found[2]
    context = AttributePickerContext(
        obj=value,
        key=name,
        shape=member,
        operation_model=serializer.operation_model,
        service_model=serializer.operation_model.service_model,
    )
    keys = tuple(serializer._value_picker.get_possible_keys(context))
    if any("." in key for key in keys):
        keys = NOT_PICKED
    _picked[cache_key] = (member, shape, keys)
    return keys


def _structure(serializer: Any, into: dict[str, Any], value: dict[str, Any], shape: Any, key: str) -> bool:
    """moto's structure serializer for a plain dict: each member under the first key the picker would find
    it at, rendered by `_value`. False (nothing written) when a member's keys are not plain keys."""
    wrapper: dict[str, Any] = {} if key else into
    members = []
    for name, member in shape.members.items():
        member.parent = shape  # as moto's serializer sets it (its picker reads it)
        keys = _keys(serializer, value, shape, member, name)
        if keys is NOT_PICKED:
            return False
        members.append((name, member, keys))
    for name, member, keys in members:
        for candidate in keys:
            if candidate in value:
                picked = value[candidate]
                if picked is not None:
                    _value(serializer, wrapper, picked, member, name)
                break
    if key:
        into[serializer.get_serialized_name(shape, key)] = wrapper
    return True


def _value(serializer: Any, into: dict[str, Any], value: Any, shape: Any, key: str) -> None:
    """moto's serializer for one value of a DynamoDB answer (ResponseSerializer._serialize and the JSON
    serializer's method for the shape's type), for the types its answers hold; others take moto's path."""
    kind = shape.type_name
    name = serializer.get_serialized_name(shape, key)
    if kind == "structure":
        if value is None:
            return
        if shape.name == ATTRIBUTE_VALUE and is_wire_shaped(value, shape):
            _attribute(serializer, value, shape, into, key)
        elif (
            shape.is_document_type
            or type(value) is not dict
            or not _structure(serializer, into, value, shape, key)
        ):
            serializer._serialize(into, value, shape, key)
    elif kind == "map" and type(value) is dict:
        entries: dict[str, Any] = {}
        into[name] = entries
        for entry, element in value.items():
            _value(serializer, entries, element, shape.value, entry)
    elif kind == "list" and type(value) is list:
        member = shape.member
        out: list[Any] = []
        for element in value:
            slot: dict[str, Any] = {}
            _value(serializer, slot, element, member, member.name)
            out.append(slot.get(member.name, element))
        into[name] = out
    elif kind == "string":
        into[name] = _string(value)
    elif kind in ("integer", "long"):
        into[name] = int(value)
    elif kind in ("float", "double"):
        into[name] = float(value)
    elif kind == "boolean":
        into[name] = value
    elif kind == "blob":
        into[name] = serializer._base64(value)
    else:
        serializer._serialize(into, value, shape, key)


def _renders_as_moto(serializer: Any) -> bool:
    """Whether `_value` is what this serializer would do: moto's JSON type methods and picker, and no
    response transformers (BaseResponse's class-wide map, which other services' handlers can fill)."""
    from moto.core.serialize import AttributePicker, BaseJSONSerializer, ResponseSerializer

    picker = serializer._value_picker
    cls = type(serializer)
    return (
        not getattr(picker, "response_transformers", None)
        and isinstance(picker, AttributePicker)
        and type(picker).__call__ is AttributePicker.__call__
        and cls._serialize is ResponseSerializer._serialize
        and cls._serialize_structure_member is ResponseSerializer._serialize_structure_member
        and cls._serialize_type_map is BaseJSONSerializer._serialize_type_map
        and cls._serialize_type_list is BaseJSONSerializer._serialize_type_list
        and cls._serialize_type_string is BaseJSONSerializer._serialize_type_string
        and cls._serialize_type_integer is ResponseSerializer._serialize_type_integer
        and cls._serialize_type_long is ResponseSerializer._serialize_type_long
        and cls._serialize_type_float is ResponseSerializer._serialize_type_float
        and cls._serialize_type_double is ResponseSerializer._serialize_type_double
        and cls._serialize_type_blob is ResponseSerializer._serialize_type_blob
        and not hasattr(cls, "_serialize_type_boolean")
        and cls._default_serialize is ResponseSerializer._default_serialize
        and cls.get_serialized_name is ResponseSerializer.get_serialized_name
    )


# What copy.deepcopy gives back as it is (its atomic types).
ATOMIC = frozenset({str, bytes, int, float, bool, complex, type(None)})


def _deep(value: Any) -> Any:
    return value if type(value) in ATOMIC else copy.deepcopy(value)


def regular_json(value: Any) -> dict[str, Any]:
    """moto's DynamoType.to_regular_json, without its deep copy of the value at every level (a map nested
    n deep was copied n times over): the value's maps and lists are built anew member by member, as that
    copy and the conversion after it built them."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    inner = value.value
    if isinstance(inner, dict):
        inner = {k: regular_json(v) if isinstance(v, DynamoType) else _deep(v) for k, v in inner.items()}
    elif isinstance(inner, list):
        inner = [regular_json(v) if isinstance(v, DynamoType) else _deep(v) for v in inner]
    else:
        inner = _deep(inner)
    if value.type == "B" and isinstance(inner, str):  # DynamoType.is_binary()
        inner = base64.b64decode(inner)
    return {value.type: inner}


# Values dynamo_to_dict gives back as they are: not a datetime, a DynamoType, a dict or a list, and
# without a to_json method.
AS_THEY_ARE = frozenset({str, int, float, bool, bytes, type(None), Decimal})


def plain(value: Any) -> Any:
    """moto's dynamo_to_dict (what every DynamoDB answer goes through before it is rendered), deciding by
    the value's exact class what moto decides by asking each string and number whether it is a datetime
    and has a to_json method. Anything else is left to moto's function.

    moto builds every dict and list anew; here a dict or list below the answer whose contents need no
    change is used as it is (an UpdateItem's answer is already plain: Item.to_json), so only the serializer
    reads it, as it would have read the copy. The answer's own dict is always new: moto's handlers add
    ConsumedCapacity to it afterwards."""
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items()}
    return _plain(value)


def _plain(value: Any) -> Any:
    """plain(value), or `value` itself when it holds nothing to convert."""
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import dynamo_to_dict

    kind = type(value)
    if kind in AS_THEY_ARE:
        return value
    if kind is dict:
        converted: dict[str, Any] | None = None
        for key, element in value.items():
            element_plain = _plain(element)
            if converted is None:
                if element_plain is element:
                    continue
                converted = {}
                for earlier, unchanged in value.items():  # the entries before `key`, as they are
                    if earlier == key:
                        break
                    converted[earlier] = unchanged
            converted[key] = element_plain
        return value if converted is None else converted
    if kind is list:
        elements = [_plain(element) for element in value]
        return value if all(a is b for a, b in zip(elements, value, strict=True)) else elements
    if kind is LimitedSizeDict:  # moto's answer holds a plain dict in its place
        return {k: _plain(v) for k, v in value.items()}
    if kind is DynamoType and value.type not in ("B", "BS"):
        return {value.type: _plain(value.value)}
    return dynamo_to_dict(value)


def install() -> None:
    """Render wire-shaped AttributeValues with `render` while a sandbox runs (moto's path otherwise)."""
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.models.dynamo_type import DynamoType

    from sandbox import core, dynamodb_fast

    to_regular_json = DynamoType.to_regular_json

    def regular(self: Any) -> dict[str, Any]:
        return regular_json(self) if core.active() is not None else to_regular_json(self)

    dynamodb_fast.replace(DynamoType, "to_regular_json", regular)

    import moto.dynamodb.responses as responses

    to_dict = responses.dynamo_to_dict

    def dynamo_to_dict(value: Any) -> Any:
        return plain(value) if core.active() is not None else to_dict(value)

    dynamodb_fast.replace(responses, "dynamo_to_dict", dynamo_to_dict)

    original = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if core.active() is not None and self.operation_model.service_model.service_name == "dynamodb":
            if shape.name == ATTRIBUTE_VALUE and (value is None or is_wire_shaped(value, shape)):
                _attribute(self, value, shape, serialized, key)
                return
            if (
                type(value) is dict
                and not shape.is_document_type
                and _renders_as_moto(self)
                and _structure(self, serialized, value, shape, key)
            ):
                return
        original(self, serialized, value, shape, key)

    serialize_structure.original = original  # type: ignore[attr-defined]
    dynamodb_fast.replace(BaseJSONSerializer, "_serialize_type_structure", serialize_structure)
