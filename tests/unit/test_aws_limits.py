"""The limit walker the test suite hooks into the package's clients (tests/support/aws_limits.py)."""

from __future__ import annotations

import botocore.session

from tests.support.aws_limits import violations


def _input(service: str, operation: str) -> object:
    return botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape


def test_a_description_over_its_models_max_is_found() -> None:
    shape = _input("lambda", "PublishVersion")

    assert list(violations({"FunctionName": "f", "Description": "d" * 256}, shape, "")) == []
    assert list(violations({"FunctionName": "f", "Description": "d" * 257}, shape, "")) == [
        "Description is 257 characters, at most 256"
    ]


def test_nested_members_lists_and_enums_are_walked() -> None:
    shape = _input("cloudwatch", "PutMetricAlarm")
    params = {
        "AlarmName": "a" * 256,
        "ComparisonOperator": "Sideways",
        "Dimensions": [{"Name": "n", "Value": "v" * 1025}],
        "EvaluationPeriods": 1,
    }

    found = list(violations(params, shape, ""))

    assert "AlarmName is 256 characters, at most 255" in found
    assert any(problem.startswith("ComparisonOperator is 'Sideways'") for problem in found)
    assert "Dimensions[0].Value is 1025 characters, at most 1024" in found
