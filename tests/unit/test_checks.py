"""The checks document: defaults, and errors that name the field and say why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollout.checks import CHECKS_FILENAMES, ChecksError, default_checks, parse_checks

DEFAULT_CANARY = {
    "max_error_rate": 0.01,
    "max_p99_duration_ratio": 1.5,
    "min_invocations": 20,
    "strict": False,
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
    assert default_checks() == {"pre_traffic": [], "post_traffic": [], "canary": DEFAULT_CANARY}
    assert parse_checks(b"", "rollout.yaml") == default_checks()


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
    assert caught.value.field == "pre_traffic[0].event"
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
