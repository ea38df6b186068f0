"""Canary analysis (pure): the traffic window of a deployment and the verdict on the new version.

The post-traffic hook compares the new version with the old one on the `AWS/Lambda` metrics the alias
produced while traffic was shifting (by ExecutedVersion). Figures come from `rollout.lambda_metrics`;
this module only decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Documented defaults (docs/HOOKS.md); the checks file may override each.
DEFAULT_MAX_ERROR_RATE = 0.01
DEFAULT_MAX_P99_DURATION_RATIO = 1.5
DEFAULT_MIN_INVOCATIONS = 20

# A slowdown smaller than this is never a failure, whatever the ratio: for handlers that answer in
# about a millisecond, p99 ratios are noise (1 ms against 0.6 ms is "1.7x").
MIN_P99_DURATION_GAP_MS = 25.0

# The window never shrinks below one CloudWatch period (a minute).
MIN_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class CanaryPolicy:
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_p99_duration_ratio: float = DEFAULT_MAX_P99_DURATION_RATIO
    min_invocations: int = DEFAULT_MIN_INVOCATIONS
    # Fewer invocations than `min_invocations` prove nothing: strict (the default) fails the canary as
    # inconclusive; `canary.strict: false` passes it unjudged, saying so (a quiet function's choice).
    strict: bool = True

    @classmethod
    def from_checks(cls, checks: Mapping[str, Any] | None) -> CanaryPolicy:
        """The policy of a normalised checks document (its `canary` section), defaults otherwise."""
        section = (checks or {}).get("canary") or {}
        return cls(
            max_error_rate=float(section.get("max_error_rate", DEFAULT_MAX_ERROR_RATE)),
            max_p99_duration_ratio=float(
                section.get("max_p99_duration_ratio", DEFAULT_MAX_P99_DURATION_RATIO)
            ),
            min_invocations=int(section.get("min_invocations", DEFAULT_MIN_INVOCATIONS)),
            strict=bool(section.get("strict", True)),
        )


@dataclass(frozen=True)
class VersionFigures:
    """What one version did through the alias during the window."""

    version: str
    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    p99_duration_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.invocations if self.invocations else 0.0

    def to_record(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_rate"] = round(self.error_rate, 6)
        return data


@dataclass
class CanaryVerdict:
    passed: bool
    new: VersionFigures
    old: VersionFigures
    policy: CanaryPolicy
    window_start: datetime
    window_end: datetime
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    # Set when too few invocations left the figures unjudged (passed only if the policy is not strict).
    inconclusive: bool = False

    @property
    def reason(self) -> str:
        if self.failures:
            return "; ".join(self.failures)
        if self.inconclusive:
            return "canary inconclusive, passed unjudged (canary.strict is false): " + self.warnings[0]
        return "canary within thresholds"

    def to_record(self) -> dict[str, Any]:
        return {
            "verdict": "Succeeded" if self.passed else "Failed",
            "new": self.new.to_record(),
            "old": self.old.to_record(),
            "policy": asdict(self.policy),
            "window": {"start": _iso(self.window_start), "end": _iso(self.window_end)},
            "failures": list(self.failures),
            "warnings": list(self.warnings),
            "inconclusive": self.inconclusive,
        }


def judge_canary(
    new: VersionFigures,
    old: VersionFigures,
    policy: CanaryPolicy,
    window_start: datetime,
    window_end: datetime,
) -> CanaryVerdict:
    """Fail when the new version errs more than allowed (and more than the old one) or is much slower.

    With fewer invocations than `min_invocations` the figures say too little: the canary is
    inconclusive, which fails it unless the policy is not strict (then it passes unjudged, saying so).
    """
    verdict = CanaryVerdict(True, new, old, policy, window_start, window_end)
    if new.invocations < policy.min_invocations:
        verdict.inconclusive = True
        note = (
            f"version {new.version} had {new.invocations} invocation(s) through the alias during the "
            f"canary window, fewer than the {policy.min_invocations} needed to judge it"
        )
        if policy.strict:
            verdict.failures.append(
                f"canary inconclusive: {note}; send traffic through the alias during the shift, lower "
                "canary.min_invocations, or set canary.strict to false to pass it unjudged"
            )
            verdict.passed = False
        else:
            verdict.warnings.append(note)
        return verdict

    if new.error_rate > policy.max_error_rate and new.error_rate > old.error_rate:
        verdict.failures.append(
            f"error rate of version {new.version} is {_pct(new.error_rate)} ({new.errors}/{new.invocations}), "
            f"above the {_pct(policy.max_error_rate)} allowed and version {old.version}'s "
            f"{_pct(old.error_rate)}"
        )

    if new.p99_duration_ms is None:
        verdict.warnings.append(f"no p99 duration for version {new.version}; duration not judged")
    elif old.p99_duration_ms is None or old.p99_duration_ms <= 0:
        verdict.warnings.append(
            f"no p99 duration for version {old.version} to compare with; duration not judged"
        )
    else:
        limit = max(
            policy.max_p99_duration_ratio * old.p99_duration_ms, old.p99_duration_ms + MIN_P99_DURATION_GAP_MS
        )
        if new.p99_duration_ms > limit:
            verdict.failures.append(
                f"p99 duration of version {new.version} is {new.p99_duration_ms:.0f} ms, above "
                f"{policy.max_p99_duration_ratio:g} x version {old.version}'s {old.p99_duration_ms:.0f} ms"
            )

    if new.throttles:
        verdict.warnings.append(f"version {new.version} was throttled {new.throttles} time(s)")
    verdict.passed = not verdict.failures
    return verdict


def traffic_window(
    lifecycle_events: Iterable[Mapping[str, Any]],
    deployment_start: datetime | None,
    now: datetime,
) -> tuple[datetime, datetime, list[str]]:
    """The span during which traffic was shifting, as the deployment itself tells it.

    Start: the AllowTraffic lifecycle event's start, else the deployment's start (or creation).
    End: the AfterAllowTraffic event's start, else AllowTraffic's end, else `now`. The deployment's
    own timestamps win over the local clock because CodeDeploy's clock may run at another pace (the
    local sandbox runs it faster than real time). Returns (start, end, notes on any fallback).
    """
    events = {str(e.get("lifecycleEventName")): e for e in lifecycle_events}
    allow = events.get("AllowTraffic", {})
    after = events.get("AfterAllowTraffic", {})
    notes: list[str] = []

    start = _as_utc(allow.get("startTime"))
    if start is None:
        start = _as_utc(deployment_start)
        if start is None:
            start = now - MIN_WINDOW
            notes.append("the deployment gave no start time; the canary window starts a minute ago")
        else:
            notes.append("no AllowTraffic start time; the canary window starts when the deployment did")

    end = _as_utc(after.get("startTime")) or _as_utc(allow.get("endTime"))
    if end is None:
        end = now
        notes.append("no AfterAllowTraffic start time; the canary window ends now")
    if end - start < MIN_WINDOW:
        end = start + MIN_WINDOW
    return start, end, notes


def _as_utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f}%"
