"""Where moto's response serializer looks for a member's value, worked out once per member instead of per value.

moto renders every response through botocore's model. For each member of each structure it asks its
XFormedAttributePicker which attribute of the Python object (or key of the dict) holds the member: six
alias providers propose spellings in turn (an alias the object's class declares in `Meta`, the shape's
name, the member's own name, the name without the parent shape's or the class's prefix, the model's wire
name), each followed by its snake_case, and the first spelling the object carries wins. Building the
providers and their proposals for every value was most of the time a DescribeAlarms of 100 alarms took
(a py-spy profile of `benchmarks.sandbox_front_bench`: about 45% of the sandbox's request time).

Every proposal but the `Meta` alias depends only on the member's key, its shape, the structure that shape
sits in (`shape.parent`, which moto sets before it asks) and the name of the object's class, and botocore's
shapes do not change once loaded. So those proposals are remembered per (shape, parent, key, class name);
the `Meta` alias is still read from the object every time, which spelling the object carries is still asked
of the object every time, and the response transformers (which moto's responses may add to at run time)
are still applied as moto applies them. The answer is moto's: tests/integration/test_sandbox_value_picking.py
compares the two pickers on every response shape the sandbox serves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_NO_PARENT = object()


def install() -> None:
    """Pick values through the memo while a sandbox runs (moto's own picker otherwise)."""
    from botocore import xform_name
    from moto.core import serialize
    from moto.core.utils import MISSING
    from moto.core.utils import get_value as value_of

    from sandbox import core

    original: Callable[..., Any] = serialize.ResponseSerializer.get_value
    if hasattr(original, "original"):
        return  # installed already
    providers = serialize.DEFAULT_ALIAS_PROVIDERS
    expected = list(providers)
    # The Meta alias is read live, first, as moto's first provider; the others are remembered.
    assert expected[0] is serialize.ExplicitAlias
    remembered: list[Any] = expected[1:]
    # (shape, parent, key, class name) -> the spellings to try, and whether each is a plain name (no path);
    # botocore's shapes hash by identity, and the memo holds them, so a key never stands for another shape.
    memo: dict[tuple[Any, Any, str, str], tuple[tuple[str, ...], bool]] = {}

    def proposals(
        value: Any, key: str, shape: Any, parent: Any, class_name: str
    ) -> tuple[tuple[str, ...], bool] | None:
        known = memo.get((shape, parent, key, class_name))
        if known is not None:
            return known
        context = serialize.AttributePickerContext(obj=value, key=key, shape=shape)
        found: list[str] = []
        try:
            for provider in remembered:
                alias_provider = provider(context)
                if alias_provider.has_alias(key):
                    alias = alias_provider.get_alias(key)
                    found += [alias, xform_name(alias)]
        except Exception:  # noqa: BLE001 - moto's own picker meets it (or not) as it always did
            return None
        known = (tuple(found), all(isinstance(k, str) and "." not in k for k in found))
        memo[(shape, parent, key, class_name)] = known
        return known

    def get_value(self: Any, value: Any, key: str, shape: Any) -> Any:
        picker = self._value_picker
        # A picker serves one response: whether it is moto's default one is asked once.
        state = getattr(picker, "__dict__", None)  # moto's pickers have one
        default = state.get("_sandbox_default") if state is not None else False
        if default is None:
            default = state["_sandbox_default"] = (  # type: ignore[index]
                type(picker) is serialize.XFormedAttributePicker
                and picker.alias_providers == expected
                and core.active() is not None
            )
            state["_sandbox_classes"] = {}  # type: ignore[index]
        if not default:
            return original(self, value, key, shape)
        assert state is not None
        try:
            class_name = value.__class__.__name__
        except AttributeError:
            return original(self, value, key, shape)
        proposed = proposals(value, key, shape, getattr(shape, "parent", _NO_PARENT), class_name)
        if proposed is None:
            return original(self, value, key, shape)
        tail, plain_names = proposed
        has_meta, indexable = _has_meta_and_getitem(value, state["_sandbox_classes"])
        # ExplicitAlias, as moto asks it
        if (
            has_meta
            and hasattr(value.Meta, "serialization_aliases")
            and key in value.Meta.serialization_aliases
        ):
            alias = value.Meta.serialization_aliases[key]
            found = _first_present(value, (alias, xform_name(alias), *tail), indexable)
        elif plain_names:
            found = _first_named(value, tail, indexable)
        else:
            found = _first_present(value, tail, indexable)
        transformers = picker.response_transformers
        if transformers:
            key_path = f"{'.'.join(self.path)}.{key}"
            for transform_path, transform in transformers.items():
                if key_path.endswith(transform_path):
                    found = transform(found)
                    break
        return found

    def _has_meta_and_getitem(
        value: Any, classes: dict[type, tuple[bool, bool, bool] | None]
    ) -> tuple[bool, bool]:
        """hasattr(value, "Meta"), hasattr(value, "__getitem__"). For an object of a class that leaves
        attribute lookup to Python (no __getattribute__ or __getattr__ of its own), whether the class has
        either is found once per response, and the object's own __dict__ is asked for the rest."""
        cls = type(value)
        if cls not in classes:
            mro = cls.__mro__
            ordinary = cls.__getattribute__ is object.__getattribute__ and not any(
                "__getattr__" in c.__dict__ for c in mro
            )
            classes[cls] = (
                (
                    any("Meta" in c.__dict__ for c in mro),
                    any("__getitem__" in c.__dict__ for c in mro),
                    any("__dict__" in c.__dict__ for c in mro),
                )
                if ordinary
                else None
            )
        facts = classes[cls]
        if facts is not None:
            own = value.__dict__ if facts[2] else None
            if own is None or ("Meta" not in own and "__getitem__" not in own):
                return facts[0], facts[1]
        return hasattr(value, "Meta"), hasattr(value, "__getitem__")

    def _first_named(value: Any, names: tuple[str, ...], indexable: bool) -> Any:
        """_first_present for names that are no paths."""
        if type(value) is dict:
            for name in names:
                found = value.get(name, MISSING)
                if found is not MISSING:
                    return found
            return None
        if indexable:
            return _first_present(value, names, indexable)
        for name in names:
            found = getattr(value, name, MISSING)
            if found is not MISSING:
                return found
        return None

    def _first_present(value: Any, keys: tuple[str, ...], indexable: bool) -> Any:
        """The value under the first key `value` has, read as moto's get_value reads it, else None."""
        # moto.core.utils.get_value: a dotted key is a path; otherwise value[key] when the object has
        # __getitem__ (None for KeyError, IndexError, TypeError, AttributeError), else getattr.
        for possible_key in keys:
            if not isinstance(possible_key, int) and "." in possible_key:
                found = value_of(value, possible_key, MISSING)
            elif indexable:
                try:
                    found = value[possible_key]
                except (KeyError, IndexError, TypeError, AttributeError):
                    continue
            else:
                found = getattr(value, str(possible_key), MISSING)
            if found is not MISSING:
                return found
        return None

    get_value.original = original  # type: ignore[attr-defined]
    serialize.ResponseSerializer.get_value = get_value  # type: ignore[method-assign]
