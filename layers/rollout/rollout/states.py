"""Release states, the transitions the ledger allows, and the reason codes of the outcomes (pure).

States and reason codes are part of the public notification schema (`rollout.notification/1`).
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"
    UNCHANGED = "UNCHANGED"
    BOOTSTRAPPED = "BOOTSTRAPPED"
    QUEUED = "QUEUED"
    DEPLOYING = "DEPLOYING"
    SUCCEEDED = "SUCCEEDED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"
    # Recorded but not started: a freeze, or a pre-flight rule (an alarm of the function firing), holds
    # it. Not terminal: when the hold ends the newest held release starts (`release_gate`).
    HELD = "HELD"


TERMINAL: frozenset[State] = frozenset(
    {
        State.REJECTED,
        State.UNCHANGED,
        State.BOOTSTRAPPED,
        State.SUCCEEDED,
        State.ROLLED_BACK,
        State.FAILED,
        State.SUPERSEDED,
    }
)

# Not ended yet: the release may still publish, deploy or move traffic.
OPEN: frozenset[State] = frozenset(State) - TERMINAL

# Which states a release may move to from each state. A failed start of a queued release is
# recorded as FAILED rather than dropped, so QUEUED may end in FAILED too.
TRANSITIONS: dict[State, frozenset[State]] = {
    # RECEIVED -> SUPERSEDED: an upload processed after a newer one already went out.
    State.RECEIVED: frozenset(
        {
            State.REJECTED,
            State.UNCHANGED,
            State.BOOTSTRAPPED,
            State.QUEUED,
            State.DEPLOYING,
            State.FAILED,
            State.SUPERSEDED,
            State.HELD,
        }
    ),
    # A queued release whose code someone else already made live ends UNCHANGED when its turn comes.
    # A queued release publishes when its turn comes, so it may be the one that creates the alias.
    State.QUEUED: frozenset(
        {
            State.DEPLOYING,
            State.SUPERSEDED,
            State.FAILED,
            State.REJECTED,
            State.UNCHANGED,
            State.BOOTSTRAPPED,
            State.HELD,
        }
    ),
    # A held release starts (or queues) when its hold ends; older held releases are superseded.
    State.HELD: frozenset(
        {
            State.DEPLOYING,
            State.QUEUED,
            State.SUPERSEDED,
            State.FAILED,
            State.REJECTED,
            State.UNCHANGED,
            State.BOOTSTRAPPED,
        }
    ),
    State.DEPLOYING: frozenset({State.SUCCEEDED, State.ROLLED_BACK, State.FAILED}),
    # The one move out of a terminal state: a release recorded ROLLED_BACK while CodeDeploy's rollback
    # deployment was still running, whose rollback then failed. Traffic was never restored, so the
    # record is corrected to FAILED (callers name ROLLED_BACK in `only_from` to make this move).
    State.ROLLED_BACK: frozenset({State.FAILED}),
}


def can_move(current: State, target: State) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def sources_of(target: State) -> frozenset[State]:
    """Every state from which `target` may be reached."""
    return frozenset(src for src, targets in TRANSITIONS.items() if target in targets)


def is_terminal(state: State | str) -> bool:
    return State(state) in TERMINAL


class ReasonCode:
    """Why a release ended as it did (`reason.code` in notifications, `reason_code` in the ledger).

    Rollout's own codes first; then CodeDeploy's `ErrorCode` values (botocore's codedeploy model,
    shape ErrorCode), which a deployment's ending passes through unchanged. Plain strings rather
    than a StrEnum: the codes are only ever used as strings, and building an enum of seventy members
    is a measurable part of every function's cold start.
    """

    # The upload and the event
    MALFORMED_EVENT = "MALFORMED_EVENT"
    WRONG_BUCKET = "WRONG_BUCKET"
    OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"
    # The bucket keeps no lasting version of the object (versioning off or suspended): the bytes
    # validated could not be pinned, so Lambda could fetch others
    OBJECT_NOT_VERSIONED = "OBJECT_NOT_VERSIONED"
    NO_FUNCTION_SEGMENT = "NO_FUNCTION_SEGMENT"
    BAD_SUFFIX = "BAD_SUFFIX"
    EMPTY_OBJECT = "EMPTY_OBJECT"
    TOO_LARGE = "TOO_LARGE"
    CORRUPT_ZIP = "CORRUPT_ZIP"
    UNSAFE_ZIP = "UNSAFE_ZIP"
    UNSUPPORTED_COMPRESSION = "UNSUPPORTED_COMPRESSION"
    EMPTY_ARTIFACT = "EMPTY_ARTIFACT"
    KEY_TOO_LONG = "KEY_TOO_LONG"
    BAD_KEY = "BAD_KEY"
    INVALID_CHECKS = "INVALID_CHECKS"
    HANDLER_NOT_FOUND = "HANDLER_NOT_FOUND"
    # The target function
    FUNCTION_NOT_FOUND = "FUNCTION_NOT_FOUND"
    FUNCTION_NOT_MANAGED = "FUNCTION_NOT_MANAGED"
    FUNCTION_NOT_ZIP = "FUNCTION_NOT_ZIP"
    BAD_TAG = "BAD_TAG"
    LAMBDA_REFUSED_CODE = "LAMBDA_REFUSED_CODE"
    # The alias invokes $LATEST rather than a published version: updating the code would put it live
    ALIAS_NOT_ON_VERSION = "ALIAS_NOT_ON_VERSION"
    # A first release (no alias yet, so no deployment and no hook) is tested before its alias is
    # created (rollout.first_release): a check failed or could not run, or its checks ask for an
    # approval that only a deployment can wait for. No alias was created.
    CHECKS_FAILED = "CHECKS_FAILED"
    APPROVAL_UNAVAILABLE = "APPROVAL_UNAVAILABLE"
    # The release's path through the queue
    CODE_UNCHANGED = "CODE_UNCHANGED"
    WAITING = "WAITING"
    SUPERSEDED = "SUPERSEDED"
    START_FAILED = "START_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # Held, not deployed (release_gate): a freeze, a freeze record that cannot be read (fail closed),
    # one of the function's own alarms already in ALARM, provisioned concurrency not ready.
    FROZEN = "FROZEN"
    FREEZE_UNKNOWN = "FREEZE_UNKNOWN"
    PREFLIGHT_ALARM = "PREFLIGHT_ALARM"
    PREFLIGHT_CONCURRENCY = "PREFLIGHT_CONCURRENCY"
    # Rejected at pre-flight: an alarm the function's rollout:alarms tag names does not exist, so its
    # health cannot be proven (fail closed; nothing would end a hold on it)
    ALARM_NOT_FOUND = "ALARM_NOT_FOUND"
    # A hotfix upload for a function whose tags do not allow hotfixes
    HOTFIX_NOT_ALLOWED = "HOTFIX_NOT_ALLOWED"
    # A release manager's request that cannot be acted on (rollback --to, freeze --until, a --reason
    # longer than a sentence)
    BAD_VERSION = "BAD_VERSION"
    VERSION_NOT_FOUND = "VERSION_NOT_FOUND"
    BAD_TIME = "BAD_TIME"
    BAD_REASON = "BAD_REASON"
    # Processing of the upload kept stopping without an outcome (deployer killed, timed out, out of memory)
    PROCESSING_ABANDONED = "PROCESSING_ABANDONED"
    # The deployment
    DEPLOYMENT_LOST = "DEPLOYMENT_LOST"
    DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"  # CodeDeploy's rollback deployment failed: the alias may be split
    # CodeDeploy completed a deployment one of whose hooks Rollout recorded Failed (or whose gate was
    # refused): the status CodeDeploy acted on was not Rollout's, so the version is live unproven
    UNPROVEN_SUCCESS = "UNPROVEN_SUCCESS"
    # CodeDeploy's ErrorCode values
    AGENT_ISSUE = "AGENT_ISSUE"
    ALARM_ACTIVE = "ALARM_ACTIVE"
    APPLICATION_MISSING = "APPLICATION_MISSING"
    AUTOSCALING_VALIDATION_ERROR = "AUTOSCALING_VALIDATION_ERROR"
    AUTO_SCALING_CONFIGURATION = "AUTO_SCALING_CONFIGURATION"
    AUTO_SCALING_IAM_ROLE_PERMISSIONS = "AUTO_SCALING_IAM_ROLE_PERMISSIONS"
    CLOUDFORMATION_STACK_FAILURE = "CLOUDFORMATION_STACK_FAILURE"
    CODEDEPLOY_RESOURCE_CANNOT_BE_FOUND = "CODEDEPLOY_RESOURCE_CANNOT_BE_FOUND"
    CUSTOMER_APPLICATION_UNHEALTHY = "CUSTOMER_APPLICATION_UNHEALTHY"
    DEPLOYMENT_GROUP_MISSING = "DEPLOYMENT_GROUP_MISSING"
    ECS_UPDATE_ERROR = "ECS_UPDATE_ERROR"
    ELASTIC_LOAD_BALANCING_INVALID = "ELASTIC_LOAD_BALANCING_INVALID"
    ELB_INVALID_INSTANCE = "ELB_INVALID_INSTANCE"
    HEALTH_CONSTRAINTS = "HEALTH_CONSTRAINTS"
    HEALTH_CONSTRAINTS_INVALID = "HEALTH_CONSTRAINTS_INVALID"
    HOOK_EXECUTION_FAILURE = "HOOK_EXECUTION_FAILURE"
    IAM_ROLE_MISSING = "IAM_ROLE_MISSING"
    IAM_ROLE_PERMISSIONS = "IAM_ROLE_PERMISSIONS"
    INVALID_ECS_SERVICE = "INVALID_ECS_SERVICE"
    INVALID_LAMBDA_CONFIGURATION = "INVALID_LAMBDA_CONFIGURATION"
    INVALID_LAMBDA_FUNCTION = "INVALID_LAMBDA_FUNCTION"
    INVALID_REVISION = "INVALID_REVISION"
    MANUAL_STOP = "MANUAL_STOP"
    MISSING_BLUE_GREEN_DEPLOYMENT_CONFIGURATION = "MISSING_BLUE_GREEN_DEPLOYMENT_CONFIGURATION"
    MISSING_ELB_INFORMATION = "MISSING_ELB_INFORMATION"
    MISSING_GITHUB_TOKEN = "MISSING_GITHUB_TOKEN"  # noqa: S105 - an error code, not a secret
    NO_EC2_SUBSCRIPTION = "NO_EC2_SUBSCRIPTION"
    NO_INSTANCES = "NO_INSTANCES"
    OVER_MAX_INSTANCES = "OVER_MAX_INSTANCES"
    RESOURCE_LIMIT_EXCEEDED = "RESOURCE_LIMIT_EXCEEDED"
    REVISION_MISSING = "REVISION_MISSING"
    THROTTLED = "THROTTLED"
    TIMEOUT = "TIMEOUT"


REASON_CODES: frozenset[str] = frozenset(
    value for name, value in vars(ReasonCode).items() if name.isupper() and isinstance(value, str)
)


def notification_kind(before: State, after: State, reason_code: str = "") -> str | None:
    """The notification a transition announces; None for a transition nobody needs to hear of.

    The one table of kinds: a FAILED release failed "before deployment" unless it was deploying, and
    a release whose rollback failed (from DEPLOYING or ROLLED_BACK) is its own, critical, kind.
    """
    if after == State.FAILED:
        if before == State.ROLLED_BACK or reason_code == ReasonCode.ROLLBACK_FAILED:
            return "deployment.rollback_failed"
        return "deployment.failed" if before == State.DEPLOYING else "release.failed"
    return _KIND_BY_STATE.get(after)


_KIND_BY_STATE: dict[State, str] = {
    State.REJECTED: "release.rejected",
    State.UNCHANGED: "release.unchanged",
    State.BOOTSTRAPPED: "release.bootstrapped",
    State.QUEUED: "release.queued",
    State.HELD: "release.held",
    State.SUPERSEDED: "release.superseded",
    State.DEPLOYING: "deployment.started",
    State.SUCCEEDED: "deployment.succeeded",
    State.ROLLED_BACK: "deployment.rolled_back",
}
