"""The demo's approval story: a release that waits at its gate before traffic, approved from Slack.

The local Slack receiver plays Slack: it signs a block_actions click with the app's signing secret,
as Slack does, and sends it to the stack's SlackInteractions function URL (served by the sandbox);
the endpoint's answer comes back to the receiver as a reply in the message's thread.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cli.errors import CliError, ExitCode
from cli.follow import Waiter, find_release, follow_release
from cli.operations import upload_artifact
from cli.slack_click import post_signed_click
from examples.hello.build import artifact_bytes
from rollout.ledger import Release

if TYPE_CHECKING:
    from cli.demo import Demo, Outcome

SIGNING_PARAMETER = "SlackSigningSecretArn"
APPROVERS_PARAMETER = "SlackApprovers"
APPROVER = "U0DEMOAPPROVER"
LABEL = "v9"
STORY = "waits for approval before traffic; approved in Slack"


def new_signing_secret() -> str:
    return secrets.token_hex(16)


def click(endpoint: str, signing_secret: str, deployment_id: str, response_url: str) -> int:
    """What Slack sends when the approver clicks Approve: a signed block_actions request."""
    payload = {
        "type": "block_actions",
        "user": {"id": APPROVER, "username": "demo-approver"},
        "container": {"type": "message", "message_ts": f"{time.time():.6f}"},
        "response_url": response_url,
        "actions": [{"action_id": "rollout-approve", "value": deployment_id, "type": "button"}],
    }
    status, _ = post_signed_click(endpoint, signing_secret, payload)
    return status


def approval_from_slack(demo: Demo, slack_origin: str, signing_secret: str) -> Outcome:
    from cli.demo import DEMO_CHECKS, FUNCTION, Outcome, release_outcome

    demo.heading(f"{LABEL}: {STORY}")
    checks = {**DEMO_CHECKS, "approval": {"before": "traffic", "timeout_minutes": 30}}
    upload = upload_artifact(
        demo.backend,
        FUNCTION,
        artifact_bytes("healthy", LABEL, checks=checks),
        commit=f"{LABEL}000000"[:7],
        message=f"{LABEL}: {STORY}",
        author="rollout demo",
    )

    def locate() -> Release | None:
        return find_release(demo.backend, FUNCTION, upload.bucket, upload.key, upload.version_id)

    waiting = _awaiting(demo, locate)
    if waiting is None:
        return Outcome(LABEL, STORY, "SUCCEEDED (approved in Slack)", "never awaited approval", False)
    demo.say(
        f"{waiting.deployment_id} awaits approval (pre-traffic checks passed; no traffic on v{waiting.target_version})"
    )
    demo.say(f"clicking Approve in Slack as {APPROVER}…")
    status = click(
        demo.backend.stack.require("SlackInteractionsUrl"),
        signing_secret,
        waiting.deployment_id,
        f"{slack_origin}actions/T0DEMO/1/demo",
    )
    try:
        progress = follow_release(
            demo.backend,
            FUNCTION,
            locate,
            Waiter(demo.step_timeout, demo.interval),
            lambda _p: demo._print_feed(),
        )
    except CliError as err:
        if err.code != ExitCode.TIMED_OUT:
            raise
        return Outcome(LABEL, STORY, "SUCCEEDED (approved in Slack)", "timed out", False, err.message)
    outcome = release_outcome(LABEL, STORY, progress.release, ("SUCCEEDED",))
    by = ((progress.release.approval if progress.release else None) or {}).get("answered_by") or {}
    outcome.expected = "SUCCEEDED (approved in Slack)"
    outcome.ok = outcome.ok and status == 200 and by.get("kind") == "slack"
    outcome.why = f"approved by Slack user {by.get('id', '?')}" if by else f"the endpoint answered {status}"
    demo._report(outcome)
    return outcome


def _awaiting(demo: Demo, locate: Callable[[], Release | None]) -> Release | None:
    waiter = Waiter(demo.step_timeout, demo.interval)
    while True:
        release = locate()
        if release is not None and (release.approval or {}).get("status") == "AWAITING":
            return release
        if (release is not None and release.is_terminal) or waiter.expired():
            return None
        demo._print_feed()
        waiter.pause()
