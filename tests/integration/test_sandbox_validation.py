"""Constraints the service enforces and botocore does not check on the client: the sandbox answers them
as the service does (ValidationException 400 for the JSON services, MetadataTooLarge for S3)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.sandbox_support import (
    client,
    create_function,
    sb,  # noqa: F401 - module fixture
    unique,
)


def refused(call, **params) -> tuple[str, int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_a_name_longer_than_the_model_allows_is_a_validation_error(sb):  # noqa: F811
    code, status, message = refused(client(sb, "lambda").get_function, FunctionName="f" * 300)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(
        "1 validation error detected: Value '" + "f" * 300 + "' at 'functionName' failed"
    )
    assert "Member must have length less than or equal to 256" in message


def test_patterns_enums_and_ranges_are_checked(sb):  # noqa: F811
    function = unique("valid")
    create_function(sb, function, "def handler(e, c):\n    return 1\n")
    lam = client(sb, "lambda")
    code, _, message = refused(lam.get_alias, FunctionName=function, Name="bad name!")
    assert (
        code == "ValidationException"
        and "at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern"
        in message
    )
    code, _, message = refused(
        lam.put_function_event_invoke_config, FunctionName=function, MaximumRetryAttempts=5
    )
    assert code == "ValidationException"
    assert (
        "at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2"
        in message
    )
    ddb = client(sb, "dynamodb")
    code, status, message = refused(
        ddb.create_table,
        TableName=unique("t"),
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="FREE",
    )
    assert (code, status) == ("ValidationException", 400)
    assert (
        "at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
        in message
    )


def test_valid_requests_pass(sb):  # noqa: F811
    function = unique("fine")
    create_function(sb, function, "def handler(e, c):\n    return 1\n")
    client(sb, "lambda").put_function_event_invoke_config(FunctionName=function, MaximumRetryAttempts=2)


def test_s3_user_metadata_is_limited_to_2_kb(sb):  # noqa: F811
    s3 = client(sb, "s3")
    bucket = unique("meta")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="ok", Body=b"x", Metadata={"message": "m" * (2048 - len("message"))})
    code, status, message = refused(
        s3.put_object, Bucket=bucket, Key="big", Body=b"x", Metadata={"message": "m" * 2048}
    )
    assert (code, status) == ("MetadataTooLarge", 400)
    assert message == "Your metadata headers exceed the maximum allowed metadata size."
