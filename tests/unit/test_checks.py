"""The checks document: defaults, and errors that name the field and say why."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from rollout import checks
from rollout.checks import CHECKS_FILENAMES, ChecksError, default_checks, parse_checks

DEFAULT_CANARY = {
    "max_error_rate": 0.01,
    "max_p99_duration_ratio": 1.5,
    "min_invocations": 20,
    "strict": True,  # too little traffic to judge fails the canary (fail closed)
}


def test_the_documented_example_is_normalised_with_defaults() -> None:
    document = {
        "pre_traffic": [
            {
                "name": "health",
                "event": {"path": "/health"},
                "expect": {"statusCode": 200},
                "max_duration_ms": 3000,
            }
        ],
        "post_traffic": [
            {"name": "health via alias", "event": {"path": "/health"}, "expect": {"statusCode": 200}}
        ],
        "canary": {"max_error_rate": 0.01, "max_p99_duration_ratio": 1.5, "min_invocations": 20},
    }
    parsed = parse_checks(json.dumps(document).encode())
    assert parsed["post_traffic"] == [
        {
            "name": "health via alias",
            "event": {"path": "/health"},
            "expect": {"statusCode": 200},
            "max_duration_ms": 3000,
        }
    ]
    assert parsed["canary"] == DEFAULT_CANARY
    assert "strict" not in parsed


def test_a_minimal_check_gets_an_empty_event_and_no_expectation() -> None:
    parsed = parse_checks({"pre_traffic": [{"name": "smoke"}]})
    assert parsed["pre_traffic"] == [{"name": "smoke", "event": {}, "max_duration_ms": 3000}]
    assert parsed["post_traffic"] == []


def test_no_document_means_no_checks_and_default_thresholds() -> None:
    assert default_checks() == {
        "pre_traffic": [],
        "post_traffic": [],
        "canary": DEFAULT_CANARY,
        "probe": True,
    }


@pytest.mark.parametrize("filename", ["rollout.json", "rollout.yaml", "rollout.yml"])
@pytest.mark.parametrize("body", [b"", b"  \n\t\n", "\ufeff".encode()])
def test_an_empty_checks_file_is_refused_not_read_as_no_checks(filename: str, body: bytes) -> None:
    """A checks file that is there but says nothing (truncated, or written by a step that failed) is not
    a file asking for no checks: that is `{}`."""
    with pytest.raises(ChecksError) as refused:
        parse_checks(body, filename)
    assert refused.value.field == "(document)"
    assert "is empty" in str(refused.value)


def test_yaml_documents_parse_like_json() -> None:
    text = """
pre_traffic:
  - name: health
    event: {path: /health}
    expect: {statusCode: 200, body: [1, 2]}
canary:
  strict: true
  min_invocations: 0
strict: true
"""
    for filename in ("rollout.yaml", "rollout.yml"):
        parsed = parse_checks(text, filename)
        assert parsed["pre_traffic"][0]["expect"] == {"statusCode": 200, "body": [1, 2]}
        assert parsed["canary"] == {**DEFAULT_CANARY, "strict": True, "min_invocations": 0}
        assert parsed["strict"] is True


def test_any_json_value_may_be_an_event_or_an_expectation() -> None:
    parsed = parse_checks({"pre_traffic": [{"name": "n", "event": [1, "a", None], "expect": "ok"}]})
    assert parsed["pre_traffic"][0]["event"] == [1, "a", None]
    assert parsed["pre_traffic"][0]["expect"] == "ok"


def test_whole_number_floats_are_accepted_as_integers() -> None:
    parsed = parse_checks({"pre_traffic": [{"name": "n", "max_duration_ms": 1500.0}]})
    assert parsed["pre_traffic"][0]["max_duration_ms"] == 1500


@pytest.mark.parametrize(
    ("document", "field", "why"),
    [
        ([], "(document)", "must be a mapping"),
        ({"pre_trafic": []}, "pre_trafic", "unknown field"),
        ({"pre_traffic": {"name": "x"}}, "pre_traffic", "must be a list"),
        ({"pre_traffic": ["health"]}, "pre_traffic[0]", "must be a mapping"),
        ({"pre_traffic": [{"event": {}}]}, "pre_traffic[0].name", "is required"),
        ({"pre_traffic": [{"name": "  "}]}, "pre_traffic[0].name", "non-empty"),
        ({"pre_traffic": [{"name": 5}]}, "pre_traffic[0].name", "non-empty string"),
        ({"post_traffic": [{"name": "a"}, {"name": "a"}]}, "post_traffic[1].name", "duplicate name 'a'"),
        ({"pre_traffic": [{"name": "a", "timeout": 3}]}, "pre_traffic[0].timeout", "unknown field"),
        (
            {"pre_traffic": [{"name": "a", "max_duration_ms": 0}]},
            "pre_traffic[0].max_duration_ms",
            "between 1 and 900000",
        ),
        (
            {"pre_traffic": [{"name": "a", "max_duration_ms": 900001}]},
            "pre_traffic[0].max_duration_ms",
            "got 900001",
        ),
        (
            {"pre_traffic": [{"name": "a", "max_duration_ms": "3s"}]},
            "pre_traffic[0].max_duration_ms",
            "must be an integer",
        ),
        (
            {"pre_traffic": [{"name": "a", "max_duration_ms": True}]},
            "pre_traffic[0].max_duration_ms",
            "boolean",
        ),
        (
            {"pre_traffic": [{"name": "a", "max_duration_ms": 1.5}]},
            "pre_traffic[0].max_duration_ms",
            "whole number",
        ),
        ({"canary": []}, "canary", "must be a mapping"),
        ({"canary": {"max_error_rate": 1.5}}, "canary.max_error_rate", "between 0 and 1"),
        ({"canary": {"max_error_rate": -0.1}}, "canary.max_error_rate", "between 0 and 1"),
        ({"canary": {"max_error_rate": "1%"}}, "canary.max_error_rate", "must be a number"),
        ({"canary": {"max_p99_duration_ratio": 0.9}}, "canary.max_p99_duration_ratio", "at least 1"),
        ({"canary": {"min_invocations": -1}}, "canary.min_invocations", "at least 0"),
        ({"canary": {"strict": "yes"}}, "canary.strict", "true or false"),
        ({"canary": {"max_errors": 1}}, "canary.max_errors", "unknown field"),
        ({"strict": 1}, "strict", "true or false"),
        ({"pre_traffic": [{"name": "a"}] * 51}, "pre_traffic", "at most 50"),
        (
            {"pre_traffic": [{"name": "a", "event": {"blob": "x" * 300_000}}]},
            "pre_traffic[0].event",
            "bytes as JSON",
        ),
    ],
)
def test_errors_name_the_field_and_say_why(document: Any, field: str, why: str) -> None:
    with pytest.raises(ChecksError) as caught:
        parse_checks(document if isinstance(document, dict) else json.dumps(document))
    assert caught.value.field == field
    assert why in caught.value.why
    assert str(caught.value).startswith(f"{field}: ")


def test_yaml_only_values_are_not_json() -> None:
    with pytest.raises(ChecksError) as caught:
        parse_checks("pre_traffic:\n  - name: a\n    event: {when: 2026-03-14}\n", "rollout.yaml")
    assert caught.value.field == "pre_traffic[0].event.when"
    assert "must be plain JSON data" in caught.value.why
    assert "date" in caught.value.why
    with pytest.raises(ChecksError) as caught:
        parse_checks("pre_traffic:\n  - name: a\n    expect: {1: ok}\n", "rollout.yaml")
    assert caught.value.field == "pre_traffic[0].expect"
    assert "non-string key" in caught.value.why


@pytest.mark.parametrize(
    ("raw", "filename", "why"),
    [
        (b'{"pre_traffic": [', "rollout.json", "not valid JSON"),
        (b"\xff\xfe{}", "rollout.json", "not UTF-8"),
        (b"pre_traffic: [\n  - a", "rollout.yaml", "not valid YAML"),
        (b"x" * (1024 * 1024 + 1), "rollout.json", "at most"),
    ],
)
def test_unreadable_documents_say_where_they_break(raw: bytes, filename: str, why: str) -> None:
    with pytest.raises(ChecksError) as caught:
        parse_checks(raw, filename)
    assert caught.value.field == "(document)"
    assert why in caught.value.why


def test_json_syntax_errors_give_the_line() -> None:
    with pytest.raises(ChecksError) as caught:
        parse_checks(b'{\n  "pre_traffic": [,]\n}')
    assert "line 2" in caught.value.why


def test_the_filenames_the_deployer_looks_for() -> None:
    assert CHECKS_FILENAMES == ("rollout.json", "rollout.yaml", "rollout.yml")


# --- fail closed: bombs, nesting and limits -----------------------------------------------------


@pytest.fixture(params=["libyaml", "pure-python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a YAML test with libyaml's parser (Lambda's wheel has it) and without it."""
    import yaml

    if request.param == "pure-python":
        monkeypatch.setattr(yaml, "__with_libyaml__", False)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml here")
    checks._bounded_yaml_loader.cache_clear()
    yield request.param
    checks._bounded_yaml_loader.cache_clear()


def refused(raw: bytes | str | dict[str, Any], filename: str = "rollout.json") -> ChecksError:
    with pytest.raises(ChecksError) as caught:
        parse_checks(raw, filename)
    return caught.value


def alias_bomb(levels: int = 7) -> str:
    """Each level lists the previous one nine times: 9**levels strings from a few hundred bytes."""
    lines = ["pre_traffic:", "- name: bomb", "  event:", f"    l0: &l0 [{','.join(['lol'] * 9)}]"]
    lines += [f"    l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(yaml_parser: str) -> None:
    bomb = alias_bomb()
    assert len(bomb.encode()) < 412  # the size of the file that held the deployer for 23.7 s
    error = refused(bomb, "rollout.yaml")
    assert error.field == "(document)"
    assert "anchor or alias at line 4" in error.why


@pytest.mark.parametrize(
    "text",
    [
        "canary: &defaults {min_invocations: 1}\n",
        "pre_traffic:\n  - &check {name: a}\n",
        "base: &b {name: a}\npre_traffic:\n  - <<: *b\n",
        "pre_traffic: *missing\n",
    ],
    ids=["anchor-only", "anchor-on-a-check", "merge-key-alias", "undefined-alias"],
)
def test_yaml_anchors_and_aliases_are_refused_wherever_they_are(text: str, yaml_parser: str) -> None:
    assert "anchor or alias" in refused(text, "rollout.yaml").why


def test_deep_json_nesting_is_a_checks_error_not_a_recursion_error() -> None:
    error = refused(b"[" * 100_000 + b"]" * 100_000)
    assert (error.field, error.why) == (
        "(document)",
        f"nests lists and mappings more than {checks.MAX_NESTING_DEPTH} levels deep",
    )


def test_deep_yaml_nesting_is_refused_while_composing(yaml_parser: str) -> None:
    error = refused("[" * 100 + "]" * 100, "rollout.yaml")
    assert error.why.endswith(f"more than {checks.MAX_NESTING_DEPTH} levels deep (at line 1)")


def test_very_deep_yaml_nesting_is_a_checks_error(yaml_parser: str) -> None:
    # libyaml stops at 1000 levels on its own, while scanning ahead; either way a ChecksError.
    error = refused("[" * 100_000 + "]" * 100_000, "rollout.yaml")
    assert error.field == "(document)"
    assert "levels deep" in error.why or "maximum nesting depth" in error.why


def nested_event(levels: int) -> dict[str, Any]:
    """A document whose event adds `levels` lists to the three levels around it."""
    event: Any = []
    for _ in range(levels - 1):
        event = [event]
    return {"pre_traffic": [{"name": "deep", "event": event}]}


@pytest.mark.parametrize("filename", ["rollout.json", "rollout.yaml"])
def test_nesting_depth_limit(filename: str) -> None:
    at_limit = nested_event(checks.MAX_NESTING_DEPTH - 3)
    assert (
        parse_checks(json.dumps(at_limit), filename)["pre_traffic"][0]["event"]
        == at_limit["pre_traffic"][0]["event"]
    )
    error = refused(json.dumps(nested_event(checks.MAX_NESTING_DEPTH - 2)), filename)
    assert "levels deep" in error.why
    # The walk names where it stopped (data passed as a dict never meets a parser).
    walked = refused(nested_event(checks.MAX_NESTING_DEPTH - 2))
    assert walked.field == "pre_traffic[0].event" + "[0]" * (checks.MAX_NESTING_DEPTH - 3)


def wide_event(values: int) -> dict[str, Any]:
    """A document of `values` + 8 nodes: the root, 3 keys, 2 lists, the check, its name."""
    return {"pre_traffic": [{"name": "a", "event": [0] * values}]}


@pytest.mark.parametrize("filename", ["rollout.json", "rollout.yaml"])
def test_node_count_limit(filename: str) -> None:
    parse_checks(json.dumps(wide_event(checks.MAX_DOCUMENT_NODES - 8)), filename)
    error = refused(json.dumps(wide_event(checks.MAX_DOCUMENT_NODES - 7)), filename)
    assert f"more than {checks.MAX_DOCUMENT_NODES} values and keys" in error.why


def test_the_node_count_bounds_data_that_shares_or_repeats_itself() -> None:
    shared: list[Any] = ["x"] * 1000
    document = {"pre_traffic": [{"name": "a", "event": [shared] * 1000}]}  # a million strings
    assert "values and keys" in refused(document).why
    cyclic: dict[str, Any] = {}
    cyclic["pre_traffic"] = [{"name": "a", "event": cyclic}]
    assert "levels deep" in refused(cyclic).why
    huge = 10**5000  # str() of it raises ValueError (more than 4300 digits)
    assert "more than 38 digits" in refused({"pre_traffic": [{"name": "a", "expect": huge}]}).why


def test_document_size_limit() -> None:
    body = b'{"pre_traffic": []}'
    padded = body + b" " * (checks.MAX_DOCUMENT_BYTES - len(body))
    assert parse_checks(padded)["pre_traffic"] == []
    error = refused(padded + b" ")
    assert f"at most {checks.MAX_DOCUMENT_BYTES}" in error.why


def test_checks_per_phase_limit() -> None:
    at_limit = [{"name": f"c{n}"} for n in range(checks.MAX_CHECKS_PER_PHASE)]
    assert len(parse_checks({"post_traffic": at_limit})["post_traffic"]) == checks.MAX_CHECKS_PER_PHASE
    error = refused({"post_traffic": [*at_limit, {"name": "one more"}]})
    assert (error.field, f"at most {checks.MAX_CHECKS_PER_PHASE}" in error.why) == ("post_traffic", True)


def test_name_length_limit() -> None:
    name = "n" * checks.MAX_NAME_LENGTH
    assert parse_checks({"pre_traffic": [{"name": name}]})["pre_traffic"][0]["name"] == name
    error = refused({"pre_traffic": [{"name": name + "n"}]})
    assert (error.field, f"at most {checks.MAX_NAME_LENGTH}" in error.why) == ("pre_traffic[0].name", True)


def test_event_size_limit() -> None:
    def event_of(size: int) -> dict[str, str]:
        event = {"blob": ""}
        event["blob"] = "x" * (size - len(json.dumps(event)))
        return event

    parse_checks({"pre_traffic": [{"name": "a", "event": event_of(checks.MAX_EVENT_BYTES)}]})
    error = refused({"pre_traffic": [{"name": "a", "event": event_of(checks.MAX_EVENT_BYTES + 1)}]})
    assert (error.field, f"at most {checks.MAX_EVENT_BYTES}" in error.why) == ("pre_traffic[0].event", True)


def test_duration_limit() -> None:
    limit = checks.MAX_DURATION_MS_LIMIT
    parsed = parse_checks({"pre_traffic": [{"name": "a", "max_duration_ms": limit}]})
    assert parsed["pre_traffic"][0]["max_duration_ms"] == limit
    error = refused({"pre_traffic": [{"name": "a", "max_duration_ms": limit + 1}]})
    assert error.field == "pre_traffic[0].max_duration_ms"


@pytest.mark.parametrize(
    "number",
    [
        checks.MAX_NUMBER_MAGNITUDE - 1,
        -(checks.MAX_NUMBER_MAGNITUDE - 1),
        math.nextafter(1e38, 0),
        1e-130,
        -1e-130,
        0,
        0.0,
    ],
)
def test_numbers_dynamodb_can_store_are_accepted(number: float) -> None:
    parsed = parse_checks(json.dumps({"pre_traffic": [{"name": "a", "expect": {"n": number}}]}).encode())
    assert parsed["pre_traffic"][0]["expect"]["n"] == number


@pytest.mark.parametrize(
    ("number", "why"),
    [
        (checks.MAX_NUMBER_MAGNITUDE, "an integer of more than 38 digits"),
        (-checks.MAX_NUMBER_MAGNITUDE, "an integer of more than 38 digits"),
        (1e38, "below 1e38"),
        (1e-131, "at least 1e-130"),
        (-1e-131, "at least 1e-130"),
    ],
)
def test_numbers_dynamodb_cannot_store_are_refused(number: float, why: str) -> None:
    error = refused(json.dumps({"pre_traffic": [{"name": "a", "expect": {"n": number}}]}).encode())
    assert (error.field, why in error.why) == ("pre_traffic[0].expect.n", True)


@pytest.mark.parametrize(
    ("raw", "filename", "field", "why"),
    [
        (b'{"pre_traffic": [{"name": "a", "event": NaN}]}', "rollout.json", "pre_traffic[0].event", "nan"),
        (b'{"canary": {"max_error_rate": Infinity}}', "rollout.json", "canary.max_error_rate", "inf"),
        (b'{"pre_traffic": [{"name": "\\ud800"}]}', "rollout.json", "pre_traffic[0].name", "lone surrogate"),
        (
            b'{"pre_traffic": [{"name": "a", "expect": ' + b"1" * 5000 + b"}]}",
            "rollout.json",
            "(document)",
            "4300 digits",
        ),
        (
            b"pre_traffic:\n  - {name: a, event: " + b"1" * 5000 + b"}\n",
            "rollout.yaml",
            "(document)",
            "4300 digits",
        ),
        (
            b"pre_traffic:\n  - {name: a, event: 2026-13-45}\n",
            "rollout.yaml",
            "(document)",
            "month must be in 1..12",
        ),
        (
            b"pre_traffic:\n  - {name: a, event: !!binary aGk=}\n",
            "rollout.yaml",
            "(document)",
            "tag !!binary at line 2",
        ),
        (
            b"pre_traffic:\n  - {name: a, event: !!set {a}}\n",
            "rollout.yaml",
            "(document)",
            "tag !!set at line 2",
        ),
        (
            b"pre_traffic: !!python/object:os.system {}\n",
            "rollout.yaml",
            "(document)",
            "tag !!python/object:os.system",
        ),
        (
            b'pre_traffic:\n  - {name: a, event: !!int ""}\n',
            "rollout.yaml",
            "(document)",
            "tags are not allowed",
        ),
        (b"canary: {strict: !!bool maybe}\n", "rollout.yaml", "(document)", "tags are not allowed"),
        (b"canary: {}\n---\ncanary: {}\n", "rollout.yaml", "(document)", "not valid YAML"),
    ],
)
def test_values_that_would_break_later_steps_are_checks_errors(
    raw: bytes, filename: str, field: str, why: str
) -> None:
    error = refused(raw, filename)
    assert (error.field, why in error.why) == (field, True), error


@pytest.mark.parametrize(
    ("raw", "filename", "line"),
    [
        (b'{"pre_traffic": [{"name": "a"}], "pre_traffic": []}', "rollout.json", ""),
        (b'{"pre_traffic": [{"name": "a", "name": "b"}]}', "rollout.json", ""),
        (b"pre_traffic: [{name: a}]\npost_traffic: []\npre_traffic: []\n", "rollout.yaml", " (line 3)"),
        (b"canary: {strict: true, 'strict': false}\n", "rollout.yaml", " (line 1)"),
    ],
)
def test_a_repeated_key_is_refused_rather_than_silently_dropped(raw: bytes, filename: str, line: str) -> None:
    error = refused(raw, filename)
    assert error.field == "(document)"
    assert error.why.startswith("repeats the key ")
    assert error.why.endswith("(only one of them would count)" + line)


def test_the_validated_checks_stay_far_below_dynamodbs_item_size() -> None:
    def document(padding: int) -> dict[str, Any]:
        # Two checks, each event within MAX_EVENT_BYTES, together at the stored limit.
        half = padding // 2
        return {
            "pre_traffic": [{"name": "a", "event": {"p": "x" * half}}],
            "post_traffic": [{"name": "b", "event": {"p": "x" * (padding - half)}}],
        }

    base = checks.stored_size(parse_checks(document(0)))
    at_limit = document(checks.MAX_STORED_CHECKS_BYTES - base)

    assert checks.stored_size(parse_checks(at_limit)) == checks.MAX_STORED_CHECKS_BYTES
    error = refused(document(checks.MAX_STORED_CHECKS_BYTES - base + 1))
    assert error.field == "(document)"
    assert f"at most {checks.MAX_STORED_CHECKS_BYTES} are stored with a release" in error.why
