"""Version retention, run by the reconciler: keep the newest N published versions of each managed
function (tag `rollout:retain-versions`, default 10) and delete the older ones, except a version an
alias points to (weights included), one an unfinished release names, or the one a rollback would
return to. What was deleted and kept (with why) is recorded on the function's RETENTION item.
"""

from __future__ import annotations

from rollout import lambda_ops
from rollout.actions import TAG_RETAIN, protected_versions, retain_count, retention_plan, rollback_target
from rollout.ledger import Release
from rollout.observability import logger
from rollout.transitions import ReleaseContext

HISTORY_DEPTH = 200


def prune_function(ctx: ReleaseContext, function: str, tags: dict[str, str]) -> list[str]:
    """Delete the versions of `function` retention does not keep; the versions deleted."""
    keep = retain_count(tags)
    if keep is None:
        reason = f"tag {TAG_RETAIN}={tags.get(TAG_RETAIN)!r} is not a number of versions: nothing deleted"
        ctx.ledger.record_retention(function, {"skipped": reason})
        logger.warning("Version retention skipped", extra={"function": function, "reason": reason})
        return []
    aliases = lambda_ops.aliases(function)
    releases: list[Release] = ctx.ledger.releases(function, limit=HISTORY_DEPTH)
    unfinished = [r for r in releases if not r.is_terminal] + [
        r for r in ctx.ledger.open_releases() if r.function == function
    ]
    live = _live_version(aliases, tags)
    target = rollback_target(releases, live) if live else None
    protected = protected_versions(aliases, unfinished, target.target_version if target else "")
    plan = retention_plan(lambda_ops.published_versions(function), keep, protected)
    deleted: list[str] = []
    for version in plan.delete:
        lambda_ops.delete_version(function, version)
        deleted.append(version)
    if deleted:  # the last clean-up that deleted something stays on record
        ctx.ledger.record_retention(function, {"keep": keep, "deleted": deleted, "protected": plan.protected})
        logger.info(
            "Old versions deleted", extra={"function": function, "deleted": deleted, "kept": plan.protected}
        )
    return deleted


def _live_version(aliases: dict[str, tuple[str, dict[str, float]]], tags: dict[str, str]) -> str:
    name = (tags.get("rollout:alias") or "live").strip()
    return aliases[name][0] if name in aliases else ""
