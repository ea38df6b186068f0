"""Event delivery: EventBridge rules to their targets, scheduled rules, S3 events, SNS to Lambda and HTTP,
Lambda destinations. Every delivery runs on its own task, so one failing target never blocks the others."""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from sandbox.schedule import Schedule

if TYPE_CHECKING:
    from sandbox.core import Sandbox

log = logging.getLogger("sandbox.events")

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
S3_REASONS = {
    "Put": "PutObject",
    "Post": "PostObject",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
}


@dataclass(frozen=True)
class DeliveryTiming:
    """How late, and how often twice, AWS services' events reach EventBridge rules.

    S3: "Typically, event notifications are delivered in seconds but can sometimes take a minute or
    longer", and they "are designed to be delivered at least once" (S3 user guide, "Amazon S3 Event
    Notifications"). EventBridge delivers each event to a target "at least once" and does not promise
    order (EventBridge user guide, "Event delivery"); CodeDeploy's state-change events arrive through it.
    Delays are sandbox seconds (uniform in the range); a duplicate is a second copy with its own delay,
    so it may even arrive first.
    """

    s3_delay: tuple[float, float] = (1.0, 3.0)
    codedeploy_delay: tuple[float, float] = (0.5, 2.0)
    duplicate_rate: float = 0.0

    def delay_for(self, source: str) -> tuple[float, float] | None:
        return {"aws.s3": self.s3_delay, "aws.codedeploy": self.codedeploy_delay}.get(source)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    from moto.events.models import EventPattern

    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))  # type: ignore[arg-type]


@dataclass(frozen=True)
class SnsNotification:
    """One SNS message for one subscription, in the shapes SNS delivers it to Lambda and to HTTP."""

    subscription_arn: str
    topic_arn: str
    message_id: str
    message: str
    subject: str | None
    timestamp: str
    attributes: dict[str, dict[str, Any]]
    endpoint_url: str  # the sandbox's: the signing certificate and unsubscribe links point there

    @property
    def unsubscribe_url(self) -> str:
        return f"{self.endpoint_url}/?Action=Unsubscribe&SubscriptionArn={self.subscription_arn}"

    @property
    def signing_cert_url(self) -> str:
        return f"{self.endpoint_url}/SimpleNotificationService-sandbox.pem"

    def lambda_record(self) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": self.subscription_arn,
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": self.message_id,
                        "TopicArn": self.topic_arn,
                        "Subject": self.subject,
                        "Message": self.message,
                        "Timestamp": self.timestamp,
                        "SignatureVersion": "1",
                        "Signature": "sandbox-unsigned",
                        "SigningCertUrl": self.signing_cert_url,
                        "UnsubscribeUrl": self.unsubscribe_url,
                        "MessageAttributes": self.attributes,
                    },
                }
            ]
        }

    def http_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": self.message_id,
            "TopicArn": self.topic_arn,
            "Message": self.message,
            "Timestamp": self.timestamp,
            "SignatureVersion": "1",
            "Signature": "sandbox-unsigned",
            "SigningCertURL": self.signing_cert_url,
            "UnsubscribeURL": self.unsubscribe_url,
        }
        if self.subject is not None:
            body["Subject"] = self.subject
        if self.attributes:
            body["MessageAttributes"] = self.attributes
        return body

    def http_headers(self) -> dict[str, str]:
        return {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": self.message_id,
            "x-amz-sns-topic-arn": self.topic_arn,
            "x-amz-sns-subscription-arn": self.subscription_arn,
            "User-Agent": "Amazon Simple Notification Service Agent",
        }


class EventDelivery:
    def __init__(
        self, sandbox: Sandbox, timing: DeliveryTiming | None = None, seed: int | None = None
    ) -> None:
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.timing = timing or DeliveryTiming()
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self.duplicated = 0  # events delivered twice by `timing` (not counting injected faults)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sandbox-delivery")
        self._stop = threading.Event()
        self._scheduler = threading.Thread(target=self._schedule_loop, name="sandbox-schedules", daemon=True)
        self._schedules: dict[str, tuple[str, Schedule, float]] = {}
        self.delivered: list[dict[str, Any]] = []  # (target arn, event id) log for diagnostics
        self._sequence = 0
        self._sequence_lock = threading.Lock()

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        self._stop.set()
        with self._random_lock:
            for timer in self._timers:
                timer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._scheduler.is_alive():
            self._scheduler.join(timeout=5)

    def _submit(self, fn: Callable[..., object], *args: Any) -> None:
        if self._stop.is_set():
            return
        try:
            self._pool.submit(self._guard, fn, *args)
        except RuntimeError:
            log.debug("delivery pool closed; event not delivered")

    @staticmethod
    def _guard(fn: Callable[..., object], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("event delivery failed")

    # EventBridge

    def normalise(self, event: dict[str, Any]) -> dict[str, Any]:
        event = dict(event)
        when = event.get("time")
        if when in (None, "") or isinstance(when, int | float):
            event["time"] = iso(float(when) if isinstance(when, int | float) and when else self.clock.now())
        elif isinstance(when, datetime):
            event["time"] = iso(when.replace(tzinfo=when.tzinfo or UTC).timestamp())
        event.pop("ingestion-time", None)
        return event

    def dispatch_rule(self, rule: Any, event: dict[str, Any]) -> None:
        """A rule saw an event on its bus (called for every rule of the bus)."""
        if rule.state != "ENABLED" or (rule.scheduled_expression and not rule.event_pattern.get_pattern()):
            return
        event = self.normalise(event)
        action = self.sandbox.faults.event_action(event, pattern_matches)
        if action == "drop":
            log.info("fault injection dropped event %s", event.get("id"))
            return
        if not rule.event_pattern.matches_event(event):
            return
        if action == "dead-letter":
            for target in list(rule.targets):
                self._dead_letter(rule, target, event)
            return
        copies = 2 if action == "duplicate" else 1
        delays = self._delays(str(event.get("source", "")), copies)
        for delay in delays:
            for target in list(rule.targets):
                self._submit_after(delay, self._deliver_target, rule, target, event)

    def _delays(self, source: str, copies: int) -> list[float]:
        """One delay (sandbox seconds) per copy of the event to deliver, as `timing` has it."""
        span = self.timing.delay_for(source)
        if span is None:
            return [0.0] * copies
        with self._random_lock:
            if self._random.random() < self.timing.duplicate_rate:
                copies += 1
                self.duplicated += 1
            return [self._random.uniform(*span) for _ in range(copies)]

    def _submit_after(self, delay: float, fn: Callable[..., object], *args: Any) -> None:
        if delay <= 0:
            self._submit(fn, *args)
            return
        timer = threading.Timer(self.clock.real_seconds(delay), self._submit, (fn, *args))
        timer.daemon = True
        with self._random_lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
        timer.start()

    def put_on_bus(self, event: dict[str, Any], bus_name: str = "default") -> None:
        from moto.events.models import events_backends

        backend = events_backends[self.sandbox.account_id][self.sandbox.region]
        bus = backend.event_buses.get(bus_name)
        if bus is None:
            return
        for rule in list(bus.rules.values()):
            self.dispatch_rule(rule, event)

    def _deliver_target(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        payload = target_input(target, event)
        self.delivered.append({"target": target["Arn"], "rule": rule.name, "event_id": event.get("id")})
        arn = target["Arn"]
        service = arn.split(":")[2]
        if service == "logs":
            rule._send_to_cw_log_group(arn.split(":log-group:", 1)[1].removesuffix(":*"), json.loads(payload))
            return
        if service == "sqs":
            if not self.service_may_send("events.amazonaws.com", arn, rule.arn):
                self._dead_letter(rule, target, event, "NO_PERMISSIONS")
                return
            group = (target.get("SqsParameters") or {}).get("MessageGroupId")
            self._send_sqs(arn, payload, group)
            return
        if service == "lambda" and not self.service_may_invoke("events.amazonaws.com", arn, rule.arn):
            return
        self.deliver_to_arn(arn, payload, source=f"rule:{rule.name}")

    def _dead_letter(
        self, rule: Any, target: dict[str, Any], event: dict[str, Any], error_code: str = "SDK_CLIENT_ERROR"
    ) -> None:
        """An event EventBridge gave up delivering: into the target's dead-letter queue, if it has one,
        with the attributes EventBridge adds (EventBridge User Guide, "Using dead-letter queues"). The
        dead-letter queue's own policy must let EventBridge send to it, or the event is lost ("Granting
        permissions to the dead-letter queue")."""
        queue_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not queue_arn:
            log.info(
                "event %s undeliverable to %s and dropped: no dead-letter queue",
                event.get("id"),
                target["Arn"],
            )
            return
        if not self.service_may_send("events.amazonaws.com", queue_arn, rule.arn):
            log.warning(
                "event %s dropped: its dead-letter queue %s refuses EventBridge", event.get("id"), queue_arn
            )
            return
        retries = (target.get("RetryPolicy") or {}).get("MaximumRetryAttempts", 185)
        attributes = {
            "RULE_ARN": rule.arn,
            "TARGET_ARN": target["Arn"],
            "ERROR_CODE": error_code,
            "ERROR_MESSAGE": (
                "the target's resource policy does not allow EventBridge to send to it"
                if error_code == "NO_PERMISSIONS"
                else "Injected fault: the target could not be invoked"
            ),
            "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
            "RETRY_ATTEMPTS": str(retries),
        }
        self._send_sqs(queue_arn, json.dumps(event), None, attributes)

    def service_may_invoke(self, service: str, function_arn: str, source_arn: str) -> bool:
        """An AWS service invokes a function only where the function's resource-based policy allows it
        ("Using resource-based policies for Lambda": EventBridge and SNS need a permission naming their
        service principal, usually with aws:SourceArn)."""
        from sandbox.iam import Check

        iam = self.sandbox.iam
        decision = iam.decide(
            iam.service_principal(service),
            Check("lambda:InvokeFunction", function_arn),
            {"aws:sourcearn": source_arn, "aws:sourceaccount": self.sandbox.account_id},
        )
        if not decision.allowed:
            log.warning(
                "%s may not invoke %s for %s: no permission in its policy", service, function_arn, source_arn
            )
        return decision.allowed

    def service_may_send(self, service: str, queue_arn: str, source_arn: str) -> bool:
        """An AWS service sends to a queue only where the queue's policy allows it: SNS subscriptions
        ("Subscribing an Amazon SQS queue to an Amazon SNS topic") and EventBridge targets and
        dead-letter queues ("Amazon SQS permissions" in the EventBridge User Guide) alike."""
        from sandbox.iam import Check

        iam = self.sandbox.iam
        decision = iam.decide(
            iam.service_principal(service),
            Check("sqs:SendMessage", queue_arn),
            {"aws:sourcearn": source_arn, "aws:sourceaccount": self.sandbox.account_id},
        )
        if not decision.allowed:
            log.warning(
                "%s may not send to %s for %s: the queue's policy does not allow it",
                service,
                queue_arn,
                source_arn,
            )
        return decision.allowed

    # Generic delivery to an ARN (rule targets, Lambda destinations, alarm actions)

    def deliver_to_arn(self, arn: str, message: Any, source: str, subject: str | None = None) -> None:
        body = message if isinstance(message, str) else json.dumps(message)
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        if service == "lambda":
            self.sandbox.lambda_service.invoke_async(arn, None, body.encode())
        elif service == "sqs":
            self._send_sqs(arn, body, None)
        elif service == "sns":
            from moto.sns.models import sns_backends

            sns_backends[self.sandbox.account_id][self.sandbox.region].publish(
                arn=arn, message=body, subject=subject
            )
        elif service == "events" and ":event-bus/" in arn:
            event = json.loads(body)
            self.put_on_bus(event, arn.split(":event-bus/", 1)[1])
        else:
            log.warning("%s: no delivery to unsupported target %s", source, arn)

    def _send_sqs(
        self, arn: str, body: str, group_id: str | None, attributes: dict[str, str] | None = None
    ) -> None:
        from moto.sqs.models import sqs_backends

        region, account, queue = arn.split(":")[3], arn.split(":")[4], arn.split(":")[5]
        message_attributes = {
            name: {"DataType": "String", "StringValue": value} for name, value in (attributes or {}).items()
        }
        sqs_backends[account][region].send_message(
            queue, body, message_attributes=message_attributes or None, group_id=group_id
        )

    # S3 -> EventBridge

    def s3_object_event(self, bucket: Any, event_name: str, key: Any) -> None:
        """An S3 event on a bucket with EventBridge notifications, in the shape AWS sends."""
        parts = event_name.split(":")
        kind = parts[1] if len(parts) > 1 else event_name
        action = parts[2] if len(parts) > 2 else ""
        detail_type = {
            "ObjectCreated": "Object Created",
            "ObjectRemoved": "Object Deleted",
            "ObjectRestore": "Object Restore Completed",
            "ObjectTagging": "Object Tags Added",
        }.get(kind)
        if detail_type is None:
            return
        with self._sequence_lock:
            self._sequence += 1
            sequencer = f"{int(self.clock.now() * 1000):012X}{self._sequence:04X}"
        detail: dict[str, Any] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": {
                "key": key.name,
                "size": key.size,
                "etag": key.etag.strip('"'),
                "sequencer": sequencer,
            },
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": self.sandbox.account_id,
            "source-ip-address": "127.0.0.1",
            "reason": S3_REASONS.get(action, action or kind),
        }
        version_id = getattr(key, "version_id", None)
        if version_id and version_id != "null":
            detail["object"]["version-id"] = version_id
        if kind == "ObjectRemoved":
            detail["object"].pop("size", None)
            detail["object"].pop("etag", None)
            detail["deletion-type"] = "Permanently Deleted"
            detail["reason"] = "DeleteObject"
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": self.sandbox.account_id,
            "time": iso(self.clock.now()),
            "region": self.sandbox.region,
            "resources": [f"arn:aws:s3:::{bucket.name}"],
            "detail": detail,
        }
        self.put_on_bus(event)

    # SNS -> Lambda / HTTP

    def sns_delivery(
        self,
        subscription: Any,
        message: str,
        message_id: str,
        subject: str | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        notification = SnsNotification(
            subscription_arn=subscription.arn,
            topic_arn=subscription.topic.arn,
            message_id=message_id,
            message=message,
            subject=subject,
            timestamp=self.clock.now_datetime().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            attributes={
                k: {"Type": v.get("Type", "String"), "Value": v.get("Value")}
                for k, v in (attributes or {}).items()
            },
            endpoint_url=self.sandbox.endpoint_url,
        )
        if subscription.protocol == "lambda":
            if not self.service_may_invoke(
                "sns.amazonaws.com", subscription.endpoint, subscription.topic.arn
            ):
                return
            payload = json.dumps(notification.lambda_record()).encode()
            self._submit(self.sandbox.lambda_service.invoke_async, subscription.endpoint, None, payload)
            return
        body = json.dumps(notification.http_body()).encode()
        self._submit(self._post_http, subscription.endpoint, body, notification.http_headers())

    def _post_http(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        host = urlparse(url).hostname or ""
        if host not in LOCAL_HOSTS:
            log.warning("SNS HTTP delivery to %s refused: the sandbox only delivers to 127.0.0.1", url)
            return
        # SNS's default HTTP delivery policy retries; three tries, 20 sandbox seconds apart, is enough here.
        for attempt in range(3):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - local only
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    if response.status < 500:
                        return
            except OSError as exc:
                log.info("SNS HTTP delivery to %s failed (attempt %d): %s", url, attempt + 1, exc)
            if self.clock.sleep(20, self._stop):
                return

    # Scheduled rules

    def _schedule_loop(self) -> None:
        while not self._stop.wait(min(1.0, max(0.02, 1.0 / self.clock.speed))):
            try:
                self._fire_due_schedules()
            except Exception:
                log.exception("schedule evaluation failed")

    def _fire_due_schedules(self) -> None:
        from moto.events.models import events_backends

        now = self.clock.now()
        backend = events_backends[self.sandbox.account_id][self.sandbox.region]
        seen = set()
        for bus in list(backend.event_buses.values()):
            for rule in list(bus.rules.values()):
                expression = rule.scheduled_expression
                if not expression or rule.state != "ENABLED":
                    continue
                seen.add(rule.arn)
                known = self._schedules.get(rule.arn)
                if known is None or known[0] != expression:
                    schedule = Schedule.parse(expression)
                    self._schedules[rule.arn] = (expression, schedule, schedule.next_after(now))
                    continue
                _, schedule, due = known
                if due > now:
                    continue
                self._schedules[rule.arn] = (expression, schedule, schedule.next_after(now))
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": self.sandbox.account_id,
                    "time": iso(due),
                    "region": self.sandbox.region,
                    "resources": [rule.arn],
                    "detail": {},
                }
                action = self.sandbox.faults.event_action(event, pattern_matches)
                if action == "drop":
                    continue
                for _ in range(2 if action == "duplicate" else 1):
                    for target in list(rule.targets):
                        self._submit(self._deliver_target, rule, target, event)
        for arn in set(self._schedules) - seen:
            self._schedules.pop(arn, None)


def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    """What a target receives: the event, or its Input / InputPath / InputTransformer rendering."""
    if target.get("Input"):
        return str(target["Input"])
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        found = [m.value for m in parse(target["InputPath"]).find(event)]
        return json.dumps(found[0] if found else None)
    if target.get("InputTransformer"):
        from moto.events.utils import EventTemplateParser

        transformer = target["InputTransformer"]
        rendered = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,  # type: ignore[arg-type]
        )
        return rendered if isinstance(rendered, str) else json.dumps(rendered)
    return json.dumps(event)
