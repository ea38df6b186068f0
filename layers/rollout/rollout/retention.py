"""Version retention, run by the reconciler: keep the newest N published versions of each managed
function (tag `rollout:retain-versions`, default 10) and delete the older ones, except a version an
alias points to (weights included), one an event source mapping or a provisioned concurrency
configuration names, one an unfinished release names, or the one a rollback would return to. What
was deleted and kept (with why) is recorded on the function's RETENTION item.

Fail closed: when the mappings or provisioned concurrency cannot be listed (an error, an IAM
refusal), nothing of the function is deleted.

A release recorded while retention runs (a `rollout rollback --to` an old version, say) can name a
version the plan chose to delete. So just before each delete the function's unfinished releases are
read again, with consistent reads, and a version one of them names is kept. What stays open is the
time between that read and DeleteFunction's answer: one call, bounded by the client's timeouts
(`aws.RETRY_CONFIG`), milliseconds in practice. A rollback recorded inside it was validated against
a version that then vanishes; it fails closed (its start waits for the version to be Active and ends
FAILED when it is gone, or its pre-traffic hook cannot invoke it and the deployment rolls back), so the
alias never moves to a deleted version. Closing that last window would take an intent record in the
ledger that the rollback reads after recording itself (a ledger change, not made here).
"""

from __future__ import annotations

from rollout import aws, lambda_ops
from rollout.actions import (
    TAG_RETAIN,
    RetentionPlan,
    protected_versions,
    retain_count,
    retention_plan,
    rollback_target,
)
from rollout.ledger import Release
from rollout.observability import logger
from rollout.states import OPEN
from rollout.transitions import ReleaseContext

HISTORY_DEPTH = 200


def prune_function(ctx: ReleaseContext, function: str, tags: dict[str, str]) -> list[str]:
    """Delete the versions of `function` retention does not keep; the versions deleted."""
    keep = retain_count(tags)
    if keep is None:
        _skip(ctx, function, f"tag {TAG_RETAIN}={tags.get(TAG_RETAIN)!r} is not a number of versions")
        return []
    published = lambda_ops.published_versions(function)
    if len(published) <= keep:
        # The newest `keep` are always kept: nothing to delete, and nothing else to read. Most runs end
        # here (a function gains a version per release, the reconciler runs every five minutes).
        return []
    try:
        in_use = lambda_ops.versions_in_use(function)
    except Exception as exc:  # noqa: BLE001 - fail closed: what cannot be listed may be in use
        _skip(ctx, function, f"could not list what invokes its versions ({aws.error_code(exc) or exc})")
        return []
    plan = _plan(ctx, function, tags, keep, in_use, published)
    deleted = [version for version in plan.delete if _delete_if_unused(ctx, function, version, plan)]
    if deleted:  # the last clean-up that deleted something stays on record
        ctx.ledger.record_retention(function, {"keep": keep, "deleted": deleted, "protected": plan.protected})
        logger.info(
            "Old versions deleted", extra={"function": function, "deleted": deleted, "kept": plan.protected}
        )
    return deleted


def _plan(
    ctx: ReleaseContext,
    function: str,
    tags: dict[str, str],
    keep: int,
    in_use: dict[str, str],
    published: list[str],
) -> RetentionPlan:
    aliases = lambda_ops.aliases(function)
    releases: list[Release] = ctx.ledger.releases(function, limit=HISTORY_DEPTH)
    unfinished = [r for r in releases if not r.is_terminal] + [
        r for r in ctx.ledger.open_releases() if r.function == function
    ]
    live = _live_version(aliases, tags)
    target = rollback_target(releases, live) if live else None
    protected = protected_versions(aliases, unfinished, target.target_version if target else "")
    for version, why in in_use.items():
        protected.setdefault(version, why)
    return retention_plan(published, keep, protected)


def _delete_if_unused(ctx: ReleaseContext, function: str, version: str, plan: RetentionPlan) -> bool:
    """Delete `version` unless an unfinished release names it now (read again, consistently, just
    before the delete) or Lambda refuses because an alias references it; True if deleted."""
    named = protected_versions({}, _open_releases(ctx, function), "")
    if version in named:
        plan.protected[version] = named[version]
        logger.info("Kept a version a new release names", extra={"function": function, "version": version})
        return False
    try:
        lambda_ops.delete_version(function, version)
    except Exception as exc:
        # "You can't delete a version that an alias references" (DeleteFunction's Qualifier,
        # botocore's lambda model): an alias moved onto it since the plan was made.
        if aws.error_code(exc) != "ResourceConflictException":
            raise
        plan.protected[version] = f"Lambda refused to delete it: {exc}"[:300]
        return False
    return True


def _open_releases(ctx: ReleaseContext, function: str) -> list[Release]:
    """The function's unfinished releases, read consistently (the open-releases index lags)."""
    return ctx.ledger.in_states(function, OPEN)


def _skip(ctx: ReleaseContext, function: str, why: str) -> None:
    reason = f"{why}: nothing deleted"
    ctx.ledger.record_retention(function, {"skipped": reason})
    logger.warning("Version retention skipped", extra={"function": function, "reason": reason})


def _live_version(aliases: dict[str, tuple[str, dict[str, float]]], tags: dict[str, str]) -> str:
    name = (tags.get("rollout:alias") or "live").strip()
    return aliases[name][0] if name in aliases else ""
