"""moto's per-request costs cut where the answer stays exactly moto's.

Each patch here replaces work moto repeats on every request by work that gives the same result, and
leaves moto as it is when no sandbox runs:

- the serializer's value picking (sandbox/value_picking.py) and its writing of a structure's scalar
  members (sandbox/structure_rendering.py);
- which methods a response class has (moto lists them all, with `inspect.getmembers`, to ask whether one
  operation's method is among them);
- Flask's debug-mode hook on every request's `files` (moto's apps run with debug on), which made a new
  class per request; one class per kind of `files` does the same;
- an SQS queue's message counts, read on every SendMessage (moto computes every queue attribute to read
  ContentBasedDeduplication): counted at one instant rather than one instant per message, which made a
  publish to a topic with a queue subscribed cost time in proportion to the messages waiting there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from sandbox import core, structure_rendering, value_picking

_installed: list[bool] = []


def install() -> None:
    if _installed:
        return
    value_picking.install()
    structure_rendering.install()
    _install_debug_files()
    _install_method_names()
    _install_sqs_counts()
    _installed.append(True)


class MethodNames:
    """`name in MethodNames(cls)` is `name in moto.core.utils.method_names_from_class(cls)`: whether the class
    has an attribute of that name (as dir() lists it) that is a plain function, read as getmembers reads it."""

    def __init__(self, cls: type, listed: Callable[[Any], list[str]]) -> None:
        self._cls = cls
        self._listed = listed

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return name in self._listed(self._cls)
        mro = self._cls.__mro__
        if not any(name in base.__dict__ for base in mro):
            return False
        try:
            value = getattr(self._cls, name)
        except AttributeError:
            value = next(base.__dict__[name] for base in mro if name in base.__dict__)
        return inspect.isfunction(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed(self._cls))


def _install_method_names() -> None:
    """BaseResponse.call_action asks `action in method_names_from_class(self.__class__)`, which builds the
    list of every function of the class (inspect.getmembers: a few hundred getattr calls) per request."""
    from moto.core import responses

    listed = responses.method_names_from_class

    def method_names_from_class(clazz: Any) -> Any:
        # dir() of a class whose metaclass is type is the names in the __dict__ of each class of its MRO
        if core.active() is None or not isinstance(clazz, type) or type(clazz).__dir__ is not type.__dir__:
            return listed(clazz)
        return MethodNames(clazz, listed)

    responses.method_names_from_class = method_names_from_class


def _install_debug_files() -> None:
    """flask.debughelpers.attach_enctype_error_multidict, which Flask calls for each request in debug mode,
    with its subclass of the request's `files` class made once per class instead of once per request. The
    request it names in its error is kept on the `files` object instead of in the class's closure."""
    from flask import debughelpers

    attach = debughelpers.attach_enctype_error_multidict
    made: dict[type, type] = {}

    def debug_class(oldcls: type) -> type:
        class newcls(oldcls):
            def __getitem__(self, key: str) -> Any:
                try:
                    return super().__getitem__(key)
                except KeyError as e:
                    request = self.__dict__["_sandbox_debug_request"]
                    if key not in request.form:
                        raise
                    raise debughelpers.DebugFilesKeyError(request, key).with_traceback(
                        e.__traceback__
                    ) from None

        newcls.__name__ = oldcls.__name__
        newcls.__qualname__ = f"{attach.__qualname__}.<locals>.newcls"
        newcls.__module__ = oldcls.__module__
        return newcls

    def attach_enctype_error_multidict(request: Any) -> None:
        files = request.files
        if core.active() is None or not hasattr(files, "__dict__"):
            attach(request)
            return
        oldcls = files.__class__
        if oldcls not in made:
            made[oldcls] = debug_class(oldcls)
        files._sandbox_debug_request = request
        files.__class__ = made[oldcls]

    attach_enctype_error_multidict.original = attach  # type: ignore[attr-defined]
    debughelpers.attach_enctype_error_multidict = attach_enctype_error_multidict


def _install_sqs_counts() -> None:
    from moto.sqs import models

    queue = models.Queue
    visible = models.Message.visible
    delayed = models.Message.delayed
    moto_counts: dict[str, Any] = {
        "approximate_number_of_messages": queue.approximate_number_of_messages,
        "approximate_number_of_messages_not_visible": queue.approximate_number_of_messages_not_visible,
        "approximate_number_of_messages_delayed": queue.approximate_number_of_messages_delayed,
    }

    def at_one_instant(name: str, counted: Callable[[Any, float], bool]) -> property:
        original = moto_counts[name]

        def count(self: Any) -> int:
            if (
                core.active() is None
                or models.Message.visible is not visible
                or models.Message.delayed is not delayed
            ):
                return int(original.fget(self))
            now = models.unix_time_millis()
            return sum(1 for message in list(self._messages) if counted(message, now))

        return property(count)

    # Message.visible: now > visible_at; Message.delayed: now < delayed_until
    queue.approximate_number_of_messages = at_one_instant(  # type: ignore[method-assign,assignment]
        "approximate_number_of_messages",
        lambda m, now: now > m.visible_at and not now < m.delayed_until,
    )
    queue.approximate_number_of_messages_not_visible = at_one_instant(  # type: ignore[method-assign,assignment]
        "approximate_number_of_messages_not_visible", lambda m, now: not now > m.visible_at
    )
    queue.approximate_number_of_messages_delayed = at_one_instant(  # type: ignore[method-assign,assignment]
        "approximate_number_of_messages_delayed", lambda m, now: now < m.delayed_until
    )
