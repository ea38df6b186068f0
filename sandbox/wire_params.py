"""A request's operation input, read back from the wire as botocore's service model lays it out.

Wire protocol only: which member sits in the URI, the query string, a header or the body
(`serialization.location` in the botocore model). JSON bodies (json, rest-json) are read whole; query
requests (SNS, IAM, STS) give their flat members and `Name.member.N` lists; rest-xml bodies (S3) are not
read: what the sandbox decides on from S3 requests (bucket, key, version) lives in the URI and query.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote

from botocore.model import OperationModel, Shape

from sandbox.protocol import AwsRequest, service_model


@cache
def _uri_pattern(service: str, operation: str) -> tuple[re.Pattern[str], dict[str, str]] | None:
    """A regex with one group per URI label, and label -> member name."""
    model = service_model(service)
    if model is None or operation not in model.operation_names:
        return None
    op = model.operation_model(operation)
    shape = op.input_shape
    labels: dict[str, str] = {}
    if shape is not None:
        for name, member in shape.members.items():
            if member.serialization.get("location") == "uri":
                labels[member.serialization.get("name", name)] = name
    path = str(op.http.get("requestUri", "/")).partition("?")[0]
    pattern = ""
    groups: dict[str, str] = {}
    for index, piece in enumerate(re.split(r"(\{[^}]+\})", path)):
        if piece.startswith("{"):
            label = piece.strip("{}").rstrip("+")
            group = f"g{index}"
            groups[group] = labels.get(label, label)
            pattern += f"(?P<{group}>.+)" if piece.endswith("+}") else f"(?P<{group}>[^/]+)"
        else:
            pattern += re.escape(piece)
    return re.compile("^" + pattern.rstrip("/") + "/?$"), groups


def operation_model(request: AwsRequest) -> OperationModel | None:
    model = service_model(request.service or "")
    if model is None or not request.operation or request.operation not in model.operation_names:
        return None
    return model.operation_model(request.operation)


def parameters(request: AwsRequest) -> dict[str, Any]:
    """The operation's input members found in the request (best effort; unknown parts are left out)."""
    op = operation_model(request)
    if op is None or op.input_shape is None:
        return {}
    if request.protocol in ("json", "smithy-rpc-v2-cbor"):
        try:
            return request.json() if request.protocol == "json" else {}
        except ValueError:
            return {}
    if request.protocol == "query":
        return _query_parameters(request, op.input_shape)
    return _rest_parameters(request, op)


def _rest_parameters(request: AwsRequest, op: OperationModel) -> dict[str, Any]:
    shape = op.input_shape
    assert shape is not None
    params: dict[str, Any] = {}
    found = _uri_pattern(request.service or "", op.name)
    if found is not None:
        regex, groups = found
        match = regex.match(request.path)
        if match:
            for group, member in groups.items():
                params[member] = unquote(match.group(group))
    query = request.query
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "querystring" and wire_name in query:
            values = query[wire_name]
            params[name] = values if member.type_name == "list" else values[0]
        elif location == "header":
            value = request.header(wire_name)
            if value is not None:
                params[name] = value
    if request.protocol == "rest-json" and request.body:
        payload = shape.serialization.get("payload")
        try:
            body = request.json()
        except ValueError:
            body = {}
        if payload is None:
            for name, member in shape.members.items():
                if member.serialization.get("location") is None and name in body:
                    params[name] = body[name]
    return params


def _query_parameters(request: AwsRequest, shape: Shape) -> dict[str, Any]:
    form = dict(request.query)
    if request.method == "POST" and request.body:
        form.update(parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        wire_name = member.serialization.get("name", name)
        if member.type_name == "list":
            prefix = f"{wire_name}.member." if not member.serialization.get("flattened") else f"{wire_name}."
            items = sorted(
                (
                    (int(key[len(prefix) :]), values[0])
                    for key, values in form.items()
                    if key.startswith(prefix) and key[len(prefix) :].isdigit()
                ),
            )
            if items:
                params[name] = [value for _, value in items]
        elif member.type_name not in ("structure", "map") and wire_name in form:
            params[name] = form[wire_name][0]
    return params
