"""Every error the control plane raises on purpose, under one base, each named for what went wrong.

Callers catch the narrowest class they can act on. A reason code that travels in notifications is a
`states.ReasonCode`; the classes here are for code, the codes are for people and subscribers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rollout.ledger import Release
    from rollout.states import State


class RolloutError(Exception):
    """Base of every error Rollout raises on purpose."""


# --- what an artifact, an event or a document says -----------------------------------------------
class Rejected(RolloutError):
    """The artifact cannot be released: `code` for machines, `reason` for people."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


class ChecksError(RolloutError, ValueError):
    """The checks document is invalid: `field` says where (e.g. `pre_traffic[1].name`), `why` says why."""

    def __init__(self, field: str, why: str) -> None:
        self.field = field
        self.why = why
        super().__init__(f"{field}: {why}")


class AppSpecError(RolloutError, ValueError):
    """The AppSpec is not a Lambda AppSpec this project can act on."""


class MalformedEvent(RolloutError, ValueError):
    """The event is not a CodeDeploy deployment state change this handler can read."""


class HookEventError(RolloutError, ValueError):
    """The invocation is not a CodeDeploy lifecycle hook event."""


class DestinationRecordError(RolloutError, ValueError):
    """The event is not a Lambda destination record of a hook invocation."""


class MalformedNotification(RolloutError, ValueError):
    """The SNS message is not a rollout.notification/1 document."""


# --- what AWS said -------------------------------------------------------------------------------
class CodeChanged(RolloutError):
    """The function's code changed between our update and our publish (another upload won)."""


class UpdateFailed(RolloutError):
    """Lambda could not apply the new code (LastUpdateStatus Failed)."""


class OutOfTime(RolloutError):
    """A wait reached the invocation's deadline (see deadlines.Deadline) before what it waited for."""


class DeploymentLimitExceeded(RolloutError):
    """CodeDeploy already runs a deployment in this group (matched on the error code only)."""


class CreateOutcomeUnknown(RolloutError):
    """CreateDeployment raised, and CodeDeploy could not be asked whether it created the deployment."""


class MetricsUnreadable(RolloutError):
    """CloudWatch did not return a figure the canary analysis needs (its StatusCode was not Complete)."""


class ChecksUnavailable(RolloutError):
    """The function names a checks document that cannot be read or is invalid."""


class SlackPostFailed(RolloutError, RuntimeError):
    """Slack did not accept the message (the handler raises so SNS delivers it again)."""


class SlackWebhookSecretInvalid(RolloutError, ValueError):
    """The secret holds neither a webhook URL nor {"webhook_url": ...}."""


# --- the ledger ----------------------------------------------------------------------------------
class TransitionRefused(RolloutError):
    """The release is not in a state from which the requested transition is allowed."""

    def __init__(self, release: Release | None, target: State) -> None:
        self.release = release
        self.target = target
        current = release.state if release else "missing"
        super().__init__(f"release cannot move from {current} to {target}")
