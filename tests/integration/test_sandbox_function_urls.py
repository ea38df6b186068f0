"""The sandbox's Lambda function URLs (sandbox/function_urls.py), through plain HTTP and boto3."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from tests.support.sandbox_support import (
    client,
    create_function,
    sb,  # noqa: F401 - module fixture
    unique,
    wait_for,
)

ECHO = """
import json

def handler(event, context):
    if event.get("rawPath") == "/plain":
        return {"just": "json"}
    if event.get("rawPath") == "/boom":
        raise RuntimeError("boom")
    return {"statusCode": 201, "headers": {"x-echo": "yes"}, "body": json.dumps(event)}
"""


def _url_function(sb: Any, public: bool = True, auth: str = "NONE", invoke: bool = True) -> str:  # noqa: F811
    name = unique("url")
    lam = client(sb, "lambda")
    create_function(sb, name, ECHO)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    url = lam.create_function_url_config(FunctionName=name, AuthType=auth)["FunctionUrl"]
    if public:
        lam.add_permission(
            FunctionName=name,
            StatementId="public-url",
            Action="lambda:InvokeFunctionUrl",
            Principal="*",
            FunctionUrlAuthType="NONE",
        )
    if public and invoke:
        lam.add_permission(
            FunctionName=name,
            StatementId="public-invoke",
            Action="lambda:InvokeFunction",
            Principal="*",
            InvokedViaFunctionUrl=True,
        )
    return str(url)


def _request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def test_a_function_url_is_local_and_invokes_the_function_with_a_2_0_event(sb: Any) -> None:  # noqa: F811
    url = _url_function(sb)
    assert url.startswith(f"{sb.endpoint_url}/_lambda-url/") and url.endswith("/")
    status, answer, headers = wait_for(
        lambda: _request(
            url + "hook?a=1&a=2",
            b"payload=%7B%7D",
            {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Signature": "v0=abc"},
        ),
        what="the URL answers",
    )
    assert status == 201 and headers.get("x-echo") == "yes"
    assert answer["version"] == "2.0" and answer["routeKey"] == "$default"
    assert answer["rawPath"] == "/hook" and answer["rawQueryString"] == "a=1&a=2"
    assert answer["queryStringParameters"] == {"a": "1,2"}
    assert answer["requestContext"]["http"]["method"] == "POST"
    assert answer["headers"]["x-slack-signature"] == "v0=abc"
    # A form body is not text: Lambda hands it over base64-encoded.
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == b"payload=%7B%7D"


def test_plain_json_answers_200_and_a_function_error_502(sb: Any) -> None:  # noqa: F811
    url = _url_function(sb)
    status, answer, _ = _request(url + "plain")
    assert (status, answer) == (200, {"just": "json"})
    status, answer, _ = _request(url + "boom")
    assert (status, answer) == (502, {"Message": "Internal Server Error"})


def test_without_a_public_permission_or_with_iam_auth_the_url_is_forbidden(sb: Any) -> None:  # noqa: F811
    assert _request(_url_function(sb, public=False) + "x")[0] == 403
    # Since October 2025 a URL needs lambda:InvokeFunction as well as lambda:InvokeFunctionUrl.
    assert _request(_url_function(sb, invoke=False) + "x")[0] == 403
    assert _request(_url_function(sb, auth="AWS_IAM") + "x")[0] == 403
    assert _request(f"{sb.endpoint_url}/_lambda-url/nosuchurl/x")[0] == 403
