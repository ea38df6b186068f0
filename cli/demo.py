"""The Rollout story in the local sandbox, told live and checked: `rollout demo`.

Provision the stack (with Slack pointed at a local receiver), create and onboard `hello`, then release
v1 (bootstraps the alias), v2 (a canary that succeeds), v3 (fails its pre-traffic check), v4 (errors
under live traffic, so the canary alarm rolls it back) and a burst of uploads (queued, then superseded
by the newest). Traffic flows to the alias throughout; SNS (through an SQS subscriber) and Slack
messages are shown as they arrive. The summary compares every outcome with the expected one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import yaml
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cli import render
from cli.backend import CLI_CONFIG, Backend
from cli.errors import CliError, ExitCode
from cli.follow import Progress, Waiter, deployment_snapshot, find_release, follow_release
from cli.model import DeploymentSnapshot, release_why, versions_text
from cli.operations import Upload, register_function, upload_artifact
from cli.render import Output
from cli.sandbox_run import running_sandbox
from examples.hello.build import CHECKS, artifact_bytes
from examples.hello.traffic import TrafficGenerator
from rollout.ledger import Release
from sandbox.queue_policy import let_aws_services_send

FUNCTION = "hello"
STACK = "rollout-demo"
ALIAS = "live"
CONFIG = "Canary10Percent5Minutes"
SLACK_PARAMETER = "SlackWebhookSecretArn"
SLACK_ORIGIN_PARAMETER = "SlackWebhookOrigin"  # the local receiver is the one origin the notifier may post to
# The per-release alarms count a version's invocations per (sandbox) minute and judge only minutes with at
# least `min_invocations`. At 10% canary traffic that takes 10 x min_invocations calls a sandbox minute, so the
# demo asks for a small sample and sends traffic in proportion to the sandbox's speed.
DEMO_CHECKS = {**CHECKS, "canary": {**CHECKS["canary"], "min_invocations": 3}}
CALLS_PER_SANDBOX_MINUTE = 45.0
MAX_RATE_PER_GENERATOR = 15.0
FEED_LINES = 8


@dataclass(frozen=True)
class Step:
    label: str
    variant: str
    story: str
    expected: tuple[str, ...]
    reason_code: str = ""


STORY: tuple[Step, ...] = (
    Step("v1", "healthy", "first release: bootstraps the alias", ("BOOTSTRAPPED",)),
    Step("v2", "healthy", "healthy canary goes live", ("SUCCEEDED",)),
    Step("v3", "failing-check", "fails its pre-traffic check", ("ROLLED_BACK",), "HOOK_EXECUTION_FAILURE"),
    Step("v4", "erroring", "errors under traffic: alarm", ("ROLLED_BACK",), "ALARM_ACTIVE"),
)
BURST: tuple[str, ...] = ("b1", "b2", "b3", "b4")


@dataclass
class Outcome:
    """One line of the summary: what the story expects and what happened."""

    label: str
    story: str
    expected: str
    actual: str
    ok: bool
    why: str = ""
    versions: str = ""
    deployment_id: str = ""


@dataclass
class DemoSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    endpoint_url: str = ""
    seconds: float = 0.0

    @property
    def all_expected(self) -> bool:
        return bool(self.outcomes) and all(o.ok for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "all_expected": self.all_expected,
            "seconds": round(self.seconds, 1),
            "outcomes": [asdict(o) for o in self.outcomes],
        }


def release_outcome(
    step_label: str, story: str, release: Release | None, expected: tuple[str, ...], reason_code: str = ""
) -> Outcome:
    """Compare a release's end with the story's expectation (state, and the reason code when one is named)."""
    want = " or ".join(expected) + (f" ({reason_code})" if reason_code else "")
    if release is None:
        return Outcome(step_label, story, want, "no release", False, "the upload never reached the ledger")
    state = str(release.state)
    # A reason code explains a failure (HOOK_EXECUTION_FAILURE, ALARM_ACTIVE, ...); on success it is noise.
    shown_code = release.reason_code if state in ("ROLLED_BACK", "FAILED", "REJECTED") else ""
    actual = state + (f" ({shown_code})" if shown_code else "")
    ok = str(release.state) in expected and (not reason_code or release.reason_code == reason_code)
    return Outcome(
        step_label,
        story,
        want,
        actual,
        ok,
        release_why(release),
        versions_text(release),
        release.deployment_id,
    )


# --- what arrives: Slack posts and SNS messages --------------------------------------------------------
class Feed:
    """Messages as they arrive, from any thread; the view shows the newest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []
        self.sns_kinds: list[str] = []
        self.slack_posts = 0
        self._printed = 0

    def add(self, source: str, text: str, kind: str = "") -> None:
        with self._lock:
            self.entries.append((source, text))
            if source == "SNS" and kind:
                self.sns_kinds.append(kind)
            if source == "Slack":
                self.slack_posts += 1

    def newest(self, count: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.entries[-count:])

    def unprinted(self) -> list[tuple[str, str]]:
        with self._lock:
            new = self.entries[self._printed :]
            self._printed = len(self.entries)
            return new

    def renderable(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True)
        for source, text in self.newest(FEED_LINES):
            table.add_row(Text(f"[{source}]", style="magenta" if source == "Slack" else "cyan"), text)
        return table


class SlackReceiver:
    """A local stand-in for Slack's incoming webhook, on 127.0.0.1, that shows what Rollout posts."""

    def __init__(self, feed: Feed) -> None:
        feed_ref = feed

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {"text": body.decode(errors="replace")}
                feed_ref.add("Slack", _slack_text(payload))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.origin}services/T0DEMO/B0DEMO/rollout"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> SlackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _slack_text(payload: dict[str, Any]) -> str:
    text = str(payload.get("text") or "")
    if not text:
        for block in payload.get("blocks") or []:
            inner = block.get("text") if isinstance(block, dict) else None
            if isinstance(inner, dict) and inner.get("text"):
                text = str(inner["text"])
                break
    return " ".join(text.split())[:160] or "(a message without text)"


class SnsReader:
    """Reads the notification topic through an SQS queue subscribed to it."""

    def __init__(self, topic_arn: str, feed: Feed) -> None:
        self.feed = feed
        self.sqs = boto3.client("sqs", config=CLI_CONFIG)
        self.queue_url = self.sqs.create_queue(QueueName="rollout-demo-notifications")["QueueUrl"]
        queue_arn = let_aws_services_send(self.sqs, self.queue_url)
        boto3.client("sns", config=CLI_CONFIG).subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sns-reader", daemon=True)

    def __enter__(self) -> SnsReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                resp = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except Exception:  # noqa: BLE001 - the reader keeps going while the sandbox is up
                self._stop.wait(0.5)
                continue
            for message in resp.get("Messages", []):
                self.feed.add("SNS", *_sns_text(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _sns_text(body: str) -> tuple[str, str]:
    try:
        envelope = json.loads(body)
        notification = json.loads(envelope.get("Message", "{}"))
    except (ValueError, AttributeError):
        return body[:160], ""
    kind = str(notification.get("kind", ""))
    subject = envelope.get("Subject") or notification.get("subject") or ""
    return f"{kind}: {subject}", kind


# --- the story -------------------------------------------------------------------------------------------
def template_parameters(template: Path) -> set[str]:
    """The template's parameter names (CloudFormation tags such as !Ref are read as plain values)."""

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)  # type: ignore[arg-type]

    Loader.add_multi_constructor("!", any_tag)
    document = yaml.load(template.read_text(), Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    return set((document or {}).get("Parameters") or {})


class Demo:
    def __init__(self, out: Output, backend: Backend, feed: Feed, speed: float) -> None:
        self.out = out
        self.backend = backend
        self.feed = feed
        self.speed = speed
        self.summary = DemoSummary()
        # Long enough for a canary, its hooks and the alarm at this speed; bounded whatever happens.
        self.step_timeout = max(60.0, 40 * 60 / speed)
        self.interval = min(1.0, max(0.2, 20 / speed))
        self.traffic: list[TrafficGenerator] = []

    def say(self, *parts: Any) -> None:
        self.out.say(*parts)

    def heading(self, text: str) -> None:
        self.say(Text(f"\n━━ {text}", style="bold"))

    def create_function(self) -> None:
        iam = boto3.client("iam", config=CLI_CONFIG)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(RoleName="hello-demo", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        lam = self.backend.client("lambda")
        lam.create_function(
            FunctionName=FUNCTION,
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": artifact_bytes("healthy", "v0")},
            Timeout=10,
            MemorySize=128,
        )
        lam.get_waiter("function_active_v2").wait(
            FunctionName=FUNCTION, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        reg = register_function(self.backend, FUNCTION, ALIAS, CONFIG)
        self.say(f"created {FUNCTION} and onboarded it: alias {reg.alias}, {reg.config}")

    def upload(self, label: str, variant: str, story: str) -> Upload:
        return upload_artifact(
            self.backend,
            FUNCTION,
            artifact_bytes(variant, label, checks=DEMO_CHECKS),
            commit=f"{label}{'0' * 6}"[:7],
            message=f"{label}: {story}",
            author="rollout demo",
        )

    def release(self, step: Step) -> Outcome:
        self.heading(f"{step.label}: {step.story}")
        upload = self.upload(step.label, step.variant, step.story)
        self.say(f"uploaded s3://{upload.bucket}/{upload.key}")
        start = self._traffic_counts()
        printed: dict[str, Any] = {"state": None, "snap": None}

        with self._view() as update:

            def on_update(progress: Progress) -> None:
                rel = progress.release
                if self.out.live:
                    parts: list[RenderableType] = [
                        Text(render.release_line(rel) if rel else "waiting for the ledger…")
                    ]
                    if progress.snapshot is not None:
                        parts.append(render.snapshot_view(progress.snapshot, [self._traffic_line(start)]))
                    parts.append(self.feed.renderable())
                    update(Group(*parts))
                    return
                if rel is not None and rel.state != printed["state"]:
                    printed["state"] = rel.state
                    self.say(render.release_line(rel))
                if progress.snapshot is not None:
                    for line in render.snapshot_changes(printed["snap"], progress.snapshot):
                        self.say(line)
                    printed["snap"] = progress.snapshot
                self._print_feed()

            def locate() -> Release | None:
                return find_release(self.backend, FUNCTION, upload.bucket, upload.key, upload.version_id)

            try:
                progress = follow_release(
                    self.backend, FUNCTION, locate, Waiter(self.step_timeout, self.interval), on_update
                )
            except CliError as err:
                if err.code != ExitCode.TIMED_OUT:
                    raise
                return Outcome(
                    step.label, step.story, " or ".join(step.expected), "timed out", False, err.message
                )
        outcome = release_outcome(step.label, step.story, progress.release, step.expected, step.reason_code)
        self._report(outcome)
        return outcome

    def burst(self) -> list[Outcome]:
        self.heading(f"burst: {len(BURST)} uploads at once, one deployment at a time, the newest wins")
        uploads = [self.upload(label, "healthy", "burst") for label in BURST]
        self.say(f"uploaded {', '.join(u.key for u in uploads)}")
        found: dict[str, Release] = {}
        most_deploying = 0
        waiter = Waiter(self.step_timeout * 2, self.interval)
        printed: dict[str, str] = {}
        snap: DeploymentSnapshot | None = None
        with self._view() as update:
            while True:
                for label, upload in zip(BURST, uploads, strict=True):
                    rel = found.get(label)
                    if rel is not None and rel.is_terminal:
                        continue
                    latest = (
                        self.backend.ledger.get(FUNCTION, rel.release_id)
                        if rel
                        else find_release(
                            self.backend, FUNCTION, upload.bucket, upload.key, upload.version_id
                        )
                    )
                    if latest is not None:
                        found[label] = latest
                deploying = [r for r in found.values() if str(r.state) == "DEPLOYING"]
                most_deploying = max(most_deploying, len(deploying))
                snap = deployment_snapshot(self.backend, deploying[0].deployment_id) if deploying else None
                if self.out.live:
                    parts: list[RenderableType] = [self._burst_table(found)]
                    if snap is not None:
                        parts.append(render.snapshot_view(snap))
                    parts.append(self.feed.renderable())
                    update(Group(*parts))
                else:
                    for label, rel in found.items():
                        if printed.get(label) != str(rel.state):
                            printed[label] = str(rel.state)
                            self.say(f"{label}: {render.release_line(rel)}")
                    self._print_feed()
                if len(found) == len(BURST) and all(r.is_terminal for r in found.values()):
                    break
                if waiter.expired():
                    break
                waiter.pause()
        outcomes = []
        for index, label in enumerate(BURST):
            last = index == len(BURST) - 1
            expected = ("SUCCEEDED",) if last else ("SUCCEEDED", "SUPERSEDED")
            story = "newest upload goes live" if last else "queued behind the active deployment"
            outcomes.append(release_outcome(label, story, found.get(label), expected))
        superseded = sum(1 for r in found.values() if str(r.state) == "SUPERSEDED")
        outcomes.append(
            Outcome(
                "burst",
                "older queued uploads superseded",
                "at least 1 SUPERSEDED",
                f"{superseded} SUPERSEDED",
                superseded >= 1,
            )
        )
        outcomes.append(
            Outcome(
                "burst",
                "never two deployments at once",
                "at most 1 DEPLOYING",
                f"{most_deploying} at most",
                most_deploying <= 1,
            )
        )
        outcomes.append(self._alias_holds(found.get(BURST[-1])))
        for outcome in outcomes:
            self._report(outcome)
        return outcomes

    def _alias_holds(self, last: Release | None) -> Outcome:
        alias = self.backend.get_alias(FUNCTION, ALIAS) or {}
        live = str(alias.get("FunctionVersion", ""))
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        want = last.target_version if last and last.target_version else "?"
        actual = f"v{live}" + (f" (+{weights})" if weights else "")
        return Outcome(
            "alias", f"{ALIAS} ends on the newest upload", f"v{want}", actual, live == want and not weights
        )

    def notifications(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Every kind of ending was announced on SNS (and Slack received messages, when wired)."""
        expected_kinds = {
            "release.bootstrapped",
            "deployment.succeeded",
            "deployment.rolled_back",
            "release.superseded",
        }
        waiter = Waiter(max(15.0, 120 / self.speed), 0.2)
        while not expected_kinds <= set(self.feed.sns_kinds) and not waiter.expired():
            waiter.pause()
        got = set(self.feed.sns_kinds)
        missing = sorted(expected_kinds - got)
        results = [
            Outcome(
                "SNS",
                "every kind of ending announced",
                ", ".join(sorted(expected_kinds)),
                f"{len(self.feed.sns_kinds)} messages"
                + (f"; missing {', '.join(missing)}" if missing else ""),
                not missing,
            )
        ]
        return results

    def slack(self, enabled: bool) -> list[Outcome]:
        if not enabled:
            return []
        waiter = Waiter(max(15.0, 120 / self.speed), 0.2)
        while self.feed.slack_posts == 0 and not waiter.expired():
            waiter.pause()
        return [
            Outcome(
                "Slack",
                "messages posted to the webhook",
                "at least 1",
                f"{self.feed.slack_posts} posts",
                self.feed.slack_posts > 0,
            )
        ]

    def _report(self, outcome: Outcome) -> None:
        mark = Text("✔ ", "green") if outcome.ok else Text("✘ ", "red")
        self.say(Text.assemble(mark, f"{outcome.label}: {outcome.actual}", (f"  {outcome.why}", "dim")))

    def _burst_table(self, found: dict[str, Release]) -> Table:
        table = Table(title="burst", title_justify="left")
        for column in ("upload", "release", "state", "versions", "deployment"):
            table.add_column(column, no_wrap=True)
        for label in BURST:
            rel = found.get(label)
            table.add_row(
                label,
                rel.release_id if rel else "…",
                render.state_text(str(rel.state)) if rel else Text("-"),
                versions_text(rel) if rel else "-",
                (rel.deployment_id or "-") if rel else "-",
            )
        return table

    def _traffic_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for generator in self.traffic:
            for version, count in list(generator.report.by_version.items()):
                counts[version] = counts.get(version, 0) + count
        return counts

    def _traffic_line(self, start: dict[str, int]) -> Text:
        now = self._traffic_counts()
        delta = {v: n - start.get(v, 0) for v, n in now.items() if n - start.get(v, 0) > 0}
        if not delta:
            return Text("traffic: none yet", style="dim")
        shown = ", ".join(f"v{v}: {n}" for v, n in sorted(delta.items()))
        errors = sum(generator.report.errors for generator in self.traffic)
        return Text(f"traffic this release: {shown}  (errors so far: {errors})", style="dim")

    def _print_feed(self) -> None:
        for source, text in self.feed.unprinted():
            self.say(f"  [{source}] {text}")

    @contextmanager
    def _view(self) -> Iterator[Callable[[RenderableType], None]]:
        with render.live_view(self.out) as update:
            yield update

    def summary_table(self) -> Table:
        table = render.plain_or_rich_table(
            "Summary: expected vs actual", plain=not self.out.console.is_terminal
        )
        for column in ("", "release", "story", "expected", "actual", "versions", "why"):
            table.add_column(column, overflow="fold", no_wrap=column in {"", "release"})
        for o in self.summary.outcomes:
            table.add_row(
                Text("✔", "green") if o.ok else Text("✘", "bold red"),
                o.label,
                o.story,
                o.expected,
                o.actual,
                o.versions,
                o.why,
            )
        return table


def traffic_rates(speed: float) -> list[float]:
    """Rates (calls a real second) of the generators that give CALLS_PER_SANDBOX_MINUTE at `speed`."""
    total = max(10.0, CALLS_PER_SANDBOX_MINUTE * speed / 60)
    count = max(1, -(-int(total) // int(MAX_RATE_PER_GENERATOR)))
    return [total / count] * count


def run_demo(
    out: Output,
    speed: float = 30.0,
    port: int = 0,
    template: Path | None = None,
    beside: Callable[[Backend], AbstractContextManager[Any]] | None = None,
) -> DemoSummary:
    """Run the whole story; the summary says whether every outcome was the expected one.

    `beside(backend)` runs alongside the story, in the sandbox, and ends before it stops (the dashboard).
    """
    template = template or Path(__file__).resolve().parent.parent / "template.yaml"
    started = time.monotonic()
    feed = Feed()
    # The sandbox's own log lines would tear the live view; its failures show up as outcomes instead.
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    from cli import demo_gate

    known = template_parameters(template)
    slack_enabled = SLACK_PARAMETER in known
    # Slack's buttons: the receiver signs clicks with the app's signing secret, as Slack does.
    gate_enabled = slack_enabled and demo_gate.SIGNING_PARAMETER in known
    signing_secret = demo_gate.new_signing_secret()
    with SlackReceiver(feed) as slack:

        def parameters(endpoint_url: str) -> dict[str, str]:
            if not slack_enabled:
                return {}
            sm = boto3.client("secretsmanager", config=CLI_CONFIG)
            secret = sm.create_secret(
                Name="rollout-demo/slack-webhook", SecretString=json.dumps({"webhook_url": slack.url})
            )
            found = {SLACK_PARAMETER: secret["ARN"], SLACK_ORIGIN_PARAMETER: slack.origin}
            if gate_enabled:
                signing = sm.create_secret(Name="rollout-demo/slack-signing", SecretString=signing_secret)
                found[demo_gate.SIGNING_PARAMETER] = signing["ARN"]
                found[demo_gate.APPROVERS_PARAMETER] = demo_gate.APPROVER
            return found

        out.say(Text(f"starting the sandbox at {speed:g}x and provisioning {template.name}…", style="bold"))
        with running_sandbox(port, speed, STACK, template, parameters) as running, ExitStack() as alongside:
            out.say(
                f"sandbox {running.endpoint_url}, stack {STACK}"
                + (", Slack → local receiver" if slack_enabled else "")
            )
            backend = Backend(STACK, running.outputs)
            if beside is not None:
                alongside.enter_context(beside(backend))
            demo = Demo(out, backend, feed, speed)
            demo.summary.endpoint_url = running.endpoint_url
            with SnsReader(backend.stack.topic_arn, feed):
                demo.create_function()
                outcomes = [demo.release(STORY[0])]
                with ExitStack() as traffic:
                    demo.traffic = [
                        traffic.enter_context(
                            TrafficGenerator(
                                backend.client("lambda"),
                                FUNCTION,
                                ALIAS,
                                rate=rate,
                                max_seconds=demo.step_timeout * 8,
                            )
                        )
                        for rate in traffic_rates(speed)
                    ]
                    outcomes.extend(demo.release(step) for step in STORY[1:])
                    outcomes.extend(demo.burst())
                    if gate_enabled:
                        outcomes.append(demo_gate.approval_from_slack(demo, slack.origin, signing_secret))
                outcomes.extend(demo.notifications(outcomes))
                outcomes.extend(demo.slack(slack_enabled))
            demo.summary.outcomes = outcomes
            demo.summary.seconds = time.monotonic() - started
            if out.as_json:
                out.json(demo.summary.to_json())
            else:
                out.say(demo.summary_table())
                verdict = (
                    "every outcome as expected"
                    if demo.summary.all_expected
                    else "some outcomes were NOT as expected"
                )
                out.say(
                    Text(
                        f"{verdict} ({demo.summary.seconds:.0f}s)",
                        style="bold green" if demo.summary.all_expected else "bold red",
                    )
                )
            return demo.summary
