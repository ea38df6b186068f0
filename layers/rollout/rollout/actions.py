"""What a release manager reaches for, as pure rules: roll back, freeze, hotfix, version retention.

No AWS here: the rules take what the adapters read (releases, freeze records, tags, versions) and
answer. The effects are in `rollback.py`, `release_gate.py` and `retention.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from rollout.errors import Rejected
from rollout.ledger import FREEZE_ALL, Release
from rollout.states import ReasonCode, State
from rollout.targets import TAG_ALARMS, AliasRouting

KIND_ROLLBACK = "rollback"
KIND_HOTFIX = "hotfix"
ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"
# Went live: the alias served the release's version when it ended.
WENT_LIVE = frozenset({State.SUCCEEDED, State.BOOTSTRAPPED})

TAG_HOTFIX = "rollout:hotfix"
HOTFIX_METADATA = "hotfix"  # x-amz-meta-hotfix on the upload
TRUE_WORDS = frozenset({"true", "yes", "1", "allowed", "allow"})

TAG_RETAIN = "rollout:retain-versions"
DEFAULT_RETAIN = 10
MIN_RETAIN = 2  # the live version and one to roll back to
MAX_RETAIN = 1000


# A person's reason for an action is a sentence: stored on the release or freeze (DynamoDB items
# are at most 400 KB) and announced (Slack truncates long messages). Longer is refused, not cut.
MAX_REASON = 500


class RefusedAction(Exception):
    """An action the function's state does not allow now (another deployment runs, nothing to do)."""


def reason_text(text: str) -> str:
    """A person's reason, whitespace collapsed; Rejected (BAD_REASON) when longer than MAX_REASON."""
    reason = " ".join(text.split())
    if len(reason) > MAX_REASON:
        raise Rejected("BAD_REASON", f"the reason is {len(reason)} characters long; at most {MAX_REASON}")
    return reason


# --- roll back ------------------------------------------------------------------------------------


def went_live(release: Release) -> bool:
    return release.state in WENT_LIVE and bool(release.target_version)


def went_live_unproven(release: Release) -> bool:
    """CodeDeploy completed the release's deployment although Rollout failed it (outcomes.decide): its
    version went live, but never counts as having gone live (no rollback returns to it)."""
    return (
        release.state == State.FAILED
        and release.reason_code == ReasonCode.UNPROVEN_SUCCESS
        and bool(release.target_version)
    )


def went_out(release: Release) -> bool:
    """The alias served only the release's version when it ended, proven or not."""
    return went_live(release) or went_live_unproven(release)


def newest_went_out(releases: Iterable[Release]) -> Release | None:
    """The release whose version the alias was last left serving by a release (the live one, unless
    something outside Rollout moved the alias since)."""
    return max((r for r in releases if went_out(r)), key=lambda r: r.order, default=None)


def unproven_live(releases: Iterable[Release], live_version: str) -> Release | None:
    """The release whose unproven version the alias serves now (`live_version`), or None: the newest
    release that went out went live unproven, and the alias still serves its version."""
    newest = newest_went_out(releases)
    if newest is None or not went_live_unproven(newest) or newest.target_version != live_version:
        return None
    return newest


def rollback_target(releases: Iterable[Release], live_version: str) -> Release | None:
    """The release whose version a rollback returns to: the newest one that went live, is not live
    now, and was not itself rolled back from (so rolling back twice goes further back, never forward
    to the version the first rollback left, even when that rollback went live unproven). A version
    that went live only unproven is never returned to. None when no earlier version went live."""
    ordered = sorted(releases, key=lambda r: r.order, reverse=True)
    left = {
        r.current_version for r in ordered if r.kind == KIND_ROLLBACK and went_out(r) and r.current_version
    }
    for release in ordered:
        version = release.target_version
        if went_live(release) and version != live_version and version not in left:
            return release
    return None


def not_live_reason(clicked: Release, releases: Iterable[Release], alias: AliasRouting | None) -> str:
    """Why a rollback asked for from `clicked`'s message must not act (fail closed), or "".

    The button rolls back the release it was posted for: only while that release is still the live
    one (it SUCCEEDED, or CodeDeploy completed it although Rollout failed it (UNPROVEN_SUCCESS); it is
    the newest release that went out; and the alias serves only its version). `alias` is the alias as
    read now, None when it is gone."""
    name = f"release {clicked.release_id} of {clicked.function}"
    if clicked.state != State.SUCCEEDED and not went_live_unproven(clicked):
        return (
            f"{name} is {clicked.state}, not SUCCEEDED: only a live release is rolled back from its message"
        )
    newest = newest_went_out(releases)
    if newest is not None and newest.release_id != clicked.release_id:
        return (
            f"{name} (version {clicked.target_version}) is no longer the live one: release "
            f"{newest.release_id} put version {newest.target_version} live since; nothing was done"
        )
    if alias is None:
        return f"{clicked.function} has no alias {clicked.alias}: nothing to roll back"
    if not alias.serves_only(clicked.target_version):
        return (
            f"alias {clicked.alias} of {clicked.function} no longer serves only version "
            f"{clicked.target_version} of {name}; nothing was done"
        )
    return ""


def release_of_version(releases: Iterable[Release], version: str) -> Release | None:
    """The newest release that put `version` live (its checks and commit describe that version)."""
    matching = [r for r in releases if went_live(r) and r.target_version == version]
    return max(matching, key=lambda r: r.order, default=None)


def rollback_checks(source: Release | None, skip_checks: bool) -> dict[str, Any]:
    """The checks a rollback runs: those of the release that put the version live; with
    --skip-checks none, and the pre-traffic hook's start probe still proves the version starts."""
    checks = dict((source.checks if source else None) or {})
    if skip_checks:
        checks["pre_traffic"] = []
    return checks


def parse_version(text: str) -> str:
    """A published version number as Lambda names it; Rejected for anything else."""
    text = text.strip()
    if not re.fullmatch(r"[1-9][0-9]{0,9}", text):
        raise Rejected("BAD_VERSION", f"{text!r} is not a published version number (1, 2, ...)")
    return text


# --- freeze ---------------------------------------------------------------------------------------


class Freeze(NamedTuple):
    scope: str  # a function name, or FREEZE_ALL
    reason: str
    by: str = ""
    at: str = ""
    until: str = ""  # ISO 8601 UTC; "" until someone unfreezes

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Freeze:
        return cls(
            scope=str(record.get("scope") or ""),
            reason=str(record.get("reason") or ""),
            by=str(record.get("by") or ""),
            at=str(record.get("at") or ""),
            until=str(record.get("until") or ""),
        )

    def to_record(self) -> dict[str, Any]:
        return {"scope": self.scope, "reason": self.reason, "by": self.by, "at": self.at, "until": self.until}

    def active(self, now: datetime) -> bool:
        """In force at `now`; an `until` that cannot be read keeps the freeze (fail closed)."""
        if not self.until:
            return True
        try:
            return now < parse_time(self.until)
        except ValueError:
            return True

    def covers(self, function: str) -> bool:
        return self.scope in (FREEZE_ALL, function)

    def describe(self) -> str:
        whom = "every function" if self.scope == FREEZE_ALL else self.scope
        until = f" until {self.until}" if self.until else ""
        by = f" by {self.by}" if self.by else ""
        return f"{whom} frozen{by}{until}: {self.reason}"


def active_freeze(freezes: Iterable[Freeze], function: str, now: datetime) -> Freeze | None:
    """The freeze that holds `function` at `now` (its own before the one for every function)."""
    covering = [f for f in freezes if f.covers(function) and f.active(now)]
    return min(covering, key=lambda f: f.scope == FREEZE_ALL, default=None)


_DURATION = re.compile(r"(\d+)\s*([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC. ValueError when unreadable."""
    stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def parse_until(text: str, now: datetime) -> str:
    """`--until`: an ISO 8601 time or a duration from now (90m, 2h, 1d); ISO 8601 UTC, in the future."""
    text = text.strip()
    match = _DURATION.fullmatch(text)
    try:
        when = now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}) if match else parse_time(text)
    except (ValueError, OverflowError) as exc:  # 99999999999d overflows a datetime
        raise Rejected("BAD_TIME", f"--until {text!r}: not an ISO 8601 time or a duration like 2h") from exc
    if when <= now:
        raise Rejected("BAD_TIME", f"--until {text!r} has already passed")
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def hold_newest(held: list[Release]) -> tuple[Release | None, list[Release]]:
    """Of a function's held releases, the newest (which starts) and the older ones (superseded)."""
    if not held:
        return None, []
    ordered = sorted(held, key=lambda r: r.order)
    return ordered[-1], ordered[:-1]


# --- hotfix ---------------------------------------------------------------------------------------


def hotfix_requested(metadata_value: str) -> bool:
    return metadata_value.strip().lower() in TRUE_WORDS


def hotfix_config(function: str, requested: bool, tags: dict[str, str]) -> str:
    """The deployment config a hotfix upload forces (AllAtOnce), '' for an ordinary upload.

    Rejected when the upload asks for a hotfix the function's tags do not allow: skipping the
    gradual shift is a choice the function's owner makes, never the uploader alone.
    """
    if not requested:
        return ""
    if (tags.get(TAG_HOTFIX) or "").strip().lower() not in TRUE_WORDS:
        raise Rejected(
            ReasonCode.HOTFIX_NOT_ALLOWED,
            f"the upload asks for a hotfix, but function {function!r} does not allow one "
            f"(tag {TAG_HOTFIX}=allowed); upload it without the hotfix mark",
        )
    return ALL_AT_ONCE


# --- pre-flight -----------------------------------------------------------------------------------


def alarm_hold_reason(firing: list[str]) -> str:
    """Why a release is held while some of the function's own alarms are in ALARM ('' if none)."""
    if not firing:
        return ""
    names = ", ".join(sorted(firing))
    return (
        f"the function's alarm{'s' if len(firing) > 1 else ''} {names} "
        f"{'are' if len(firing) > 1 else 'is'} in ALARM: CodeDeploy would stop the deployment at once; "
        "it starts when the alarm clears"
    )


def missing_alarm_reason(missing: list[str]) -> str:
    """Why a release is rejected when alarms its function's `rollout:alarms` tag names do not exist
    ('' if none). Fail closed: Rollout cannot prove the function healthy without them, and CodeDeploy
    would stop the deployment anyway (with ignorePollAlarmFailure false, "the deployment stops if alarm
    status information can't be retrieved from Amazon CloudWatch",
    https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_AlarmConfiguration.html). Rejected
    rather than held: nothing brings a deleted alarm back by itself, so a hold could last forever."""
    if not missing:
        return ""
    names = ", ".join(sorted(missing))
    plural = len(missing) > 1
    return (
        f"the function's tag {TAG_ALARMS} names alarm{'s' if plural else ''} {names}, which "
        f"do{'' if plural else 'es'} not exist in CloudWatch: its health cannot be proven. Create "
        f"{'them' if plural else 'it'} or fix the tag (rollout register), then upload again"
    )


def concurrency_hold_reason(alias: str, config: dict[str, Any] | None) -> str:
    """Why a release waits for the alias's provisioned concurrency ('' when it may shift now).

    During a canary or linear shift Lambda divides an alias's provisioned concurrency between the two
    versions by their weights: "When a weighted alias is used during linear and canary deployments,
    this value [AllocatedProvisionedConcurrentExecutions] fluctuates depending on the amount of
    concurrency that is provisioned for the function versions"
    (https://docs.aws.amazon.com/lambda/latest/api/API_ProvisionedConcurrencyConfigListItem.html).
    Shifting while the allocation is still IN_PROGRESS (Lambda is still moving it after the alias
    last changed) or FAILED would send traffic to versions without their share of initialised
    environments, so the shift waits until the alias reports READY.
    """
    if config is None:  # the alias has no provisioned concurrency
        return ""
    status = str(config.get("Status") or "")  # a configuration without a Status is not READY: held
    if status == "READY":
        return ""
    why = f": {config['StatusReason']}" if config.get("StatusReason") else ""
    return (
        f"provisioned concurrency on alias {alias} is {status or 'in an unknown state'}{why}; "
        "the shift waits until Lambda reports it READY"
    )


# --- version retention ----------------------------------------------------------------------------


def retain_count(tags: dict[str, str]) -> int | None:
    """How many versions the function keeps (tag, default 10); None when the tag is unusable."""
    raw = (tags.get(TAG_RETAIN) or "").strip()
    if not raw:
        return DEFAULT_RETAIN
    if not raw.isdigit() or not MIN_RETAIN <= int(raw) <= MAX_RETAIN:
        return None
    return int(raw)


@dataclass
class RetentionPlan:
    """Which old versions of a function go, and why each other old one stays."""

    delete: list[str] = field(default_factory=list)
    # version -> why it stays although it is not among the newest N
    protected: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"delete": self.delete, "protected": self.protected}


def retention_plan(versions: Iterable[str], keep: int, protected: dict[str, str]) -> RetentionPlan:
    """Versions to delete: all but the newest `keep`, never a protected one (`protected` maps a
    version to why: an alias points to it, an open release names it, it is the rollback target)."""
    numbered = sorted({int(v) for v in versions if v.isdigit()}, reverse=True)
    plan = RetentionPlan()
    for number in numbered[keep:]:
        version = str(number)
        if version in protected:
            plan.protected[version] = protected[version]
        else:
            plan.delete.append(version)
    return plan


def protected_versions(
    aliases: dict[str, tuple[str, dict[str, float]]],
    open_releases: Iterable[Release],
    rollback_to: str,
) -> dict[str, str]:
    """Every version retention must keep, with why: alias targets (weights included), versions
    an unfinished release deploys or deploys over, and the version a rollback would return to."""
    protected: dict[str, str] = {}
    for name, (version, weights) in aliases.items():
        protected.setdefault(version, f"alias {name} points to it")
        for weighted in weights:
            protected.setdefault(weighted, f"alias {name} routes traffic to it")
    for release in open_releases:
        for version in (release.target_version, release.current_version):
            if version:
                protected.setdefault(version, f"release {release.release_id} ({release.state}) names it")
    if rollback_to:
        protected.setdefault(rollback_to, "a rollback returns to it")
    return protected
