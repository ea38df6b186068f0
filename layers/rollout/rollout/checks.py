"""The checks document an artifact carries (`rollout.json` / `rollout.yaml` at the zip root): pure.

The deployer validates it once, stores the normalised form on the release, and the hooks read it
from the ledger. Every error names the field and says why, so the person who wrote the file can fix
it from the notification alone.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rollout.errors import ChecksError

CHECKS_FILENAMES = ("rollout.json", "rollout.yaml", "rollout.yml")

PHASES = ("pre_traffic", "post_traffic")
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_CHECKS_PER_PHASE = 50
MAX_NAME_LENGTH = 128
# A check's event becomes an Invoke payload; keep it far below Lambda's 6 MB request limit.
MAX_EVENT_BYTES = 256 * 1024
DEFAULT_MAX_DURATION_MS = 3000
MAX_DURATION_MS_LIMIT = 900_000  # Lambda's 15-minute timeout

CANARY_DEFAULTS: dict[str, Any] = {
    "max_error_rate": 0.01,
    "max_p99_duration_ratio": 1.5,
    "min_invocations": 20,
    "strict": False,
}

_CHECK_FIELDS = {"name", "event", "expect", "max_duration_ms"}
_TOP_FIELDS = {*PHASES, "canary", "strict"}


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
    return normalised


def default_checks() -> dict[str, Any]:
    """What an artifact without a checks file gets: no checks, default canary thresholds."""
    return parse_checks({})


def _load(raw: bytes | str | dict[str, Any], filename: str) -> Any:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, bytes):
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise ChecksError("(document)", f"is {len(raw)} bytes; at most {MAX_DOCUMENT_BYTES} are allowed")
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChecksError("(document)", f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ChecksError("(document)", f"is longer than {MAX_DOCUMENT_BYTES} bytes")
    if filename.lower().endswith(".json"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ChecksError(
                "(document)", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
    # PyYAML costs ~40 ms of cold start; most artifacts carry JSON or nothing.
    import yaml

    try:
        return yaml.safe_load(raw) if raw.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ChecksError("(document)", f"is not valid YAML: {problem}{where}") from exc


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
    _json_value(event, f"{where}.event")
    size = len(json.dumps(event).encode())
    if size > MAX_EVENT_BYTES:
        raise ChecksError(f"{where}.event", f"is {size} bytes as JSON; at most {MAX_EVENT_BYTES} are allowed")
    check: dict[str, Any] = {"name": name, "event": event}
    if "expect" in item:
        _json_value(item["expect"], f"{where}.expect")
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


def _json_value(value: Any, field: str) -> None:
    """YAML can express things JSON cannot (dates, non-string keys); the hooks need plain JSON."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ChecksError(field, f"must be plain JSON data ({exc})") from exc
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise ChecksError(field, f"has a non-string key {key!r}")
            _json_value(inner, f"{field}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _json_value(inner, f"{field}[{index}]")


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
