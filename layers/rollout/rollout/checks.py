"""The checks document an artifact carries (`rollout.json` / `rollout.yaml` at the zip root): pure.

The deployer validates it once, stores the normalised form on the release, and the hooks read it
from the ledger. Every error names the field and says why, so the person who wrote the file can fix
it from the notification alone.
"""

from __future__ import annotations

import functools
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from rollout.errors import ChecksError

CHECKS_FILENAMES = ("rollout.json", "rollout.yaml", "rollout.yml")

PHASES = ("pre_traffic", "post_traffic")
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_CHECKS_PER_PHASE = 50
MAX_NAME_LENGTH = 128
# A check's event becomes an Invoke payload; keep it far below Lambda's 6 MB request limit.
MAX_EVENT_BYTES = 64 * 1024  # one check's event; every event of a release must fit MAX_STORED_CHECKS_BYTES
DEFAULT_MAX_DURATION_MS = 3000
MAX_DURATION_MS_LIMIT = 900_000  # Lambda's 15-minute timeout
# Lists and mappings inside one another, the document itself counting as the first level. Real
# events nest a handful of levels (API Gateway's requestContext.authorizer.jwt.claims is 5 inside
# `event`, 8 in the document); the normalised checks are stored as a DynamoDB map, which allows 32.
MAX_NESTING_DEPTH = 20
# Every value and every mapping key counts. A hundred checks with API Gateway-sized events come to a
# few thousand; the bound keeps a small file from becoming a large tree to build, walk and store.
MAX_DOCUMENT_NODES = 20_000
# The validated checks are stored on the release's ledger item, which DynamoDB caps at 400 KB with
# every attribute (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html):
# a quarter of that leaves room for the hooks' results and the history.
MAX_STORED_CHECKS_BYTES = 100 * 1024
# The checks are stored on the release as DynamoDB numbers, which hold 38 significant digits and
# nothing smaller than 1e-130 (boto3 refuses an int of 39 digits; DynamoDB refuses 1e-131). Below
# 1e38 a whole number reads back from DynamoDB as the same int, so the hooks accept what was stored.
MAX_NUMBER_MAGNITUDE = 10**38  # exclusive
MIN_NUMBER_MAGNITUDE = 1e-130  # inclusive, for numbers other than zero

CANARY_DEFAULTS: dict[str, Any] = {
    "max_error_rate": 0.01,
    "max_p99_duration_ratio": 1.5,
    "min_invocations": 20,
    # Too little traffic to judge the canary fails it (fail closed): a quiet function opts out with false.
    "strict": True,
}

_CHECK_FIELDS = {"name", "event", "expect", "max_duration_ms"}
# "probe": false opts out of the start probe the pre-traffic hook sends when there are no
# pre-traffic checks (for functions where any invocation has side effects); see docs/HOOKS.md.
_TOP_FIELDS = {*PHASES, "canary", "strict", "probe", "approval"}
# "approval" asks for a person before traffic moves or before the deployment completes (gates.py).
# The timeout stays below CodeDeploy's one-hour hook limit (see gates.MAX_TIMEOUT_MINUTES).
APPROVAL_POSITIONS = ("traffic", "completion")
_APPROVAL_FIELDS = {"before", "timeout_minutes"}


def parse_checks(raw: bytes | str | dict[str, Any], filename: str = "rollout.json") -> dict[str, Any]:
    """Parse and validate a checks document; return it normalised with every default filled in."""
    document = _load(raw, filename)
    if not isinstance(document, dict):
        raise ChecksError(
            "(document)", f"must be a mapping of pre_traffic/post_traffic/canary, got {_kind(document)}"
        )
    unknown = sorted(set(map(str, document)) - _TOP_FIELDS)
    if unknown:
        raise ChecksError(unknown[0], f"unknown field (allowed: {', '.join(sorted(_TOP_FIELDS))})")
    normalised: dict[str, Any] = {phase: _checks_list(document.get(phase), phase) for phase in PHASES}
    normalised["canary"] = _canary(document.get("canary"))
    if "strict" in document:
        normalised["strict"] = _bool(document["strict"], "strict")
    normalised["probe"] = _bool(document["probe"], "probe") if "probe" in document else True
    if "approval" in document:
        normalised["approval"] = _approval(document["approval"])
    size = stored_size(normalised)
    if size > MAX_STORED_CHECKS_BYTES:
        raise ChecksError(
            "(document)",
            f"the validated checks are {size} bytes as JSON; at most {MAX_STORED_CHECKS_BYTES} are "
            "stored with a release (make the check events smaller)",
        )
    return normalised


def stored_size(normalised: dict[str, Any]) -> int:
    """Bytes the validated checks take as compact JSON (about what the ledger item holds)."""
    return len(json.dumps(normalised, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def default_checks() -> dict[str, Any]:
    """What an artifact without a checks file gets: no checks, default canary thresholds."""
    return parse_checks({})


def _load(raw: bytes | str | dict[str, Any], filename: str) -> Any:
    """The document as Python data, checked in one bounded walk before any field is looked at."""
    if isinstance(raw, dict):
        document: Any = raw
    else:
        document = _parse(raw, filename)
    _check_tree(document)
    return document


def _parse(raw: bytes | str, filename: str) -> Any:
    if isinstance(raw, bytes):
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise ChecksError("(document)", f"is {len(raw)} bytes; at most {MAX_DOCUMENT_BYTES} are allowed")
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChecksError("(document)", f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ChecksError("(document)", f"is longer than {MAX_DOCUMENT_BYTES} bytes")
    if not raw.strip():
        # A file that says nothing (cut short, or written by a step that failed) is not one asking for
        # no checks: read as none, its version would go out with no check its owner wrote.
        raise ChecksError("(document)", "is empty; a checks file with no checks is {}")
    if filename.lower().endswith(".json"):
        return _parse_json(raw)
    return _parse_yaml(raw)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_mapping_without_repeated_keys)
    except json.JSONDecodeError as exc:
        raise ChecksError(
            "(document)", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        # The C decoder recurses once per level; the walk would refuse this depth anyway.
        raise ChecksError("(document)", _too_deep()) from exc
    except ChecksError:
        raise
    except ValueError as exc:
        # Integers of more than 4300 digits (sys.get_int_max_str_digits) are refused by int().
        raise ChecksError("(document)", f"is not valid JSON: {exc}") from exc


def _mapping_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of repeated keys: a second `pre_traffic` would silently drop the first."""
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise ChecksError("(document)", _repeated_key(key))
        mapping[key] = value
    return mapping


def _parse_yaml(text: str) -> Any:
    # PyYAML costs ~40 ms of cold start; most artifacts carry JSON or nothing.
    import yaml

    loader = _bounded_yaml_loader()(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ChecksError("(document)", f"is not valid YAML: {problem}{where}") from exc
    except RecursionError as exc:
        raise ChecksError("(document)", _too_deep()) from exc
    except ChecksError:
        raise
    except (ValueError, OverflowError) as exc:
        # PyYAML's constructors call int() and date() on what its patterns matched: `2026-13-45`
        # or an integer of 5000 digits raise ValueError rather than a YAMLError.
        raise ChecksError("(document)", f"is not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


@functools.cache
def _bounded_yaml_loader() -> Any:
    """A safe loader that refuses anchors and aliases and bounds the tree while composing it.

    An alias makes one node appear many times: seven levels, each listing the previous one nine
    times, are 4.8 million strings from 350 bytes. safe_load builds that in milliseconds (shared
    references); serialising it took 27 s. Refusing anchors before construction keeps the cost of
    a document proportional to its size. Defined on first use so that PyYAML stays a lazy import.
    """
    import yaml

    return type("BoundedSafeLoader", (_ComposeBounds, _fast_safe_loader(yaml)), {})


def _fast_safe_loader(yaml: Any) -> Any:
    """SafeLoader's steps, over libyaml's parser when PyYAML has it (three to five times faster)."""
    if not yaml.__with_libyaml__:
        return yaml.SafeLoader
    from yaml._yaml import CParser
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class LibyamlSafeLoader(Composer, CParser, SafeConstructor, Resolver):
        """Composer comes before CParser so that nodes are composed in Python, where the limits of
        _ComposeBounds apply, rather than by libyaml's own composer."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return LibyamlSafeLoader


class _ComposeBounds:
    """Mixed in before a PyYAML loader: every node is counted, bounded and vetted as it is composed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]  # the loader after this mixin takes the stream
        self.nodes = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        import yaml

        event = self.peek_event()  # type: ignore[attr-defined]
        line = event.start_mark.line + 1
        _refuse_anchor_or_tag(yaml, event, line)
        self.nodes += 1
        if self.nodes > MAX_DOCUMENT_NODES:
            raise ChecksError("(document)", f"{_too_many_nodes()} (reached at line {line})")
        container = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if container:
            self.depth += 1
            if self.depth > MAX_NESTING_DEPTH:
                raise ChecksError("(document)", f"{_too_deep()} (at line {line})")
        try:
            node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            if container:
                self.depth -= 1
        if isinstance(node, yaml.MappingNode):
            _refuse_repeated_keys(yaml, node)
        return node


def _refuse_anchor_or_tag(yaml: Any, event: Any, line: int) -> None:
    if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
        raise ChecksError(
            "(document)",
            f"uses a YAML anchor or alias at line {line}: they are not allowed "
            "(an alias can multiply a small file into a huge document)",
        )
    if event.tag is not None:
        # `!!binary`, `!!set`, `!!python/...`: never plain JSON, and PyYAML's constructors
        # answer some of them with IndexError or KeyError (`!!int ""`, `!!bool maybe`).
        tag = event.tag.replace("tag:yaml.org,2002:", "!!")
        raise ChecksError(
            "(document)",
            f"uses the YAML tag {tag} at line {line}: tags are not allowed (quote a value to make it a string)",
        )


def _refuse_repeated_keys(yaml: Any, node: Any) -> None:
    seen: set[str] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
            continue  # merge keys, and non-string keys (which the walk refuses)
        if key.value in seen:
            line = key.start_mark.line + 1
            raise ChecksError("(document)", f"{_repeated_key(key.value)} (line {line})")
        seen.add(key.value)


def _check_tree(document: Any) -> None:
    """One iterative pass over the whole document: plain JSON data, nesting depth, node count.

    Iterative, so that no nesting can exhaust the interpreter's stack; and every later step
    (validation, json.dumps of an event, the DynamoDB write) then handles a tree of bounded size.
    """
    nodes = 1
    pending: list[tuple[Any, str, int]] = [(document, "", 0)]  # value, where, enclosing levels
    while pending:
        value, where, levels = pending.pop()
        if isinstance(value, dict | list):
            levels += 1
            if levels > MAX_NESTING_DEPTH:
                raise ChecksError(where or "(document)", _too_deep())
            # Children are counted before they are queued, so the queue stays within the limit too.
            nodes += len(value) * (2 if isinstance(value, dict) else 1)  # a mapping's keys count
            if nodes > MAX_DOCUMENT_NODES:
                raise ChecksError(where or "(document)", _too_many_nodes())
            if isinstance(value, list):
                pending.extend((inner, f"{where}[{index}]", levels) for index, inner in enumerate(value))
                continue
            for key, inner in value.items():
                if not isinstance(key, str):
                    raise ChecksError(where or "(document)", f"has a non-string key {key!r}")
                inner_where = f"{where}.{key}" if where else key
                _check_text(key, inner_where)
                pending.append((inner, inner_where, levels))
        elif isinstance(value, str):
            _check_text(value, where)
        elif value is None or isinstance(value, bool):
            continue
        elif isinstance(value, int | float):
            _check_number(value, where)
        else:
            raise ChecksError(
                where or "(document)",
                "must be plain JSON data (string, number, true/false, null, list or mapping), "
                f"got {type(value).__name__} {str(value)[:40]!r}",
            )


def _check_text(text: str, where: str) -> None:
    # json.loads turns "\ud800" into a lone surrogate, which no UTF-8 encoder (DynamoDB, Lambda) takes.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ChecksError(
            where or "(document)", f"holds a lone surrogate (\\u{ord(text[exc.start]):04x}), not text"
        ) from exc


def _check_number(number: int | float, where: str) -> None:
    field = where or "(document)"
    if isinstance(number, float) and not math.isfinite(number):
        raise ChecksError(field, f"must be plain JSON data, got {number}")
    magnitude = abs(number)
    # Compared as a float, since float(10**38) rounds below 10**38 yet reads back from DynamoDB as 10**38.
    if magnitude >= (MAX_NUMBER_MAGNITUDE if isinstance(number, int) else float(MAX_NUMBER_MAGNITUDE)):
        shown = f"{number:.3g}" if isinstance(number, float) else "an integer of more than 38 digits"
        raise ChecksError(field, f"is {shown}; numbers must be below 1e38 (DynamoDB keeps 38 digits)")
    if number and magnitude < MIN_NUMBER_MAGNITUDE:
        raise ChecksError(field, f"is {number:.3g}; numbers other than 0 must be at least 1e-130 (DynamoDB)")


def _too_deep() -> str:
    return f"nests lists and mappings more than {MAX_NESTING_DEPTH} levels deep"


def _too_many_nodes() -> str:
    return f"has more than {MAX_DOCUMENT_NODES} values and keys"


def _repeated_key(key: str) -> str:
    return f"repeats the key {key!r} in one mapping (only one of them would count)"


def _checks_list(value: Any, phase: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ChecksError(phase, f"must be a list of checks, got {_kind(value)}")
    if len(value) > MAX_CHECKS_PER_PHASE:
        raise ChecksError(phase, f"has {len(value)} checks; at most {MAX_CHECKS_PER_PHASE} are allowed")
    seen: set[str] = set()
    checks = []
    for index, item in enumerate(value):
        where = f"{phase}[{index}]"
        check = _check(item, where)
        if check["name"] in seen:
            raise ChecksError(
                f"{where}.name", f"duplicate name {check['name']!r} (names must be unique in {phase})"
            )
        seen.add(check["name"])
        checks.append(check)
    return checks


def _check(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ChecksError(
            where, f"must be a mapping with name/event/expect/max_duration_ms, got {_kind(item)}"
        )
    unknown = sorted(set(map(str, item)) - _CHECK_FIELDS)
    if unknown:
        raise ChecksError(
            f"{where}.{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(_CHECK_FIELDS))})"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ChecksError(f"{where}.name", "is required and must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ChecksError(
            f"{where}.name", f"is {len(name)} characters; at most {MAX_NAME_LENGTH} are allowed"
        )
    event = item.get("event", {})
    size = len(json.dumps(event).encode())
    if size > MAX_EVENT_BYTES:
        raise ChecksError(f"{where}.event", f"is {size} bytes as JSON; at most {MAX_EVENT_BYTES} are allowed")
    check: dict[str, Any] = {"name": name, "event": event}
    if "expect" in item:
        check["expect"] = item["expect"]
    check["max_duration_ms"] = _int(
        item.get("max_duration_ms", DEFAULT_MAX_DURATION_MS),
        f"{where}.max_duration_ms",
        1,
        MAX_DURATION_MS_LIMIT,
    )
    return check


def _canary(value: Any) -> dict[str, Any]:
    if value is None:
        return dict(CANARY_DEFAULTS)
    if not isinstance(value, dict):
        raise ChecksError("canary", f"must be a mapping, got {_kind(value)}")
    unknown = sorted(set(map(str, value)) - set(CANARY_DEFAULTS))
    if unknown:
        raise ChecksError(
            f"canary.{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(CANARY_DEFAULTS))})"
        )
    merged = {**CANARY_DEFAULTS, **value}
    return {
        "max_error_rate": _number(merged["max_error_rate"], "canary.max_error_rate", 0.0, 1.0),
        "max_p99_duration_ratio": _number(
            merged["max_p99_duration_ratio"], "canary.max_p99_duration_ratio", 1.0, None
        ),
        "min_invocations": _int(merged["min_invocations"], "canary.min_invocations", 0, None),
        "strict": _bool(merged["strict"], "canary.strict"),
    }


def _approval(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ChecksError("approval", f"must be a mapping, got {_kind(value)}")
    unknown = sorted(set(map(str, value)) - _APPROVAL_FIELDS)
    if unknown:
        raise ChecksError(
            f"approval.{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(_APPROVAL_FIELDS))})"
        )
    # Imported here: the deployer validates every checks file, and only those asking for a person
    # need the gates' limits (rollout.gates builds its types at import).
    from rollout.gates import DEFAULT_TIMEOUT_MINUTES, MAX_TIMEOUT_MINUTES, MIN_TIMEOUT_MINUTES

    before = value.get("before")
    if before not in APPROVAL_POSITIONS:
        raise ChecksError(
            "approval.before", f"must be one of {', '.join(APPROVAL_POSITIONS)}, got {_kind(before)}"
        )
    minutes = _int(
        value.get("timeout_minutes", DEFAULT_TIMEOUT_MINUTES),
        "approval.timeout_minutes",
        MIN_TIMEOUT_MINUTES,
        MAX_TIMEOUT_MINUTES,
    )
    return {"before": before, "timeout_minutes": minutes}


def _int(value: Any, field: str, low: int, high: int | None) -> int:
    # bool is an int subclass: `true` is not a duration.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChecksError(field, f"must be an integer, got {_kind(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ChecksError(field, f"must be a whole number, got {value}")
        value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ChecksError(field, f"must be {bound}, got {value}")
    return int(value)


def _number(value: Any, field: str, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ChecksError(field, f"must be a number, got {_kind(value)}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ChecksError(field, f"must be {bound}, got {value:g}")
    return float(value)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ChecksError(field, f"must be true or false, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
