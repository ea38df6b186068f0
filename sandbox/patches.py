"""Where moto's behaviour is completed in-process: each patch defers to the running Sandbox and falls back
to moto's own behaviour when none runs (so plain moto users in the same process are unaffected)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox import core

if TYPE_CHECKING:
    from sandbox.core import Sandbox

_installed = False
_lock = threading.Lock()
ORIGINALS: dict[str, Any] = {}


def _sandbox() -> Sandbox | None:
    return core.active()


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _patch_clock()
        _patch_dynamodb_requests()
        _patch_events()
        _patch_s3()
        _patch_sns()
        _patch_cloudwatch_alarms()
        _patch_cloudwatch_reads()
        _patch_lambda()
        _patch_bucket_policy()
        _patch_iam()
        from sandbox import dynamodb_limits

        dynamodb_limits.install()  # beneath the consistency patch: only writes that happened are remembered
        _patch_dynamodb()
        _patch_dynamodb_transactions()
        from sandbox import dynamodb_expressions, dynamodb_items, dynamodb_queries, dynamodb_wire

        dynamodb_expressions.install()
        dynamodb_queries.install()
        dynamodb_items.install()  # after dynamodb_limits: keeps the size it measures
        from sandbox.function_urls import install_patch

        dynamodb_wire.install()

        install_patch()
        from sandbox import moto_speed  # moto's per-request costs, cut with the same answers

        moto_speed.install()
        _installed = True


def _patch_clock() -> None:
    """moto stamps CloudWatch, EventBridge, Lambda and S3 records with utcnow(): make that the sandbox
    clock. S3's LastModified then reads on the same clock as the time of its Object Created event,
    so an upload's age compares with other uploads' event times as it does on AWS."""
    import moto.cloudwatch.models as cloudwatch_models
    import moto.events.models as events_models
    import moto.s3.models as s3_models

    original_utcnow = cloudwatch_models.utcnow

    def utcnow() -> datetime:
        sb = _sandbox()
        if sb is None:
            return original_utcnow()
        return sb.clock.now_datetime().replace(tzinfo=None)  # moto keeps naive UTC datetimes

    cloudwatch_models.utcnow = utcnow
    s3_models.utcnow = utcnow
    # CloudWatch Logs accepts events from 14 days back to 2 hours ahead of *its* clock ("PutLogEvents":
    # "None of the log events in the batch can be more than 2 hours in the future"), and stamps
    # ingestion times with it: on the sandbox clock, Lambda's log lines stay accepted at any speed.
    import moto.logs.models as logs_models

    logs_models.utcnow = utcnow
    original_unix_time = events_models.unix_time

    def unix_time(dt: datetime | None = None) -> float:
        sb = _sandbox()
        if sb is None or dt is not None:
            return original_unix_time(dt)
        return float(sb.clock.now())

    events_models.unix_time = unix_time


# One lock for every DynamoDB request the sandbox serves (see _patch_dynamodb_requests).
_dynamodb_requests = threading.RLock()


def _patch_dynamodb_requests() -> None:
    """DynamoDB applies each write, condition and all, atomically; moto checks a condition and then
    writes in plain Python, so two requests racing on one item could both pass the same condition.
    The ledger's locks, its conditional transitions and Powertools' idempotency records rely on that
    guarantee, so the sandbox applies its writes one at a time. Reads take the same lock: moto walks
    and sizes the very dicts a write changes in place, and a read racing a write failed with
    "dictionary changed size during iteration" (an HTTP 500 no DynamoDB read ever answers). The lock
    is held for the whole request, response rendering included, because moto renders items it shares
    with the table."""
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action
    ORIGINALS["DynamoHandler.call_action"] = call_action

    def one_request_at_a_time(self: Any) -> Any:
        with _dynamodb_requests:
            return call_action(self)

    DynamoHandler.call_action = one_request_at_a_time  # type: ignore[method-assign]


def _patch_events() -> None:
    from moto.events.models import Rule

    original = Rule.send_to_targets
    ORIGINALS["Rule.send_to_targets"] = original

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        sb = _sandbox()
        if sb is None:
            original(self, original_event, transform_input)
            return
        event = dict(original_event)
        if event.get("id") == "17793124-05d4-b198-2fde-7ededc63b103":  # moto's fixed placeholder id
            event["id"] = str(uuid.uuid4())
        sb.events.dispatch_rule(self, event)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def _patch_s3() -> None:
    import moto.s3.notifications as notifications

    original = notifications._send_event_bridge_message

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        sb = _sandbox()
        if sb is None:
            original(account_id, bucket, event_name, key)
            return
        try:
            sb.events.s3_object_event(bucket, event_name, key)
        except Exception:
            import logging

            logging.getLogger("sandbox.events").exception("S3 event for %s failed", getattr(key, "name", "?"))

    notifications._send_event_bridge_message = send_event_bridge_message


# "By default, a message can be at most 256 KiB in size (262,144 bytes, not 262,144 characters). When you
# publish to a topic, the maximum size is determined by the topic's MaximumMessageSize attribute ... Amazon SNS
# validates the combined size of the message body and message attributes against this value and returns an
# InvalidParameter error if the limit is exceeded"; "All parts of the message attribute, including name, type,
# and value, are included in the message size restriction" (SNS API reference, Publish and
# MessageAttributeValue). moto counts the body's characters and leaves the attributes out.
SNS_DEFAULT_MAXIMUM_MESSAGE_SIZE = 256 * 1024
# "Valid values are 1024 to 1048576" (CreateTopic's attributes)
SNS_LARGEST_MAXIMUM_MESSAGE_SIZE = 1024 * 1024


def sns_message_size(message: str, attributes: dict[str, Any] | None) -> int:
    """Bytes SNS counts against a topic's limit; `attributes` as moto keeps them ({name: {Type, Value}},
    a Binary value base64-encoded, which SNS counts by its raw bytes)."""
    import base64

    total = len(message.encode())
    for name, attribute in (attributes or {}).items():
        data_type = str(attribute.get("Type", ""))
        value = str(attribute.get("Value", ""))
        raw = len(base64.b64decode(value)) if data_type.startswith("Binary") else len(value.encode())
        total += len(name.encode()) + len(data_type.encode()) + raw
    return total


def _patch_sns() -> None:
    import moto.sns.models as sns_models
    from moto.sns.exceptions import SNSInvalidParameter
    from moto.sns.models import SNSBackend, Subscription

    original_backend_publish = SNSBackend.publish
    moto_limit = sns_models.MAXIMUM_MESSAGE_LENGTH

    def backend_publish(self: Any, message: str, arn: str | None, *args: Any, **kwargs: Any) -> str:
        sb = _sandbox()
        # moto's own check (characters, at 256 KiB for every topic) gives way to the topic's limit
        sns_models.MAXIMUM_MESSAGE_LENGTH = SNS_LARGEST_MAXIMUM_MESSAGE_SIZE if sb is not None else moto_limit
        topic = self.topics.get(arn) if sb is not None and arn else None
        if topic is not None:
            # moto keeps the attribute as CreateTopic's snake_case, or SetTopicAttributes' name as given
            configured = getattr(topic, "maximum_message_size", None) or getattr(
                topic, "MaximumMessageSize", None
            )
            limit = int(configured or SNS_DEFAULT_MAXIMUM_MESSAGE_SIZE)
            attributes = kwargs.get("message_attributes", args[2] if len(args) > 2 else None)
            if sns_message_size(message, attributes) > limit:
                raise SNSInvalidParameter("Invalid parameter: Message too long")
        return original_backend_publish(self, message, arn, *args, **kwargs)

    SNSBackend.publish = backend_publish  # type: ignore[method-assign]

    original = Subscription.publish

    def publish(
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        sb = _sandbox()
        if (
            sb is not None
            and self.protocol == "sqs"
            and not sb.events.service_may_send("sns.amazonaws.com", self.endpoint, self.topic.arn)
        ):
            return  # SNS gives up on a queue whose policy refuses it; nothing is delivered
        if sb is None or self.protocol not in ("lambda", "http", "https"):
            original(
                self,
                message,
                message_id,
                subject,
                message_attributes,
                group_id,
                deduplication_id,
                message_structure,
            )
            return
        if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(
            message_attributes, message
        ):
            return
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        sb.events.sns_delivery(self, message, message_id, subject, message_attributes)

    Subscription.publish = publish  # type: ignore[method-assign]


def _patch_cloudwatch_alarms() -> None:
    """Alarms start and keep their state as on AWS; a state set with SetAlarmState holds for one period."""
    from moto.cloudwatch.models import CloudWatchBackend

    original_put_alarm = CloudWatchBackend.put_metric_alarm
    original_set_state = CloudWatchBackend.set_alarm_state

    def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        sb = _sandbox()
        previous = self.alarms.get(name)
        alarm = original_put_alarm(self, name, *args, **kwargs)
        if sb is None:
            return alarm
        if previous is not None:
            # Updating an alarm keeps its state (AWS re-evaluates it on the next period).
            alarm.state_value = previous.state_value
            alarm.state_reason = previous.state_reason
            alarm.state_reason_data = previous.state_reason_data
            alarm.state_updated_timestamp = previous.state_updated_timestamp
            alarm.history = previous.history
        else:
            alarm.state_value = "INSUFFICIENT_DATA"
            alarm.state_reason = "Unchecked: Initial alarm creation"
        return alarm

    def set_alarm_state(self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
        original_set_state(self, alarm_name, reason, reason_data, state_value)
        sb = _sandbox()
        if sb is not None:
            sb.alarms.alarm_set_manually(alarm_name, int(self.alarms[alarm_name].period or 60))

    from moto.cloudwatch.models import Alarm

    original_update_state = Alarm.update_state

    def update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        old_state, old_reason = self.state_value, self.state_reason
        original_update_state(self, reason, reason_data, state_value)
        if _sandbox() is not None:
            from sandbox.alarms import record_state_change

            record_state_change(self, old_state, old_reason, self.state_updated_timestamp)

    Alarm.update_state = update_state  # type: ignore[method-assign]
    CloudWatchBackend.put_metric_alarm = put_metric_alarm  # type: ignore[method-assign]
    CloudWatchBackend.set_alarm_state = set_alarm_state  # type: ignore[method-assign]


def _patch_cloudwatch_reads() -> None:
    """GetMetricData and GetMetricStatistics answered from the sandbox's metric index (metrics.py)."""
    from moto.cloudwatch.models import CloudWatchBackend

    original_get_data = CloudWatchBackend.get_metric_data
    original_statistics = CloudWatchBackend.get_metric_statistics

    def get_metric_data(
        self: Any,
        queries: list[dict[str, Any]],
        start_time: Any,
        end_time: Any,
        scan_by: str = "TimestampAscending",
    ) -> Any:
        sb = _sandbox()
        if sb is None:
            return original_get_data(self, queries, start_time, end_time, scan_by)
        _check_time_range(start_time, end_time)
        from sandbox import metrics

        return metrics.get_metric_data(sb, queries, start_time, end_time, scan_by)

    def get_metric_statistics(
        self: Any,
        namespace: str,
        metric_name: str,
        start_time: Any,
        end_time: Any,
        period: int,
        stats: list[str],
        dimensions: list[dict[str, str]],
        unit: str | None = None,
    ) -> Any:
        sb = _sandbox()
        if sb is None:
            return original_statistics(
                self, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit
            )
        _check_time_range(start_time, end_time)
        from sandbox import metrics

        return metrics.statistics(
            sb, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit
        )

    CloudWatchBackend.get_metric_data = get_metric_data  # type: ignore[method-assign]
    CloudWatchBackend.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]


def _check_time_range(start_time: Any, end_time: Any) -> None:
    """CloudWatch refuses a window that does not move forward with a 400, never a server error
    (GetMetricStatistics / GetMetricData: InvalidParameterValue, "The parameter StartTime must be less
    than the parameter EndTime.")."""
    from moto.cloudwatch.exceptions import InvalidParameterValue

    from sandbox import metrics

    if metrics.epoch(start_time) >= metrics.epoch(end_time):
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")


def _patch_lambda() -> None:
    """RevisionId and LastUpdateStatus on every function configuration moto renders."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.get_configuration

    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config: dict[str, Any] = original(self, on_create)
        sb = _sandbox()
        if sb is None:
            return config
        from sandbox.lambda_api import function_state

        state = function_state(self)
        config["RevisionId"] = state.revision_id
        if "LastUpdateStatus" in config or state.updating(sb.clock):
            config["LastUpdateStatus"] = "InProgress" if state.updating(sb.clock) else "Successful"
            if state.updating(sb.clock):
                config["LastUpdateStatusReason"] = "The function is being updated."
                config["LastUpdateStatusReasonCode"] = "InProgress"
        return config

    LambdaFunction.get_configuration = get_configuration  # type: ignore[method-assign]


def _patch_bucket_policy() -> None:
    """Bucket-policy statements apply only when their Condition holds for the sandbox's request context."""
    from moto.s3.models import FakeBucket

    original = FakeBucket.get_permission

    def get_permission(self: Any, action: str, resource: str) -> Any:
        sb = _sandbox()
        if sb is None or self.policy is None:
            return original(self, action, resource)
        import json

        from moto.iam.access_control import IAMPolicy

        from sandbox.policy_conditions import applicable_statements, request_context

        try:
            policy = json.loads(self.policy.decode())
        except ValueError:
            return original(self, action, resource)
        effective = applicable_statements(policy, request_context(sb.account_id))
        return IAMPolicy(json.dumps(effective)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def _patch_iam() -> None:
    """AWS managed policies exist at their real ARNs with AWS's documents: any that a role attaches (or
    that is read) is created from the copy moto ships, the first time it is named."""
    from moto.iam.models import IAMBackend

    from sandbox.iam import state

    original_attach = IAMBackend.attach_role_policy
    original_get = IAMBackend.get_policy

    def attach_role_policy(self: Any, policy_arn: str, role_name: str) -> None:
        if _sandbox() is not None:
            state.ensure_aws_managed_policy(self, policy_arn)
        original_attach(self, policy_arn, role_name)

    def get_policy(self: Any, policy_arn: str) -> Any:
        if _sandbox() is not None:
            state.ensure_aws_managed_policy(self, policy_arn)
        return original_get(self, policy_arn)

    IAMBackend.attach_role_policy = attach_role_policy  # type: ignore[method-assign]
    IAMBackend.get_policy = get_policy  # type: ignore[method-assign]


def _patch_dynamodb() -> None:
    """Global secondary indexes lag their table, and so do the table's reads without ConsistentRead
    (sandbox/dynamodb_consistency.py). A Query reads only the items it can match (dynamodb_queries.py)."""
    import contextvars

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    from sandbox import dynamodb_consistency as consistency
    from sandbox import dynamodb_queries

    def lags() -> tuple[float, float]:
        sb = _sandbox()
        return (sb.gsi_lag, sb.eventual_read_lag) if sb is not None else consistency.in_process_lags()

    def remembering(name: str) -> None:
        original = getattr(DynamoDBBackend, name)

        # moto calls put_item(table_name, item, ...), update_item/delete_item(table_name, key, ...);
        # BatchWriteItem and TransactWriteItems write through these too.
        def write(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            gsi_lag, read_lag = lags()
            if gsi_lag <= 0 and read_lag <= 0:
                return original(self, table_name, key, *args, **kwargs)
            table = self.get_table(table_name)
            keep = consistency.kept_seconds(table, gsi_lag, read_lag)
            before = consistency.before_write(table, key, keep)
            result = original(self, table_name, key, *args, **kwargs)
            consistency.record(table, before, keep)  # only writes that happened are remembered
            return result

        setattr(DynamoDBBackend, name, write)

    for name in ("put_item", "update_item", "delete_item"):
        remembering(name)

    # The tables (as the request names them) that the GetItem or BatchGetItem being served reads
    # without ConsistentRead. moto's backend.get_item also serves TransactGetItems and the reads a write
    # makes for its condition and ReturnValues, which are strongly consistent: only these two requests
    # set it.
    eventually_read: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
        "eventually_read", default=frozenset()
    )

    def reading(name: str, tables: Callable[[dict[str, Any]], list[str]]) -> None:
        original = getattr(DynamoHandler, name)

        def serve(self: Any) -> Any:
            token = eventually_read.set(frozenset(tables(self.body)))
            try:
                return original(self)
            finally:
                eventually_read.reset(token)

        setattr(DynamoHandler, name, serve)

    reading("get_item", lambda body: [] if body.get("ConsistentRead") else [str(body.get("TableName"))])
    reading(
        "batch_get_item",
        lambda body: [
            name
            for name, request in (body.get("RequestItems") or {}).items()
            if not request.get("ConsistentRead")
        ],
    )

    original_get_item = DynamoDBBackend.get_item

    def get_item(self: Any, table_name: str, keys: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        item = original_get_item(self, table_name, keys, *args, **kwargs)  # validates the key, projects
        read_lag = lags()[1]
        if read_lag <= 0 or table_name not in eventually_read.get():
            return item
        table = self.get_table(table_name)
        hash_value, range_value = self.get_keys_value(table, keys)
        written, old = consistency.lagged_item(table, hash_value, range_value, read_lag)
        if not written:
            return item
        projection = args[0] if args else kwargs.get("projection_expressions")
        return old.project(projection) if old is not None and projection else old

    DynamoDBBackend.get_item = get_item  # type: ignore[method-assign]

    original_query = Table.query
    original_scan = Table.scan

    def read_lag_of(table: Any, index_name: str | None, consistent_read: bool) -> float:
        """How far behind this Query or Scan reads: a GSI by the GSI lag, the table (or a local
        secondary index) without ConsistentRead by the eventual read lag, else not at all."""
        gsi_lag, read_lag = lags()
        if consistency.is_global_index(table, index_name):
            return gsi_lag
        return 0.0 if consistent_read else read_lag

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        # moto's backend passes index_name and consistent_read as the eighth and ninth positional
        # arguments of Table.query
        index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
        consistent_read = kwargs.get("consistent_read", args[8] if len(args) > 8 else False)
        seconds = read_lag_of(self, index_name, consistent_read)
        table = consistency.lagged_view(self, seconds) if seconds > 0 else self
        return original_query(dynamodb_queries.candidates(table, args, kwargs), *args, **kwargs)

    def scan(self: Any, *args: Any, **kwargs: Any) -> Any:
        # ... and as the fifth and sixth of Table.scan
        index_name = kwargs.get("index_name", args[4] if len(args) > 4 else None)
        consistent_read = kwargs.get("consistent_read", args[5] if len(args) > 5 else False)
        seconds = read_lag_of(self, index_name, consistent_read)
        if seconds > 0:
            return original_scan(consistency.lagged_view(self, seconds), *args, **kwargs)
        return original_scan(self, *args, **kwargs)

    Table.query = query  # type: ignore[method-assign]
    Table.scan = scan  # type: ignore[method-assign]


def _patch_dynamodb_transactions() -> None:
    """TransactWriteItems puts back only the items it names when it fails, not whole tables.

    moto backs up every table a transaction writes to (a deep copy of all its items) so that a failed
    transaction can put the table back. On the ledger that copy took tens of milliseconds, under the lock
    every DynamoDB request takes (_patch_dynamodb_requests), so every other call waited meanwhile. A
    transaction names at most 100 items: the sandbox keeps those as they were before moto runs (a snapshot,
    sandbox/dynamodb_items.py; its table backup made a no-op) and puts them back on every failure, which is every path on which moto puts its backup
    back. The outcome is the same; a table with a stream takes moto's own path (a rolled-back write's
    stream record would stay)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    from sandbox import dynamodb_consistency as consistency
    from sandbox import dynamodb_items

    original = DynamoDBBackend.transact_write_items
    ORIGINALS["DynamoDBBackend.transact_write_items"] = original

    def named_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]] | None:
        """(table, hash value, range value, item snapshot or None) per item; None when moto's own path must
        run (no sandbox, a stream, or a request moto will refuse as malformed)."""
        if _sandbox() is None:
            return None
        saved = []
        try:
            for entry in transact_items:
                for op_type, op in entry.items():
                    table = backend.tables[op["TableName"]]
                    if table.stream_shard is not None:
                        return None
                    key = op["Item"] if op_type == "Put" else op["Key"]
                    hash_value, range_value = consistency._key_values(table, key)
                    current = consistency._current(table, hash_value, range_value)
                    saved.append((table, hash_value, range_value, dynamodb_items.snapshot(current)))
        except (KeyError, TypeError, AttributeError):
            return None
        return saved

    def put_back(saved: list[tuple[Any, ...]]) -> None:
        for table, hash_value, range_value, item in reversed(saved):
            consistency.put_back(table, hash_value, range_value, item)

    def itself(table: Any, memo: dict[int, Any]) -> Any:
        return table

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        saved = named_items(self, transact_items)
        if saved is None:
            return original(self, transact_items)
        with _dynamodb_requests:  # held already by the request; the class attribute is ours meanwhile
            Table.__deepcopy__ = itself  # type: ignore[attr-defined]
            try:
                return original(self, transact_items)
            except Exception:
                put_back(saved)
                raise
            finally:
                del Table.__deepcopy__  # type: ignore[attr-defined]

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
