"""Lambda function URLs, served by the sandbox: `http://127.0.0.1:<port>/_lambda-url/<url-id>/<path>`.

moto stores function URL configs (CreateFunctionUrlConfig, `AWS::Lambda::Url`) with an AWS-shaped
address nothing local answers; while a sandbox runs, a config's `FunctionUrl` is its local address
instead, and requests to it invoke the function with the payload format 2.0 event, as Lambda does:
https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html

- `AuthType: NONE` needs two resource-policy statements for `*`: `lambda:InvokeFunctionUrl` with
  `FunctionUrlAuthType: NONE`, and `lambda:InvokeFunction` (SAM's `FunctionUrlConfig` adds it with
  `InvokedViaFunctionUrl: true`); without both the answer is 403. "Starting in October 2025, new function
  URLs will require both lambda:InvokeFunctionUrl and lambda:InvokeFunction permissions" (Lambda Developer
  Guide, "Control access to Lambda function URLs").
- `AuthType: AWS_IAM` is not emulated (SigV4 for function URLs): such requests answer 403, so
  nothing is ever served unsigned that AWS would refuse.
- The body reaches the function base64-encoded unless its content type is text or JSON
  (`isBase64Encoded`); an answer with `statusCode` is a response object (status, headers, body,
  `isBase64Encoded`, cookies), any other JSON is a 200 `application/json` body; a function error
  answers 502 `{"Message": "Internal Server Error"}`.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sandbox.protocol import Response, json_response, read_body

if TYPE_CHECKING:
    from sandbox.core import Sandbox

PREFIX = "/_lambda-url/"
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def local_url(endpoint_url: str, url_id: str) -> str:
    return f"{endpoint_url}{PREFIX}{url_id}/"


def install_patch() -> None:
    """FunctionUrlConfig.url: the sandbox's local address of the URL while a sandbox runs."""
    from moto.awslambda.models import FunctionUrlConfig

    from sandbox import core

    original = FunctionUrlConfig.__init__
    if getattr(original, "_sandbox_patched", False):
        return

    def __init__(self: Any, function: Any, config: dict[str, Any]) -> None:
        original(self, function, config)
        sb = core.active()
        if sb is not None:
            self.url = local_url(sb.endpoint_url, uuid.uuid4().hex)

    __init__._sandbox_patched = True  # type: ignore[attr-defined]
    FunctionUrlConfig.__init__ = __init__  # type: ignore[method-assign]


class FunctionUrls:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def serve(self, environ: dict[str, Any]) -> Response:
        path = str(environ.get("PATH_INFO", ""))
        url_id, _, rest = path[len(PREFIX) :].partition("/")
        found = self._config(url_id)
        if found is None:
            return json_response({"Message": "Forbidden"}, 403)
        fn, config = found
        if config.config.get("AuthType") != "NONE" or not _public(fn):
            return json_response({"Message": "Forbidden"}, 403)
        event = function_url_event(environ, url_id, "/" + rest, read_body(environ) or b"", self.sandbox)
        qualifier = config.config.get("Qualifier")
        outcome = self.sandbox.lambda_service.invoke(fn.function_name, qualifier, json.dumps(event).encode())
        if outcome.function_error:
            return json_response({"Message": "Internal Server Error"}, 502)
        return function_url_response(outcome.payload)

    def _config(self, url_id: str) -> tuple[Any, Any] | None:
        if not url_id:
            return None
        storage = self.sandbox.lambda_service.backend()._lambdas
        for record in list(storage._functions.values()):
            fn = record.get("latest")
            config = getattr(fn, "url_config", None) if fn is not None else None
            if config is not None and config.url.rstrip("/").endswith(f"{PREFIX}{url_id}".rstrip("/")):
                return fn, config
        return None


def _public(fn: Any) -> bool:
    """The resource policy lets anyone invoke the URL without signing (AuthType NONE): both actions."""
    statements = [
        statement
        for statement in getattr(getattr(fn, "policy", None), "statements", []) or []
        if statement.get("Effect", "Allow") == "Allow" and _to_anyone(statement)
    ]
    url = any(
        _allows(statement, "lambda:InvokeFunctionUrl")
        and _condition(statement, "FunctionUrlAuthType", "StringEquals") == "NONE"
        for statement in statements
    )
    invoke = any(
        _allows(statement, "lambda:InvokeFunction")
        and str(_condition(statement, "InvokedViaFunctionUrl", "Bool") or "true").lower() == "true"
        for statement in statements
    )
    return url and invoke


def _to_anyone(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*")


def _allows(statement: dict[str, Any], action: str) -> bool:
    actions = statement.get("Action")
    return action in (actions if isinstance(actions, list) else [actions])


def _condition(statement: dict[str, Any], key: str, operator: str) -> Any:
    """An AddPermission field as moto keeps it (`key` on the statement), or AWS's condition form."""
    if key in statement:
        return statement[key]
    return ((statement.get("Condition") or {}).get(operator) or {}).get(f"lambda:{key}")


def function_url_event(
    environ: dict[str, Any], url_id: str, path: str, body: bytes, sandbox: Sandbox
) -> dict[str, Any]:
    """The payload format 2.0 event Lambda builds for a function URL request."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else str(value)
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = str(environ["CONTENT_LENGTH"])
    query = str(environ.get("QUERY_STRING", ""))
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    text = headers.get("content-type", "").startswith(TEXT_TYPES)
    now = sandbox.clock.now() if sandbox.clock else time.time()
    domain = f"{url_id}.lambda-url.{sandbox.region}.on.aws"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": domain,
            "domainPrefix": url_id,
            "http": {
                "method": str(environ.get("REQUEST_METHOD", "GET")),
                "path": path,
                "protocol": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
                "sourceIp": str(environ.get("REMOTE_ADDR", "127.0.0.1")),
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": bool(body) and not text,
    }
    if params:
        event["queryStringParameters"] = params
    if "cookie" in headers:
        event["cookies"] = [
            c.strip() for c in headers.pop("cookie").replace(",", ";").split(";") if c.strip()
        ]
    if body:
        event["body"] = body.decode("utf-8", "replace") if text else base64.b64encode(body).decode()
    return event


def function_url_response(payload: bytes) -> Response:
    """The HTTP answer for what the function returned (Lambda's response format for function URLs)."""
    try:
        answer = json.loads(payload or b"null")
    except ValueError:
        return Response(200, payload, {"Content-Type": "application/json"})
    if not isinstance(answer, dict) or "statusCode" not in answer:
        return Response(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})
    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    headers.setdefault("Content-Type", "application/json")
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode("utf-8")
    response = Response(int(answer["statusCode"]), raw, headers)
    return response
