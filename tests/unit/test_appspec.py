"""The Lambda AppSpec: what the deployer sends and what the hooks read back."""

from __future__ import annotations

import hashlib
import json

import pytest

from rollout.appspec import LambdaAppSpec, build_appspec, parse_appspec, revision_for
from rollout.errors import AppSpecError


def test_the_appspec_moves_the_alias_between_two_versions_with_both_hooks() -> None:
    appspec = build_appspec(
        "orders-api", "live", "3", "4", "CodeDeployHook_s_PreTraffic", "CodeDeployHook_s_PostTraffic"
    )
    assert appspec == {
        "version": 0.0,
        "Resources": [
            {
                "ordersapi": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": "orders-api",
                        "Alias": "live",
                        "CurrentVersion": "3",
                        "TargetVersion": "4",
                    },
                }
            }
        ],
        "Hooks": [
            {"BeforeAllowTraffic": "CodeDeployHook_s_PreTraffic"},
            {"AfterAllowTraffic": "CodeDeployHook_s_PostTraffic"},
        ],
    }


def test_the_revision_carries_the_content_and_its_sha256() -> None:
    revision = revision_for(build_appspec("f", "live", "1", "2", "pre", "post"))
    content = revision["appSpecContent"]["content"]
    assert revision["revisionType"] == "AppSpecContent"
    assert revision["appSpecContent"]["sha256"] == hashlib.sha256(content.encode()).hexdigest()
    assert json.loads(content)["Resources"][0]["f"]["Properties"]["TargetVersion"] == "2"
    # Same deployment, same revision: CodeDeploy recognises a registered revision by its hash.
    assert revision_for(build_appspec("f", "live", "1", "2", "pre", "post")) == revision


def test_what_the_deployer_sends_the_hooks_read_back() -> None:
    content = revision_for(build_appspec("orders", "live", "7", "8", "pre", "post"))["appSpecContent"][
        "content"
    ]
    assert parse_appspec(content) == LambdaAppSpec("orders", "live", "7", "8", "pre", "post")


def test_hooks_are_optional() -> None:
    appspec = build_appspec("orders", "live", "1", "2")
    assert "Hooks" not in appspec
    parsed = parse_appspec(json.dumps(appspec))
    assert (parsed.before_allow_traffic, parsed.after_allow_traffic) == (None, None)


def test_a_yaml_appspec_from_another_tool_parses_with_numeric_versions() -> None:
    content = """
version: 0.0
Resources:
  - myLambdaFunction:
      Type: AWS::Lambda::Function
      Properties:
        Name: "orders"
        Alias: "live"
        CurrentVersion: 1
        TargetVersion: 2
Hooks:
  - BeforeAllowTraffic: "CodeDeployHook_stack_PreTraffic"
  - AfterAllowTraffic: "CodeDeployHook_stack_PostTraffic"
"""
    assert parse_appspec(content) == LambdaAppSpec(
        "orders", "live", "1", "2", "CodeDeployHook_stack_PreTraffic", "CodeDeployHook_stack_PostTraffic"
    )


@pytest.mark.parametrize(
    ("current", "target", "phrase"),
    [
        ("2", "2", "already the current version"),
        ("$LATEST", "2", "current_version"),
        ("1", "0", "target_version"),
    ],
)
def test_impossible_deployments_are_refused_before_codedeploy_sees_them(
    current: str, target: str, phrase: str
) -> None:
    with pytest.raises(AppSpecError, match=phrase.replace("$", r"\$")):
        build_appspec("orders", "live", current, target)


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("[1, 2]", "must be a mapping"),
        ("version: 0.0\nResources: []\n", "exactly one function"),
        ("Resources:\n  - a: {Type: AWS::EC2::Instance, Properties: {}}\n", "AWS::Lambda::Function"),
        ("Resources:\n  - a: {Type: AWS::Lambda::Function}\n", "no Properties"),
        (
            "Resources:\n  - a: {Type: AWS::Lambda::Function, Properties: {Name: f, Alias: live, CurrentVersion: 1}}\n",
            "TargetVersion is missing",
        ),
        ("{unclosed", "neither JSON nor YAML"),
    ],
)
def test_unusable_appspecs_say_what_is_missing(content: str, phrase: str) -> None:
    with pytest.raises(AppSpecError, match=phrase):
        parse_appspec(content)
