"""Wire protocol: which AWS service and operation a request is, and AWS-shaped responses and errors.

Behaviour lives elsewhere; this module only knows how AWS's protocols look on the wire (JSON 1.0/1.1,
rest-json, rest-xml, query, smithy-rpc-v2-cbor) as the botocore service models describe them.
"""

from __future__ import annotations

import io
import json
import re
import struct
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs

import botocore.session
from botocore.model import ServiceModel

# Signing names (from the SigV4 credential scope) -> botocore service names.
SIGNING_TO_SERVICE = {"monitoring": "cloudwatch", "events": "events", "email": "ses"}

_CRED_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@cache
def service_model(service: str) -> ServiceModel | None:
    try:
        return botocore.session.get_session().get_service_model(service)
    except Exception:  # noqa: BLE001 - an unknown service is simply not modelled
        return None


@dataclass
class AwsRequest:
    """One incoming request, with the body read once and kept for moto to read again."""

    environ: dict[str, Any]
    service: str | None
    region: str
    operation: str | None
    protocol: str | None
    _body: bytes | None = field(default=None, repr=False)
    # Who signed it: a role session (sandbox.iam.Principal), or None for the operator; set by the server.
    principal: Any = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET"))

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", "/"))

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(str(self.environ.get("QUERY_STRING", "")), keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() == "content-type":
            key = "CONTENT_TYPE"
        value = self.environ.get(key)
        return None if value is None else str(value)

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = read_body(self.environ)
        return self._body

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        data = json.loads(self.body)
        if not isinstance(data, dict):
            raise ValueError("request body is not a JSON object")
        return data


def read_body(environ: dict[str, Any]) -> bytes:
    """Read the body and put it back so the next reader (moto) sees it untouched."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    body: bytes = stream.read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def identify(environ: dict[str, Any]) -> AwsRequest:
    """Find the service (from the SigV4 scope or X-Amz-Target) and the operation name."""
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    service: str | None = None
    region = "us-east-1"
    match = _CRED_SCOPE.search(auth)
    if match:
        region, signing = match.group(1), match.group(2)
        service = SIGNING_TO_SERVICE.get(signing, signing)
    if target.startswith("CodeDeploy_20141006."):
        service = "codedeploy"
    request = AwsRequest(environ=environ, service=service, region=region, operation=None, protocol=None)
    if service is None:
        return request
    model = service_model(service)
    if model is None:
        return request
    path = str(environ.get("PATH_INFO", "/"))
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if target:
        request.operation = target.rsplit(".", 1)[-1]
        request.protocol = "json"
    elif "cbor" in content_type or path.startswith("/service/"):
        request.protocol = "smithy-rpc-v2-cbor"
        request.operation = path.rsplit("/operation/", 1)[-1] if "/operation/" in path else None
    elif model.protocol in ("query", "ec2") or "x-www-form-urlencoded" in content_type:
        request.protocol = "query"
        action = parse_qs(str(environ.get("QUERY_STRING", ""))).get("Action")
        if not action and environ.get("REQUEST_METHOD") == "POST":
            action = parse_qs(request.body.decode("utf-8", "replace")).get("Action")
        request.operation = action[0] if action else None
    else:
        request.protocol = model.protocol
        request.operation = match_rest_operation(
            service,
            str(environ.get("REQUEST_METHOD", "GET")),
            path,
            str(environ.get("QUERY_STRING", "")),
            environ,
        )
    return request


Route = tuple[str, re.Pattern[str], frozenset[str], int, str, frozenset[str]]


@cache
def _rest_routes(service: str) -> list[Route]:
    model = service_model(service)
    routes: list[Route] = []
    if model is None:
        return routes
    for name in model.operation_names:
        operation = model.operation_model(name)
        http = operation.http
        required_headers: set[str] = set()
        required_query_members: set[str] = set()
        shape = operation.input_shape
        if shape is not None:
            for member_name in shape.required_members:
                member = shape.members[member_name]
                location = member.serialization.get("location")
                if location == "header":
                    required_headers.add("HTTP_" + member.serialization["name"].upper().replace("-", "_"))
                elif location == "querystring":
                    required_query_members.add(member.serialization["name"])
        uri = http.get("requestUri", "/")
        path_part, _, query_part = uri.partition("?")
        required_query = frozenset(
            {q.split("=")[0] for q in query_part.split("&") if q and not q.startswith("x-id=")}
            | required_query_members
        )
        pattern = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", path_part):
            if piece.startswith("{"):
                pattern += "(.+)" if piece.endswith("+}") else "([^/]+)"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        regex = re.compile("^" + pattern.rstrip("/") + "/?$")
        routes.append(
            (http.get("method", "POST"), regex, required_query, literal, name, frozenset(required_headers))
        )
    return routes


def match_rest_operation(
    service: str, method: str, path: str, query_string: str, environ: dict[str, Any] | None = None
) -> str | None:
    """The operation whose method, URI template, literal query keys and required headers fit best."""
    query = parse_qs(query_string, keep_blank_values=True)
    if query.get("x-id"):
        return query["x-id"][0]  # botocore names some S3 operations outright
    query_keys = set(query)
    best: tuple[int, int, str] | None = None
    for route_method, regex, required, literal, name, headers in _rest_routes(service):
        if route_method != method or not required <= query_keys or not regex.match(path):
            continue
        if environ is not None and any(h not in environ for h in headers):
            continue
        score = (len(required) + len(headers), literal, name)
        if best is None or score[:2] > best[:2]:
            best = score
    return best[2] if best else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> bytes:
    return json.dumps(data, default=_json_default).encode()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())}
    all_headers.update(headers or {})
    return Response(status, dumps(data), all_headers)


def error_status(service: str | None, code: str) -> int:
    if service:
        model = service_model(service)
        if model is not None:
            for shape in model.error_shapes:
                if shape.name == code or shape.error_code == code:
                    status = shape.metadata.get("error", {}).get("httpStatusCode")
                    if status:
                        return int(status)
    if code in ("InternalFailure", "InternalError", "ServiceException", "ServiceUnavailable"):
        return 500
    if code in ("TooManyRequestsException",):
        return 429
    return 400


def error_response(
    protocol: str | None, service: str | None, code: str, message: str, status: int | None = None
) -> Response:
    """An error in the shape botocore parses for the request's protocol."""
    status = status or error_status(service, code)
    request_id = str(uuid.uuid4())
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return Response(
            status,
            body,
            {
                "Content-Type": "application/x-amz-json-1.1",
                "x-amzn-ErrorType": code,
                "x-amzn-RequestId": request_id,
            },
        )
    if protocol == "rest-json":
        body = json.dumps({"Type": "User", "message": message}).encode()
        return Response(
            status,
            body,
            {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
        )
    if protocol == "smithy-rpc-v2-cbor":
        body = cbor_encode({"__type": code, "message": message})
        return Response(
            status,
            body,
            {
                "Content-Type": "application/cbor",
                "smithy-protocol": "rpc-v2-cbor",
                "x-amzn-RequestId": request_id,
            },
        )
    if protocol == "rest-xml":
        xml = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{_xml(code)}</Code>"
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        return Response(
            status, xml.encode(), {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        )
    kind = "Receiver" if status >= 500 else "Sender"
    xml = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{_xml(code)}</Code><Message>{_xml(message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Response(status, xml.encode(), {"Content-Type": "text/xml", "x-amzn-RequestId": request_id})


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cbor_encode(value: Any) -> bytes:
    """Enough CBOR for error bodies: maps, strings, ints, floats, bools, None, lists."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, bytes):
        return _cbor_head(2, len(value)) + value
    if isinstance(value, list):
        return _cbor_head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return _cbor_head(5, len(value)) + b"".join(cbor_encode(k) + cbor_encode(v) for k, v in value.items())
    raise TypeError(f"cannot CBOR-encode {type(value).__name__}")


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    if length < 2**8:
        return bytes([major << 5 | 24, length])
    if length < 2**16:
        return bytes([major << 5 | 25]) + struct.pack(">H", length)
    if length < 2**32:
        return bytes([major << 5 | 26]) + struct.pack(">I", length)
    return bytes([major << 5 | 27]) + struct.pack(">Q", length)


# How each service refuses a call IAM does not allow: (error code, HTTP status). Lambda, S3, SNS, SQS,
# IAM and STS answer 403; the JSON services built on AWS's common errors answer AccessDeniedException
# with 400 ("Common Errors" in each API reference; DynamoDB: "Error handling with DynamoDB"). CloudWatch
# and SQS are query-compatible JSON services: their JSON errors carry the query code in
# x-amzn-query-error, which botocore reports as the error code.
ACCESS_DENIED: dict[str, tuple[str, int]] = {
    "lambda": ("AccessDeniedException", 403),
    "s3": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
    "sqs": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "cloudwatch": ("AccessDenied", 403),
}
# A session token the service does not recognise ("The security token included in the request is invalid").
INVALID_TOKEN: dict[str, tuple[str, int, str]] = {
    "s3": ("InvalidToken", 400, "The provided token is malformed or otherwise invalid."),
    "lambda": ("UnrecognizedClientException", 403, "The security token included in the request is invalid."),
    "sns": ("InvalidClientTokenId", 403, "The security token included in the request is invalid."),
    "iam": ("InvalidClientTokenId", 403, "The security token included in the request is invalid."),
    "sts": ("InvalidClientTokenId", 403, "The security token included in the request is invalid."),
}


def _query_compatible(service: str | None) -> bool:
    model = service_model(service or "")
    return model is not None and "awsQueryCompatible" in model.metadata


def access_denied(request: AwsRequest, message: str) -> Response:
    """The service's own refusal, in the request's protocol (a HEAD answer has no body, as S3's)."""
    code, status = ACCESS_DENIED.get(request.service or "", ("AccessDeniedException", 400))
    response = error_response(request.protocol, request.service, code, message, status)
    return _finish_error(request, response, code)


def invalid_token(request: AwsRequest) -> Response:
    code, status, message = INVALID_TOKEN.get(
        request.service or "",
        ("UnrecognizedClientException", 400, "The security token included in the request is invalid."),
    )
    return _finish_error(
        request, error_response(request.protocol, request.service, code, message, status), code
    )


def _finish_error(request: AwsRequest, response: Response, code: str) -> Response:
    if request.protocol == "json" and _query_compatible(request.service):
        response.headers["x-amzn-query-error"] = f"{code};Sender"
    if request.method == "HEAD":
        response.body = b""
    return response
