import json

import pytest

from sandbox.codedeploy.appspec import AppSpec, AppSpecError, content_sha256, parse, render

YAML_SPEC = """
version: 0.0
Resources:
  - myFunction:
      Type: AWS::Lambda::Function
      Properties:
        Name: orders
        Alias: live
        CurrentVersion: "3"
        TargetVersion: 4
Hooks:
  - BeforeAllowTraffic: CodeDeployHook_stack_PreTraffic
  - AfterAllowTraffic: CodeDeployHook_stack_PostTraffic
"""


def document(**properties):
    props = {"Name": "orders", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2", **properties}
    return {"version": 0.0, "Resources": [{"fn": {"Type": "AWS::Lambda::Function", "Properties": props}}]}


def test_yaml_appspec_parses():
    spec = parse(YAML_SPEC)
    assert spec == AppSpec(
        "orders",
        "live",
        "3",
        "4",
        {
            "BeforeAllowTraffic": "CodeDeployHook_stack_PreTraffic",
            "AfterAllowTraffic": "CodeDeployHook_stack_PostTraffic",
        },
    )
    assert spec.hook_for("BeforeAllowTraffic") == "CodeDeployHook_stack_PreTraffic"


def test_json_appspec_without_hooks_parses():
    spec = parse(json.dumps(document()))
    assert (spec.current_version, spec.target_version, spec.hooks) == ("1", "2", {})


def test_render_round_trips():
    spec = AppSpec("orders", "live", "7", "6", {"AfterAllowTraffic": "check"})
    assert parse(render(spec)) == spec


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (document(TargetVersion="1"), "same as CurrentVersion"),
        (document(TargetVersion="$LATEST"), "TargetVersion"),
        (document(CurrentVersion="0"), "CurrentVersion"),
        (document(Alias=None), "Alias"),
        ({**document(), "version": 1.0}, "version"),
        ({**document(), "Resources": []}, "exactly one"),
        ({**document(), "Resources": document()["Resources"] * 2}, "exactly one"),
        ({**document(), "Hooks": [{"BeforeInstall": "x"}]}, "not a Lambda lifecycle event"),
        (
            {**document(), "Hooks": [{"BeforeAllowTraffic": "a"}, {"BeforeAllowTraffic": "b"}]},
            "more than once",
        ),
        ({**document(), "Hooks": [{"AfterAllowTraffic": ""}]}, "one Lambda function"),
        ({**document(), "Hooks": {"AfterAllowTraffic": "x"}}, "list"),
    ],
)
def test_invalid_appspecs_say_what_is_wrong(doc, fragment):
    with pytest.raises(AppSpecError, match=fragment):
        parse(json.dumps(doc))


def test_wrong_resource_type_is_refused():
    doc = document()
    doc["Resources"][0]["fn"]["Type"] = "AWS::ECS::Service"
    with pytest.raises(AppSpecError, match="Type"):
        parse(json.dumps(doc))


@pytest.mark.parametrize("content", ["", "   ", "[1, 2]", "{unclosed", "just text"])
def test_garbage_is_refused(content):
    with pytest.raises(AppSpecError):
        parse(content)


def test_sha256_is_of_the_utf8_content():
    assert content_sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
