"""Intrinsic functions, conditions and ordering as CloudFormation evaluates them."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.provision.errors import TemplateError
from sandbox.provision.intrinsics import NO_VALUE, Resolver, creation_order

PSEUDO = {
    "AWS::StackName": "demo",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "111122223333",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
RESOURCES = {
    "Bucket": ("demo-bucket-abc", {"Arn": "arn:aws:s3:::demo-bucket-abc"}),
    "Topic": ("arn:aws:sns:eu-west-1:111122223333:t", {"TopicName": "t"}),
}


def _ref(name: str) -> Any:
    if name not in RESOURCES:
        raise TemplateError(f"unknown {name}")
    return RESOURCES[name][0]


def _get_att(name: str, attribute: str) -> Any:
    return RESOURCES[name][1][attribute]


def resolver(
    parameters: dict[str, Any] | None = None,
    conditions: dict[str, Any] | None = None,
    mappings: dict[str, Any] | None = None,
) -> Resolver:
    return Resolver(
        parameters=parameters or {"Stage": "dev", "Names": ["a", "b"]},
        pseudo_parameters=PSEUDO,
        conditions=conditions or {},
        mappings=mappings,
        ref=_ref,
        get_att=_get_att,
    )


def test_ref_reads_parameters_pseudo_parameters_and_resources() -> None:
    r = resolver()
    assert r.resolve({"Ref": "Stage"}) == "dev"
    assert r.resolve({"Ref": "AWS::Region"}) == "eu-west-1"
    assert r.resolve({"Ref": "Bucket"}) == "demo-bucket-abc"
    assert r.resolve({"Ref": "Names"}) == ["a", "b"]


def test_get_att_in_both_forms() -> None:
    r = resolver()
    assert r.resolve({"Fn::GetAtt": ["Bucket", "Arn"]}) == "arn:aws:s3:::demo-bucket-abc"
    assert r.resolve({"Fn::GetAtt": "Topic.TopicName"}) == "t"


def test_sub_string_form_with_parameters_attributes_and_literals() -> None:
    r = resolver()
    value = r.resolve({"Fn::Sub": "${AWS::StackName}-${Stage}/${Bucket.Arn}/${Bucket}/${!Literal}"})
    assert value == "demo-dev/arn:aws:s3:::demo-bucket-abc/demo-bucket-abc/${Literal}"


def test_sub_list_form_prefers_its_own_variables() -> None:
    r = resolver()
    value = r.resolve(
        {
            "Fn::Sub": [
                "arn:${AWS::Partition}:x:::${Stage}/${name}",
                {"name": {"Ref": "Bucket"}, "Stage": "own"},
            ]
        }
    )
    assert value == "arn:aws:x:::own/demo-bucket-abc"


def test_join_select_split_base64_getazs_find_in_map() -> None:
    r = resolver(mappings={"Sizes": {"dev": {"Memory": 256}}})
    assert r.resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}, 3]]}) == "a-dev-3"
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert r.resolve({"Fn::Base64": "hi"}) == "aGk="
    assert r.resolve({"Fn::GetAZs": ""}) == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert r.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}) == 256


def test_conditions_combine_and_pick_if_branches() -> None:
    conditions = {
        "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
        "IsProd": {"Fn::Not": [{"Condition": "IsDev"}]},
        "Both": {"Fn::And": [{"Condition": "IsDev"}, {"Condition": "IsProd"}]},
        "Either": {"Fn::Or": [{"Condition": "IsDev"}, {"Condition": "IsProd"}]},
    }
    r = resolver(conditions=conditions)
    assert (r.condition("IsDev"), r.condition("IsProd"), r.condition("Both"), r.condition("Either")) == (
        True,
        False,
        False,
        True,
    )
    assert r.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "small"


def test_no_value_drops_the_key_or_list_item_it_stands_in() -> None:
    r = resolver(conditions={"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}})
    properties = {
        "Kept": 1,
        "Dropped": {"Fn::If": ["IsProd", 5, {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Fn::If": ["IsProd", "b", {"Ref": "AWS::NoValue"}]}, "c"],
    }
    assert r.resolve(properties) == {"Kept": 1, "List": ["a", "c"]}
    assert r.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


def test_number_parameters_compare_equal_to_numbers() -> None:
    r = resolver(parameters={"Count": "0"}, conditions={"None": {"Fn::Equals": [{"Ref": "Count"}, 0]}})
    assert r.condition("None") is True


def test_conditions_in_a_loop_are_an_error_naming_them() -> None:
    r = resolver(conditions={"A": {"Fn::Not": [{"Condition": "B"}]}, "B": {"Fn::Not": [{"Condition": "A"}]}})
    with pytest.raises(TemplateError, match="A -> B -> A"):
        r.condition("A")


def test_unknown_intrinsic_and_undefined_condition_are_errors() -> None:
    r = resolver()
    with pytest.raises(TemplateError, match="Fn::Cidr"):
        r.resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]})
    with pytest.raises(TemplateError, match="Missing"):
        r.resolve({"Fn::If": ["Missing", 1, 2]})


def test_references_follow_only_the_chosen_if_branch() -> None:
    r = resolver(conditions={"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}})
    value = {
        "A": {"Fn::GetAtt": ["Role", "Arn"]},
        "B": {"Fn::Sub": "${Queue.Arn}/${AWS::Region}/${!Skip}"},
        "C": {"Fn::Sub": ["${x}", {"x": {"Ref": "Table"}}]},
        "D": {"Fn::If": ["IsProd", {"Ref": "ProdOnly"}, {"Ref": "DevOnly"}]},
    }
    assert r.references(value) == {"Role", "Queue", "AWS::Region", "Table", "DevOnly"}


def test_creation_order_puts_dependencies_first() -> None:
    order = creation_order(
        {"Function": {"Role", "Layer"}, "Role": set(), "Layer": set(), "Rule": {"Function"}}
    )
    assert order.index("Role") < order.index("Function")
    assert order.index("Layer") < order.index("Function")
    assert order.index("Function") < order.index("Rule")


def test_creation_order_names_the_resources_in_a_loop() -> None:
    with pytest.raises(TemplateError, match="loop: A, B"):
        creation_order({"A": {"B"}, "B": {"A"}, "C": set()})


def test_creation_order_refuses_missing_dependencies() -> None:
    with pytest.raises(TemplateError, match="A depends on Ghost"):
        creation_order({"A": {"Ghost"}})
