"""The sandbox's Lambda runtime, through plain boto3 clients."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from tests.support.sandbox_support import (
    FORWARDER,
    client,
    create_function,
    drain,
    invoke_json,
    queue,
    role_arn,
    sb,  # noqa: F401 - module fixture
    unique,
    wait_for,
    wait_lambda_metrics_published,
    zip_of,
)

ECHO = """
import os

def handler(event, context):
    return {
        "label": "LABEL",
        "event": event,
        "pid": os.getpid(),
        "env": {k: os.environ.get(k) for k in ("GREETING", "AWS_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME",
                                                 "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION")},
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining": context.get_remaining_time_in_millis(),
        },
    }
"""


def publish_labelled(sb, name: str, label: str) -> str:  # noqa: F811
    lam = client(sb, "lambda")
    lam.update_function_code(FunctionName=name, ZipFile=zip_of({"app.py": ECHO.replace("LABEL", label)}))
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    return str(lam.publish_version(FunctionName=name)["Version"])


def test_each_published_version_runs_its_own_code_with_environment_and_context(sb):  # noqa: F811
    name = unique("echo")
    create_function(
        sb,
        name,
        ECHO.replace("LABEL", "one"),
        Environment={"Variables": {"GREETING": "hello"}},
        Timeout=7,
        MemorySize=256,
    )
    lam = client(sb, "lambda")
    v1 = lam.publish_version(FunctionName=name)["Version"]
    v2 = publish_labelled(sb, name, "two")

    r1, body1 = invoke_json(sb, name, {"n": 1}, Qualifier=v1)
    r2, body2 = invoke_json(sb, name, {"n": 2}, Qualifier=v2)
    latest, body_latest = invoke_json(sb, name, {"n": 3})

    assert (body1["label"], body2["label"], body_latest["label"]) == ("one", "two", "two")
    assert (r1["ExecutedVersion"], r2["ExecutedVersion"], latest["ExecutedVersion"]) == (v1, v2, "$LATEST")
    assert body1["event"] == {"n": 1}
    assert body1["env"] == {
        "GREETING": "hello",
        "AWS_ENDPOINT_URL": sb.endpoint_url,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": v1,
        "AWS_REGION": "us-east-1",
    }
    context = body1["context"]
    assert context["function_name"] == name
    assert context["function_version"] == v1
    assert context["invoked_function_arn"] == f"arn:aws:lambda:us-east-1:{sb.account_id}:function:{name}:{v1}"
    assert context["memory_limit_in_mb"] == "256"
    assert 0 < context["remaining"] <= 7000
    assert len(context["aws_request_id"]) == 36
    # GetFunction on the old version still reports the old code.
    assert (
        lam.get_function(FunctionName=name, Qualifier=v1)["Configuration"]["CodeSha256"]
        != lam.get_function(FunctionName=name, Qualifier=v2)["Configuration"]["CodeSha256"]
    )


def test_first_invocation_is_a_cold_start_then_the_worker_stays_warm(sb):  # noqa: F811
    name = unique("warm")
    create_function(sb, name, ECHO)
    version = client(sb, "lambda").publish_version(FunctionName=name)["Version"]

    cold, cold_body = invoke_json(sb, name, Qualifier=version, LogType="Tail")
    warm, warm_body = invoke_json(sb, name, Qualifier=version, LogType="Tail")

    cold_log = base64.b64decode(cold["LogResult"]).decode()
    warm_log = base64.b64decode(warm["LogResult"]).decode()
    assert "Init Duration" in cold_log and "Init Duration" not in warm_log
    assert f"START RequestId: {cold_body['context']['aws_request_id']}" in cold_log
    assert "REPORT RequestId" in warm_log
    assert warm_body["pid"] == cold_body["pid"]


def test_idle_workers_are_reaped(sb):  # noqa: F811
    name = unique("reap")
    create_function(sb, name, ECHO)
    old_idle = sb.worker_idle_seconds
    sb.worker_idle_seconds = 0.3
    try:
        _, body = invoke_json(sb, name)
        wait_for(lambda: body["pid"] not in sb.lambda_service.worker_pids(), 5, what="idle worker reaped")
        _, again = invoke_json(sb, name)
        assert again["pid"] != body["pid"]
    finally:
        sb.worker_idle_seconds = old_idle


def test_a_timeout_kills_the_worker_and_reports_an_unhandled_error(sb):  # noqa: F811
    name = unique("slow")
    create_function(
        sb,
        name,
        """
        import os, time
        def handler(event, context):
            if event.get("sleep"):
                time.sleep(30)
            return os.getpid()
        """,
        Timeout=1,
    )
    _, pid = invoke_json(sb, name)
    started = time.monotonic()
    response, error = invoke_json(sb, name, {"sleep": True})
    assert time.monotonic() - started < 5
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in error["errorMessage"]
    assert pid not in sb.lambda_service.worker_pids()
    _, new_pid = invoke_json(sb, name)
    assert new_pid != pid


def test_handler_exceptions_come_back_as_function_errors(sb):  # noqa: F811
    name = unique("boom")
    create_function(
        sb,
        name,
        """
        def handler(event, context):
            raise ValueError("bad input: " + event["what"])
        """,
    )
    response, error = invoke_json(sb, name, {"what": "x"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad input: x"
    assert any("raise ValueError" in frame for frame in error["stackTrace"])


def test_a_worker_killed_mid_invocation_is_a_runtime_exit_and_the_next_call_recovers(sb):  # noqa: F811
    name = unique("crash")
    create_function(
        sb,
        name,
        """
        import os, time
        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return os.getpid()
        """,
    )
    _, pid = invoke_json(sb, name)
    sb.faults.kill_worker(name, after_seconds=0.1)
    response, error = invoke_json(sb, name, {"sleep": 2})
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert "signal: kill" in error["errorMessage"]
    _, new_pid = invoke_json(sb, name)
    assert new_pid != pid


def test_layers_are_importable_like_opt_python(sb):  # noqa: F811
    lam = client(sb, "lambda")
    layer = lam.publish_layer_version(
        LayerName=unique("helpers"),
        Content={"ZipFile": zip_of({"python/shared_helper.py": "def shout(s):\n    return s.upper()\n"})},
        CompatibleRuntimes=["python3.13"],
    )
    name = unique("layered")
    create_function(
        sb,
        name,
        """
        import shared_helper
        def handler(event, context):
            return shared_helper.shout(event["text"])
        """,
        Layers=[layer["LayerVersionArn"]],
    )
    _, result = invoke_json(sb, name, {"text": "hi"})
    assert result == "HI"


def test_alias_routing_weights_split_invocations_within_statistical_bounds(sb):  # noqa: F811
    name = unique("weighted")
    create_function(sb, name, ECHO.replace("LABEL", "one"))
    lam = client(sb, "lambda")
    v1 = lam.publish_version(FunctionName=name)["Version"]
    v2 = publish_labelled(sb, name, "two")
    lam.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion=v1,
        RoutingConfig={"AdditionalVersionWeights": {v2: 0.3}},
    )

    runs = 300
    executed = [lam.invoke(FunctionName=name, Qualifier="live")["ExecutedVersion"] for _ in range(runs)]
    share = executed.count(v2) / runs
    # Binomial(300, 0.3): standard deviation 0.026; four of them is a false alarm once in ~15,000 runs.
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / runs) ** 0.5
    assert set(executed) == {v1, v2}


def test_invocations_emit_lambda_metrics_with_the_aws_dimension_sets(sb):  # noqa: F811
    name = unique("metered")
    create_function(
        sb,
        name,
        """
        def handler(event, context):
            if event.get("fail"):
                raise RuntimeError("nope")
            return "ok"
        """,
    )
    lam = client(sb, "lambda")
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
    lam.invoke(FunctionName=name, Qualifier="live", Payload=b'{"fail": true}')
    lam.invoke(FunctionName=name, Payload=b"{}")

    def total(metric: str, dimensions: dict[str, str]) -> float:
        now = sb.clock.now_datetime()
        result = client(sb, "cloudwatch").get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Lambda",
                            "MetricName": metric,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                }
            ],
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=1),
        )
        return sum(result["MetricDataResults"][0]["Values"])

    # Lambda sends its figures a minute at a time: the last invocation's is not readable at once.
    assert total("Invocations", {"FunctionName": name}) < 3
    wait_for(lambda: total("Invocations", {"FunctionName": name}) == 3, what="the invocations' figures")
    assert total("Errors", {"FunctionName": name}) == 1
    assert total("Invocations", {"FunctionName": name, "Resource": f"{name}:live"}) == 2
    assert (
        total("Invocations", {"FunctionName": name, "Resource": f"{name}:live", "ExecutedVersion": version})
        == 2
    )
    assert (
        total("Errors", {"FunctionName": name, "Resource": f"{name}:live", "ExecutedVersion": version}) == 1
    )
    assert total("Invocations", {"FunctionName": name, "Resource": name}) == 1
    listed = client(sb, "cloudwatch").list_metrics(
        Namespace="AWS/Lambda", MetricName="Duration", Dimensions=[{"Name": "FunctionName", "Value": name}]
    )
    assert listed["Metrics"]


def test_async_invocations_retry_then_reach_the_on_failure_destination(sb):  # noqa: F811
    name = unique("flaky")
    url, arn = queue(sb, unique("failures"))
    create_function(
        sb,
        name,
        """
        def handler(event, context):
            raise RuntimeError("always fails")
        """,
    )
    lam = client(sb, "lambda")
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": arn}}
    )
    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"order": 42}')
    assert response["StatusCode"] == 202

    [record] = drain(sb, url, 1, timeout=15)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestContext"]["functionArn"].endswith(f":function:{name}:$LATEST")
    assert record["requestPayload"] == {"order": 42}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "always fails"


def test_async_success_goes_to_a_lambda_on_success_destination(sb):  # noqa: F811
    out_url, _ = queue(sb, out_name := unique("out"))
    target = unique("dest")
    create_function(sb, target, FORWARDER, Environment={"Variables": {"OUT_QUEUE": out_name}})
    name = unique("source")
    create_function(sb, name, "def handler(event, context):\n    return {'doubled': event['n'] * 2}\n")
    lam = client(sb, "lambda")
    target_arn = lam.get_function(FunctionName=target)["Configuration"]["FunctionArn"]
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": target_arn}}
    )
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 21}')
    [message] = drain(sb, out_url, 1)
    assert message["event"]["requestContext"]["condition"] == "Success"
    assert message["event"]["responsePayload"] == {"doubled": 42}


def test_dry_run_and_missing_functions(sb):  # noqa: F811
    name = unique("dry")
    create_function(sb, name, ECHO)
    lam = client(sb, "lambda")
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(ClientError) as missing:
        lam.invoke(FunctionName=unique("nope"))
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as bad_alias:
        lam.invoke(FunctionName=name, Qualifier="nosuchalias")
    assert bad_alias.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_reserved_concurrency_zero_throttles(sb):  # noqa: F811
    name = unique("throttled")
    create_function(sb, name, ECHO)
    lam = client(sb, "lambda", retries=False)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as throttled:
        lam.invoke(FunctionName=name)
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_throttled_async_events_wait_their_turn_without_using_up_retries(sb):  # noqa: F811
    out_name = unique("served")
    out_url, _ = queue(sb, out_name)
    failures_url, failures_arn = queue(sb, unique("dropped"))
    name = unique("narrow")
    slow_forwarder = FORWARDER.replace(
        "def handler(event, context):\n", "def handler(event, context):\n    import time; time.sleep(0.3)\n"
    )
    create_function(sb, name, slow_forwarder, Environment={"Variables": {"OUT_QUEUE": out_name}})
    lam = client(sb, "lambda")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )

    for n in range(6):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": n}).encode())

    served = drain(sb, out_url, 6, timeout=60)
    assert sorted(m["event"]["n"] for m in served) == list(range(6)), "every throttled event ran in the end"
    sqs = client(sb, "sqs")
    assert sqs.receive_message(QueueUrl=failures_url, WaitTimeSeconds=0).get("Messages", []) == []


# Fidelity fixes over moto


def test_publish_version_checks_code_sha_and_revision(sb):  # noqa: F811
    name = unique("precond")
    create_function(sb, name, ECHO)
    lam = client(sb, "lambda")
    config = lam.get_function(FunctionName=name)["Configuration"]
    with pytest.raises(ClientError) as wrong_sha:
        lam.publish_version(FunctionName=name, CodeSha256="not-the-sha")
    assert wrong_sha.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as wrong_revision:
        lam.publish_version(FunctionName=name, RevisionId="stale")
    assert wrong_revision.value.response["Error"]["Code"] == "PreconditionFailedException"
    published = lam.publish_version(
        FunctionName=name, CodeSha256=config["CodeSha256"], RevisionId=config["RevisionId"]
    )
    assert published["Version"] == "1"


def test_update_code_reports_in_progress_then_the_waiter_sees_success(sb, monkeypatch):  # noqa: F811
    name = unique("updating")
    create_function(sb, name, ECHO)
    monkeypatch.setattr(sb, "lambda_update_seconds", 120.0)  # two real seconds at speed 60
    lam = client(sb, "lambda", retries=False)
    updated = lam.update_function_code(
        FunctionName=name, ZipFile=zip_of({"app.py": ECHO.replace("LABEL", "new")})
    )
    assert updated["LastUpdateStatus"] == "InProgress"
    with pytest.raises(ClientError) as busy:
        lam.publish_version(FunctionName=name)
    assert busy.value.response["Error"]["Code"] == "ResourceConflictException"
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10}
    )
    assert lam.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"] == "Successful"
    assert lam.publish_version(FunctionName=name)["CodeSha256"] == updated["CodeSha256"]


def versioned_bucket(sb, prefix):  # noqa: F811
    """An S3 client and a new bucket with versioning on (code uploads pinned to an object version)."""
    s3 = client(sb, "s3")
    bucket = unique(prefix)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3, bucket


def test_lambda_applies_an_update_in_sandbox_seconds(sb):  # noqa: F811
    name = unique("applying")
    create_function(sb, name, ECHO)
    lam = client(sb, "lambda", retries=False)
    lam.update_function_code(FunctionName=name, ZipFile=zip_of({"app.py": ECHO.replace("LABEL", "new")}))
    window = sb.clock.real_seconds(sb.lambda_update_seconds)
    time.sleep(window)  # the window itself is what is measured: after it, Lambda has applied the update
    assert lam.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"] == "Successful"
    lam.publish_version(FunctionName=name)


def test_the_deployer_publishes_only_once_lambda_reports_the_update_applied(sb, monkeypatch):  # noqa: F811
    """rollout.lambda_ops against the sandbox: UpdateFunctionCode, GetFunction until Successful (InProgress
    first: the update takes a real second here), then PublishVersion, which is never refused."""
    from rollout import aws, lambda_ops

    name = unique("deploying")
    create_function(sb, name, ECHO)
    s3, bucket = versioned_bucket(sb, "builds")
    put = s3.put_object(Bucket=bucket, Key="b.zip", Body=zip_of({"app.py": ECHO.replace("LABEL", "b")}))
    monkeypatch.setattr(sb, "lambda_update_seconds", 60.0)  # one real second at speed 60
    monkeypatch.setenv("AWS_ENDPOINT_URL", sb.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", sb.region)
    aws.reset_clients()
    statuses: list[str] = []
    real_client = aws.client

    class Watched:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

        def get_function(self, **kwargs):
            answer = self.inner.get_function(**kwargs)
            statuses.append(answer["Configuration"]["LastUpdateStatus"])
            return answer

    monkeypatch.setattr(aws, "client", lambda service: Watched(real_client(service)))
    mark = sb.calls.mark()
    try:
        update = lambda_ops.update_code(name, bucket, "b.zip", put["VersionId"])
        version = lambda_ops.publish_version(name, update, "release")
    finally:
        aws.reset_clients()
    calls = [c for c in sb.calls.since(mark) if c.service == "lambda"]
    assert [c.operation for c in calls] == [
        "UpdateFunctionCode",
        *["GetFunction"] * len(statuses),
        "PublishVersion",
    ]
    assert statuses[0] == "InProgress" and statuses[-1] == "Successful"
    assert not [c for c in calls if c.error], [(c.operation, c.error) for c in calls]
    assert calls[-1].at - calls[0].at >= sb.clock.real_seconds(60.0)
    published = client(sb, "lambda").get_function_configuration(FunctionName=name, Qualifier=version)
    assert published["CodeSha256"] == update.code_sha256


def test_update_code_from_s3_honours_object_version_and_rejects_missing_objects(sb):  # noqa: F811
    name = unique("froms3")
    create_function(sb, name, ECHO)
    s3, bucket = versioned_bucket(sb, "code")
    first = s3.put_object(
        Bucket=bucket, Key="build.zip", Body=zip_of({"app.py": ECHO.replace("LABEL", "first")})
    )
    s3.put_object(Bucket=bucket, Key="build.zip", Body=zip_of({"app.py": ECHO.replace("LABEL", "second")}))
    lam = client(sb, "lambda")

    with pytest.raises(ClientError) as missing_key:
        lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="nope.zip")
    assert missing_key.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "NoSuchKey" in missing_key.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing_bucket:
        lam.update_function_code(FunctionName=name, S3Bucket=unique("nobucket"), S3Key="build.zip")
    assert missing_bucket.value.response["Error"]["Code"] == "InvalidParameterValueException"

    lam.update_function_code(
        FunctionName=name, S3Bucket=bucket, S3Key="build.zip", S3ObjectVersion=first["VersionId"]
    )
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    _, body = invoke_json(sb, name)
    assert body["label"] == "first"


def test_update_alias_validates_weights_versions_and_revision(sb):  # noqa: F811
    name = unique("aliased")
    create_function(sb, name, ECHO)
    lam = client(sb, "lambda")
    v1 = lam.publish_version(FunctionName=name)["Version"]
    v2 = publish_labelled(sb, name, "two")
    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion=v1)

    def refused(**kwargs: object) -> str:
        with pytest.raises(ClientError) as error:
            lam.update_alias(FunctionName=name, Name="live", **kwargs)
        return str(error.value.response["Error"]["Code"])

    assert refused(RoutingConfig={"AdditionalVersionWeights": {v2: 1.5}}) == "ValidationException"
    assert refused(RoutingConfig={"AdditionalVersionWeights": {"99": 0.1}}) == "ResourceNotFoundException"
    assert refused(FunctionVersion="42") == "ResourceNotFoundException"
    assert (
        refused(RoutingConfig={"AdditionalVersionWeights": {v2: 0.1}}, RevisionId="stale")
        == "PreconditionFailedException"
    )
    updated = lam.update_alias(
        FunctionName=name,
        Name="live",
        RoutingConfig={"AdditionalVersionWeights": {v2: 0.1}},
        RevisionId=alias["RevisionId"],
    )
    assert updated["RoutingConfig"]["AdditionalVersionWeights"] == {v2: 0.1}
    assert updated["RevisionId"] != alias["RevisionId"]
    # Finish the shift: the weights go away.
    done = lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion=v2, RoutingConfig={"AdditionalVersionWeights": {}}
    )
    assert done["FunctionVersion"] == v2
    assert not (done.get("RoutingConfig") or {}).get("AdditionalVersionWeights")


def test_a_version_an_alias_references_cannot_be_deleted(sb):  # noqa: F811
    name = unique("retained")
    create_function(sb, name, ECHO)
    lam = client(sb, "lambda")
    v1 = lam.publish_version(FunctionName=name)["Version"]
    v2 = publish_labelled(sb, name, "two")
    v3 = publish_labelled(sb, name, "three")
    lam.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion=v1,
        RoutingConfig={"AdditionalVersionWeights": {v2: 0.1}},
    )

    for referenced in (v1, v2):
        with pytest.raises(ClientError) as error:
            lam.delete_function(FunctionName=name, Qualifier=referenced)
        assert error.value.response["Error"]["Code"] == "ResourceConflictException"
        assert "[live]" in error.value.response["Error"]["Message"]
    lam.delete_function(FunctionName=name, Qualifier=v3)

    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert versions == ["$LATEST", v1, v2]
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == v1


def test_bogus_runtimes_are_rejected(sb):  # noqa: F811
    with pytest.raises(ClientError) as error:
        client(sb, "lambda").create_function(
            FunctionName=unique("bogus"),
            Runtime="python0.1",
            Role="arn:aws:iam::123456789012:role/x",
            Handler="app.handler",
            Code={"ZipFile": zip_of({"app.py": ECHO})},
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_environment_variables_over_4_kb_are_refused_as_lambda_refuses_them(sb):  # noqa: F811
    # 4 KB for all of a function's variables, measured as one JSON object (Lambda quotas).
    name = unique("env")
    lam = client(sb, "lambda")
    fits = {"AA": "x" * (4096 - len('{"AA":""}'))}  # exactly 4,096 bytes measured
    create_function(sb, name, ECHO, Environment={"Variables": fits})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    too_big = {"AA": fits["AA"], "BB": "y"}
    with pytest.raises(ClientError) as error:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": too_big})
    assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "exceeded the 4KB limit" in error.value.response["Error"]["Message"]
    assert lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"] == fits
    with pytest.raises(ClientError) as error:
        create_function(sb, unique("env"), ECHO, Environment={"Variables": too_big})
    assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_function_logs_reach_cloudwatch_logs(sb):  # noqa: F811
    name = unique("logged")
    create_function(
        sb, name, "def handler(event, context):\n    print('hello from', context.function_name)\n"
    )
    invoke_json(sb, name)
    logs = client(sb, "logs")

    def found() -> bool:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}").get("events", [])
        return any(f"hello from {name}" in e["message"] for e in events)

    wait_for(found, 5, what="function log line")


def test_get_metric_statistics_matches_dimensions_exactly(sb):  # noqa: F811
    name = unique("stats")
    create_function(sb, name, "def handler(event, context):\n    return 1\n")
    lam = client(sb, "lambda")
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    for _ in range(3):
        lam.invoke(FunctionName=name, Qualifier="live")
    wait_lambda_metrics_published(sb, sb.clock.now())
    now = sb.clock.now_datetime()
    stats = client(sb, "cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": name}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Sum", "SampleCount"],
    )
    # One datapoint per invocation under FunctionName alone, not one per dimension set.
    assert sum(point["Sum"] for point in stats["Datapoints"]) == 3


ISOLATION = """
import os, sys
import boto3

def handler(event, context):
    return {
        "pid": os.getpid(),
        "env": {k: os.environ.get(k) for k in ("GREETING", "AWS_LAMBDA_FUNCTION_NAME", "AWS_ACCESS_KEY_ID")},
        "boto3": getattr(boto3, "VENDORED", "runtime"),
        "cwd": os.getcwd(),
        "path0": sys.path[0],
    }
"""


def test_forked_workers_each_get_their_version_environment_and_code(sb):  # noqa: F811
    # Workers are forked from a process that has imported boto3 (sandbox/lambda_forks.py): each must still
    # see only its own environment, and a package its zip carries wins over the preloaded one.
    assert sb.fork_workers
    plain, vendoring = unique("plain"), unique("vendor")
    lam = client(sb, "lambda")
    create_function(sb, plain, ISOLATION, Environment={"Variables": {"GREETING": "one"}})
    lam.create_function(
        FunctionName=vendoring,
        Runtime="python3.13",
        Role=role_arn(sb),
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": ISOLATION, "boto3/__init__.py": "VENDORED = 'from the zip'\n"})},
        Environment={"Variables": {"GREETING": "two"}},
    )
    for name in (plain, vendoring):
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    _, one = invoke_json(sb, plain)
    _, two = invoke_json(sb, vendoring)
    assert (one["env"]["GREETING"], one["env"]["AWS_LAMBDA_FUNCTION_NAME"], one["boto3"]) == (
        "one",
        plain,
        "runtime",
    )
    assert (two["env"]["GREETING"], two["env"]["AWS_LAMBDA_FUNCTION_NAME"]) == ("two", vendoring)
    assert two["boto3"] == "from the zip"
    assert one["env"]["AWS_ACCESS_KEY_ID"] != two["env"]["AWS_ACCESS_KEY_ID"]  # each its own role session
    assert one["cwd"] == one["path0"] != two["cwd"] == two["path0"]  # each in its own task root
    assert {one["pid"], two["pid"]} <= set(sb.lambda_service.worker_pids())


SDK_MODELS = """
import boto3
from botocore import loaders
from botocore.exceptions import ClientError

def handler(event, context):
    # Count the SDK data files this worker parses itself while making clients, then use one.
    parsed = []
    parse = loaders.JSONFileLoader._load_file

    def counting(self, full_path, open_method):
        found = parse(self, full_path, open_method)
        if found is not None:
            parsed.append(full_path)
        return found

    # And the walks over the SDK's data folders that list which services it holds.
    walks = []
    locations = loaders.Loader._potential_locations

    def walking(self, name=None, must_exist=False, is_dir=False):
        if name is None:
            walks.append(self.search_paths)
        return locations(self, name, must_exist, is_dir)

    loaders.JSONFileLoader._load_file = counting
    loaders.Loader._potential_locations = walking
    dynamodb = boto3.client("dynamodb")
    lam = boto3.client("lambda")
    boto3.resource("dynamodb")
    model = dynamodb.meta.service_model._service_description
    seen = model["metadata"].get("sandboxMark")
    model["metadata"]["sandboxMark"] = context.function_name  # changed in this worker's memory only
    try:
        dynamodb.list_tables()
        refused = None
    except ClientError as error:
        refused = error.response["Error"]["Code"]
    dry_run = lam.invoke(FunctionName=context.function_name, InvocationType="DryRun")["StatusCode"]
    return {"parsed": parsed, "walks": len(walks), "seen": seen, "dry_run": dry_run, "refused": refused}
"""


def test_forked_workers_share_the_sdk_models_the_zygote_parsed_and_keep_their_own_changes(sb):  # noqa: F811
    # A cold worker's clients take the service models and endpoint data the zygote parsed before forking
    # (sandbox/lambda_zygote.py), and the list of services it found, not parse or list them again; what one
    # worker does to a model stays in it.
    assert sb.fork_workers
    first, second = unique("sdk-a"), unique("sdk-b")
    for name in (first, second):
        create_function(sb, name, SDK_MODELS)
    _, one = invoke_json(sb, first)
    _, two = invoke_json(sb, second)
    for answer in (one, two):
        assert answer["parsed"] == []
        assert answer["walks"] == 0  # the services each search path holds were listed by the zygote too
        # The shared models make working clients: a call served, a refusal (this role may not list tables) read.
        assert (answer["dry_run"], answer["refused"]) == (204, "AccessDeniedException")
        assert answer["seen"] is None  # the other worker's change did not reach this one
