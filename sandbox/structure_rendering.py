"""moto's JSON serializer writes a structure's scalar members directly, with the output of its own methods.

For each member of a structure moto's serializer goes through five methods (`_serialize_structure_member`,
`_serialize`, which dispatches on the type name and pushes the member's key on `path`,
`_serialize_type_<type>`, `_default_serialize`, `get_serialized_name`) to write one string or number. A
DescribeAlarms of 100 alarms writes some 3,000 of them. For a serializer of moto's JSON protocol (exactly
`JSONSerializer`, with those methods its own), strings, numbers and booleans are written here with the
same conversions those methods make; timestamps and blobs go to their own `_serialize_type_*` method, and
structures, lists and maps through `_serialize` as before. `path` is read only when a value is picked (by
the response transformers), which happens before a member's key is pushed, so writing a scalar without
pushing its key changes nothing. tests/integration/test_sandbox_value_picking.py compares every response
with moto's own rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

# The methods moto's JSONSerializer uses for a member; the fast path stands in for them only while the
# serializer's class uses these very functions and the instance overrides none of them.
_OWN = (
    "_serialize",
    "_serialize_structure_member",
    "_serialize_type_string",
    "_serialize_type_integer",
    "_serialize_type_long",
    "_serialize_type_float",
    "_serialize_type_double",
    "_default_serialize",
    "get_serialized_name",
)


def install() -> None:
    from moto.core import serialize

    from sandbox import core

    original: Callable[..., Any] = serialize.ResponseSerializer._serialize_type_structure
    if hasattr(original, "original"):
        return  # installed already
    json_serializer = serialize.JSONSerializer
    expected = {name: getattr(json_serializer, name) for name in _OWN}
    # JSON has no boolean method of its own: a boolean is written as it is (_default_serialize).
    assert not hasattr(json_serializer, "_serialize_type_boolean")
    assert json_serializer.MAP_TYPE is dict

    def own_methods(serializer: Any) -> bool:
        cls = type(serializer)
        if cls is not json_serializer or hasattr(cls, "_serialize_type_boolean") or cls.MAP_TYPE is not dict:
            return False
        if any(getattr(cls, name) is not method for name, method in expected.items()):
            return False
        return not serializer.__dict__.keys() & expected.keys()  # nor does the instance

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        # A serializer renders one response: whether it may take the fast path is asked once.
        fast = self.__dict__.get("_sandbox_fast")
        if fast is None:
            fast = self.__dict__["_sandbox_fast"] = core.active() is not None and own_methods(self)
        if not fast:
            original(self, serialized, value, shape, key)
            return
        if value is None:
            return
        wrapper: Any = {} if key else serialized
        for member_key, member_shape in shape.members.items():
            member_shape.parent = shape
            member_value = self.get_value(value, member_key, member_shape)
            if member_value is None:
                continue
            kind = member_shape.type_name
            if kind == "string":
                # BaseJSONSerializer._serialize_type_string
                if isinstance(member_value, Enum):
                    member_value = member_value.value
                rendered = str(member_value) if member_value not in [None, {}, []] else member_value
            elif kind in ("integer", "long"):
                rendered = int(member_value)
            elif kind in ("float", "double"):
                rendered = float(member_value)
            elif kind == "boolean":
                rendered = member_value
            elif kind == "timestamp":
                self._serialize_type_timestamp(wrapper, member_value, member_shape, member_key)
                continue
            elif kind == "blob":
                self._serialize_type_blob(wrapper, member_value, member_shape, member_key)
                continue
            else:
                self._serialize(wrapper, member_value, member_shape, member_key)
                continue
            wrapper[member_shape.serialization.get("name", member_key)] = rendered
        if key:
            self._default_serialize(serialized, wrapper, shape, key)

    serialize_structure.original = original  # type: ignore[attr-defined]
    serialize.ResponseSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]
