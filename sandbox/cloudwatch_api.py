"""CloudWatch's wire API where the sandbox answers for moto: DescribeAlarmHistory (moto has none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox import alarms, metrics, wire_params
from sandbox.protocol import AwsRequest, Response, json_response
from sandbox.server import AwsError, SandboxApp

if TYPE_CHECKING:
    from sandbox.core import Sandbox

MAX_RECORDS = 100  # DescribeAlarmHistory's MaxRecords range is 1-100 (botocore model)


def describe_alarm_history(sandbox: Sandbox, request: AwsRequest) -> Response | None:
    if request.protocol != "json":
        return None  # botocore speaks JSON to CloudWatch; other protocols go to moto
    params: dict[str, Any] = wire_params.parameters(request)
    limit = int(params.get("MaxRecords") or MAX_RECORDS)
    if not 1 <= limit <= MAX_RECORDS:
        raise AwsError(
            "InvalidParameterValue", f"The parameter MaxRecords must be between 1 and {MAX_RECORDS}.", 400
        )
    start = metrics.epoch(params["StartDate"]) if params.get("StartDate") is not None else None
    end = metrics.epoch(params["EndDate"]) if params.get("EndDate") is not None else None
    items = alarms.alarm_history(
        sandbox,
        params.get("AlarmName"),
        params.get("HistoryItemType"),
        start,
        end,
        newest_first=params.get("ScanBy", "TimestampDescending") == "TimestampDescending",
    )
    types = params.get("AlarmTypes")
    if types:
        items = [i for i in items if i["AlarmType"] in types]
    offset = int(params.get("NextToken") or 0)
    page = items[offset : offset + limit]
    body: dict[str, Any] = {"AlarmHistoryItems": page}
    if offset + limit < len(items):
        body["NextToken"] = str(offset + limit)
    return json_response(body, headers={"Content-Type": "application/x-amz-json-1.0"})


def register_cloudwatch_routes(app: SandboxApp, sandbox: Sandbox) -> None:
    app.route("cloudwatch", "DescribeAlarmHistory", lambda request: describe_alarm_history(sandbox, request))
