"""The release ledger: one DynamoDB table holding releases and one lock item per function.

Items
- release: pk=FN#<function>, sk=REL#<release_id>; GSI `by-deployment` on deployment_id;
  sparse GSI `open-releases` on open_state (set only while a release is not terminal), so the
  reconciler finds unfinished work without scanning.
- lock:    pk=FN#<function>, sk=LOCK; holds the release (and deployment) that owns the function.
- a queued release's start claim: `starting_by`/`starting_until` on its item (rollout.claims), set
  while one start is under way so that no other caller publishes it too.
- a hook's result kept by deployment: pk=DEPLOYMENT#<deployment id>, sk=HOOK#<hook>; written by a
  hook that failed without finding its release (its deployment unreadable, the index behind), recorded
  on the release by the deployment's ending, then deleted.

Every state change is a conditional write against the states it may come from (states.TRANSITIONS),
so duplicate or out-of-order events cannot move a release backwards.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from boto3.dynamodb.conditions import Attr, Key

from rollout import aws
from rollout.appspec import release_created_for
from rollout.errors import TransitionRefused
from rollout.observability import logger
from rollout.states import State, is_terminal, sources_of

BY_DEPLOYMENT_INDEX = "by-deployment"
OPEN_RELEASES_INDEX = "open-releases"
LOCK_SK = "LOCK"
# Names the newest upload (in upload order) that went out for a function (`Ledger._note_out`).
OUT_SK = "OUT"
PUBLISH_LOCK_SK = "PUBLISH"
# Freezes: one item per frozen function (sk FN#<function>) or for every function (sk ALL).
FREEZE_PK = "FREEZE"
FREEZE_ALL = "ALL"
RETENTION_SK = "RETENTION"
# A kept hook result is read by its deployment's ending; deployments run hours at most (two hooks of an
# hour each, and traffic shifted over the deployment configuration's intervals), so two weeks is ample.
KEPT_HOOK_RESULT_SECONDS = 14 * 24 * 3600


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_release_id() -> str:
    """A time-ordered id: sorts by arrival, unique without coordination."""
    return f"{int(time.time() * 1000):013x}{secrets.token_hex(5)}"


@dataclass
class Release:
    """One release as its ledger item holds it: from the upload (or the request) that made it, through
    its state changes, to how it ended."""

    function: str
    release_id: str
    state: State = State.RECEIVED
    bucket: str = ""
    key: str = ""
    object_version: str = ""
    etag: str = ""
    size: int = 0
    # Sorts releases of a function in upload order (see artifacts.Upload.upload_order).
    upload_order: str = ""
    commit: str = ""
    message: str = ""
    author: str = ""
    # What asked for it: "" (an upload), "hotfix" (an upload marked as one) or "rollback"; and who,
    # when a person asked (the caller's AWS identity). Their why is `message`.
    kind: str = ""
    requested_by: str = ""
    # Who asked to stop the release's deployment (`rollout abort`, the dashboard, Slack, a rollback with
    # --abort-current), and when: CodeDeploy's own record of a stop names nobody.
    abort_requested_by: str = ""
    abort_requested_at: str = ""
    alias: str = ""
    deployment_config: str = ""
    code_sha256: str = ""
    current_version: str = ""
    target_version: str = ""
    deployment_id: str = ""
    # Why a release ended as it did: a code for machines, a sentence for people.
    reason_code: str = ""
    reason: str = ""
    # Checks from the artifact's rollout.json, as validated by the deployer.
    checks: dict[str, Any] | None = None
    # Results the hooks record: {"pre_traffic": {...}, "post_traffic": {...}}.
    hook_results: dict[str, Any] = field(default_factory=dict)
    # The approval gate (gates.Gate's record) when the release's checks ask for a person.
    approval: dict[str, Any] | None = None
    # Names of the per-release canary alarms, deleted when the release ends.
    alarms: list[str] = field(default_factory=list)
    # What the operator should know about how the release is deployed, written with DEPLOYING: e.g. a
    # first traffic step its canary alarms cannot act within (canary_alarms.step_outruns_alarms).
    warnings: list[str] = field(default_factory=list)
    received_at: str = ""
    updated_at: str = ""
    deploying_at: str = ""
    completed_at: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    # Milliseconds each step of the start path took in the deployer (rollout.steps), written with DEPLOYING.
    steps: dict[str, Any] = field(default_factory=dict)
    # The start claim of a queued release (rollout.claims): which start publishes and deploys it, and
    # until when (epoch seconds) that claim counts. Set only while a start is under way.
    starting_by: str = ""
    starting_until: float | None = None

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.state)

    @property
    def order(self) -> tuple[str, str]:
        """Upload order: S3's event time and sequencer, else when Rollout received it."""
        return (self.upload_order or self.received_at, self.release_id)

    def to_item(self) -> dict[str, Any]:
        item = {k: _to_dynamo(v) for k, v in asdict(self).items() if v not in ("", None)}
        item["state"] = str(self.state)
        item["pk"] = f"FN#{self.function}"
        item["sk"] = f"REL#{self.release_id}"
        if not self.is_terminal:
            item["open_state"] = str(self.state)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Release:
        known = {f.name for f in fields(cls)}
        data = {k: _from_dynamo(v) for k, v in item.items() if k in known}
        data["state"] = State(data.get("state", State.RECEIVED))
        return cls(**data)

    def to_public(self) -> dict[str, Any]:
        """A JSON-ready view for notifications, the CLI, the dashboard and logs.

        Without lifecycle hook execution ids: whoever holds one (and may invoke a hook or report for
        it) could answer for that execution, so they stay in the ledger."""
        data = asdict(self)
        data["state"] = str(self.state)
        data["hook_results"] = {
            hook: _without_execution_id(result) for hook, result in (self.hook_results or {}).items()
        }
        data["approval"] = _without_execution_id(self.approval) if self.approval is not None else None
        return data


def _without_execution_id(record: Any) -> Any:
    return {k: v for k, v in record.items() if k != "execution_id"} if isinstance(record, dict) else record


class ClaimTaken(NamedTuple):
    """A start claim just written (`Ledger.claim_start`): the release as stored now, and as it was
    before the write (its `starting_by` names the start whose claim this one replaced, if any)."""

    release: Release
    before: Release


class Ledger:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def _table(self) -> Any:
        return aws.table(self.table_name)

    # --- releases -------------------------------------------------------------------------
    def create(self, release: Release) -> Release:
        """Store a new release; a release id is never written twice."""
        stamp = now_iso()
        release.received_at = release.received_at or stamp
        release.updated_at = stamp
        if not release.history:
            release.history = [{"state": str(release.state), "at": stamp}]
        self._table.put_item(Item=release.to_item(), ConditionExpression=Attr("pk").not_exists())
        return release

    def get(self, function: str, release_id: str) -> Release | None:
        item = self._table.get_item(Key=_release_key(function, release_id), ConsistentRead=True).get("Item")
        return Release.from_item(item) if item else None

    def by_deployment(self, deployment_id: str) -> Release | None:
        resp = self._table.query(
            IndexName=BY_DEPLOYMENT_INDEX, KeyConditionExpression=Key("deployment_id").eq(deployment_id)
        )
        # The lock item carries the deployment id too; only release items answer this question.
        items = [i for i in resp.get("Items", []) if str(i.get("sk", "")).startswith("REL#")]
        if not items:
            return None
        # The index is eventually consistent: read the item itself for its current state.
        first = items[0]
        return self.get(first["pk"].removeprefix("FN#"), first["sk"].removeprefix("REL#"))

    def of_deployment(
        self, deployment_id: str, describe: Callable[[str], Mapping[str, Any] | None]
    ) -> Release | None:
        """The release a deployment belongs to; None for a deployment Rollout did not start.

        The by-deployment index answers first. It trails the table (a global secondary index is
        eventually consistent), so an event that follows its deployment closely (CodeDeploy's rollback
        ending a second after the deployment it rolls back, a hook dying a moment after it started) can
        find nothing there; then the deployment's own description (`describe`: GetDeployment's
        deploymentInfo, or None when unreadable) names its release, read by key with a consistent
        read. A release that names no deployment yet (its start died after CreateDeployment) comes
        back with this one, so the state it moves to records which deployment it was. A release that
        names another deployment is not this one's: a description can be copied (by hand, or into a
        second deployment of one release), and that deployment's end must not end the release. Nor is
        CodeDeploy's rollback of a deployment (`appspec.release_created_for`).
        """
        release = self.by_deployment(deployment_id)
        if release is not None:
            return release
        info = describe(deployment_id) or {}
        release_id = release_created_for(info)
        group = str(info.get("deploymentGroupName") or "")
        found = self.get(group, release_id) if release_id and group else None
        if found is None or found.deployment_id not in ("", deployment_id):
            return None
        return replace(found, deployment_id=deployment_id)

    def releases(self, function: str, limit: int = 50) -> list[Release]:
        """The function's releases, newest first (a consistent read: the start path, rollback and
        retention decide on it, and a release recorded a moment ago must be among them)."""
        return self._newest_releases(function, limit)[0]

    def _newest_releases(self, function: str, limit: int) -> tuple[list[Release], bool]:
        """Up to `limit` newest releases by arrival, and whether the function may have more.

        A Query answers at most 1 MB a page (DynamoDB Developer Guide, "Paginating table query
        results"), and releases that carry hook results are large, so pages are followed until `limit`
        releases are read: a caller deciding on "the last N releases" (the version a rollback returns
        to, which retention must keep) gets all N, not the first page's worth."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"FN#{function}") & Key("sk").begins_with("REL#"),
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        while len(items) < limit:
            resp = self._table.query(**kwargs, Limit=limit - len(items))
            items.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return [Release.from_item(i) for i in items], False
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return [Release.from_item(i) for i in items], True

    def newest_out(self, function: str, limit: int = 100) -> Release | None:
        """The newest upload (in upload order) that put, or tried to put, its version behind the alias.

        Read from the `limit` newest releases by arrival. A function with more has releases this read
        did not see (a build that went out behind a hundred rejected uploads, or past a 1 MB page), so
        then the `OUT` item (`_note_out`) is read too: it names the newest release that ever went out.
        """
        releases, more = self._newest_releases(function, limit)
        out = [r for r in releases if r.deploying_at or r.state == State.BOOTSTRAPPED]
        newest = max(out, key=lambda r: r.order, default=None)
        if not more:
            return newest  # every release of the function was read
        noted = self._table.get_item(Key={"pk": f"FN#{function}", "sk": OUT_SK}, ConsistentRead=True)
        item = noted.get("Item") or {}
        order = str(item.get("upload_order") or "")
        if not order or (newest is not None and order <= _order_key(newest)):
            return newest
        release_id = str(item.get("release_id") or "")
        # A newer release went out; one that cannot be read still counts (fail closed), by its order.
        return self.get(function, release_id) or Release(
            function, release_id, upload_order=order.split("\t", 1)[0]
        )

    def _note_out(self, release: Release) -> None:
        """Name `release` in the function's `OUT` item if it is the newest upload to go out so far.

        One conditional write after the release went out (DEPLOYING or BOOTSTRAPPED): an older one
        never replaces a newer. A write that fails is logged, not raised: the release is out either
        way, and `newest_out` still sees it among the newest releases until a hundred more arrive."""
        try:
            self._table.update_item(
                Key={"pk": f"FN#{release.function}", "sk": OUT_SK},
                UpdateExpression="SET #o = :o, #r = :r, #u = :u",
                ConditionExpression="attribute_not_exists(#o) OR #o < :o",
                ExpressionAttributeNames={"#o": "upload_order", "#r": "release_id", "#u": "updated_at"},
                ExpressionAttributeValues={
                    ":o": _order_key(release),
                    ":r": release.release_id,
                    ":u": now_iso(),
                },
            )
        except Exception as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                logger.exception("could not note the release as the newest out")

    def queued(self, function: str, state: State = State.QUEUED) -> list[Release]:
        """The function's queued releases (or those in `state`: HELD), oldest upload first."""
        return self.in_states(function, {state})

    def in_states(self, function: str, states: frozenset[State] | set[State]) -> list[Release]:
        """The function's releases in any of `states`, oldest upload first: one consistent query of
        its partition (the open-releases index lags its table)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"FN#{function}") & Key("sk").begins_with("REL#"),
            "FilterExpression": Attr("state").is_in(sorted(str(state) for state in states)),
            "ConsistentRead": True,
        }
        while True:
            resp = self._table.query(**kwargs)
            items.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return sorted((Release.from_item(i) for i in items), key=lambda r: r.order)

    def open_releases(self, state: State | None = None) -> list[Release]:
        """Releases not yet terminal (optionally in one state), from the sparse index."""
        states = [state] if state else [State.RECEIVED, State.QUEUED, State.HELD, State.DEPLOYING]
        found: list[Release] = []
        for st in states:
            kwargs: dict[str, Any] = {
                "IndexName": OPEN_RELEASES_INDEX,
                "KeyConditionExpression": Key("open_state").eq(str(st)),
            }
            while True:
                resp = self._table.query(**kwargs)
                found.extend(Release.from_item(i) for i in resp.get("Items", []))
                if "LastEvaluatedKey" not in resp:
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return found

    def transition(
        self, release: Release, target: State, only_from: frozenset[State] | None = None, **changes: Any
    ) -> Release:
        """Move a release to `target` if its stored state allows it; raise TransitionRefused if not.

        `only_from` narrows the states it may come from (a failed start must never end a release
        another invocation already deployed); `changes` are other fields written in the same update.
        """
        allowed = sources_of(target) & only_from if only_from is not None else sources_of(target)
        stamp = now_iso()
        values: dict[str, Any] = dict(changes)
        values["state"] = str(target)
        values["updated_at"] = stamp
        if target == State.DEPLOYING:
            values.setdefault("deploying_at", stamp)
        if is_terminal(target):
            values.setdefault("completed_at", stamp)
        entry = {"state": str(target), "at": stamp, **_history_note(changes)}
        update, names, expr_values = _transition_expression(values, target, entry)
        froms = {f":from{i}": str(st) for i, st in enumerate(sorted(allowed))}
        expr_values.update(froms)
        names["#st"] = "state"
        condition = f"#st IN ({', '.join(froms)})" if froms else "attribute_not_exists(#st)"
        try:
            resp = self._table.update_item(
                Key=_release_key(release.function, release.release_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expr_values,
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                raise TransitionRefused(self.get(release.function, release.release_id), target) from exc
            raise
        moved = Release.from_item(resp["Attributes"])
        if target in (State.DEPLOYING, State.BOOTSTRAPPED):
            self._note_out(moved)
        return moved

    def start_deployment(self, release: Release, deployment_id: str, **changes: Any) -> Release:
        """DEPLOYING with `deployment_id`, written to the release and the function's lock in one
        transaction, so the two never disagree about which deployment runs. Raises
        TransitionRefused when the release may no longer move to DEPLOYING."""
        stamp = now_iso()
        values: dict[str, Any] = {
            **changes,
            "deployment_id": deployment_id,
            "state": str(State.DEPLOYING),
            "updated_at": stamp,
            "deploying_at": stamp,
        }
        entry = {"state": str(State.DEPLOYING), "at": stamp, **_history_note(values)}
        update, names, expr_values = _transition_expression(values, State.DEPLOYING, entry)
        froms = {f":from{i}": str(st) for i, st in enumerate(sorted(sources_of(State.DEPLOYING)))}
        names["#st"] = "state"
        # The Table's client takes plain Python values: boto3 serialises them for DynamoDB itself.
        # IAM authorises each item's own action (dynamodb:UpdateItem here), not the transaction:
        # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
        release_update = {
            "TableName": self.table_name,
            "Key": _release_key(release.function, release.release_id),
            "UpdateExpression": update,
            "ConditionExpression": f"#st IN ({', '.join(froms)})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {**expr_values, **froms},
        }
        lock_update = {
            "TableName": self.table_name,
            "Key": {"pk": f"FN#{release.function}", "sk": LOCK_SK},
            "UpdateExpression": "SET #d = :d",
            "ConditionExpression": "#r = :r",
            "ExpressionAttributeNames": {"#d": "deployment_id", "#r": "release_id"},
            "ExpressionAttributeValues": {":d": deployment_id, ":r": release.release_id},
        }
        try:
            self._table.meta.client.transact_write_items(
                TransactItems=[{"Update": release_update}, {"Update": lock_update}]
            )
        except Exception as exc:
            if aws.error_code(exc) != "TransactionCanceledException":
                raise
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or [{}]
            if reasons[0].get("Code") == "ConditionalCheckFailed":
                raise TransitionRefused(
                    self.get(release.function, release.release_id), State.DEPLOYING
                ) from exc
            # The lock is no longer this release's, but its deployment exists: the release must still
            # say so, or nothing would ever settle it.
            return self.transition(release, State.DEPLOYING, deployment_id=deployment_id, **changes)
        started = self.get(release.function, release.release_id)
        if started is None:  # written a moment ago by primary key; a consistent read finds it
            raise TransitionRefused(None, State.DEPLOYING)
        self._note_out(started)
        return started

    def update(self, function: str, release_id: str, only_in: State | None = None, **changes: Any) -> Release:
        """Write fields of an existing release without touching its state; returns it as stored.

        With `only_in`, only while the release is stored in that state: a caller holding an old copy
        must not rewrite a release that moved on (TransitionRefused, with the release as stored)."""
        changes["updated_at"] = now_iso()
        names = {f"#f{i}": k for i, k in enumerate(changes)}
        values = {f":v{i}": _to_dynamo(v) for i, v in enumerate(changes.values())}
        condition = "attribute_exists(pk)"
        if only_in is not None:
            names["#st"] = "state"
            values[":in"] = str(only_in)
            condition += " AND #st = :in"
        try:
            resp = self._table.update_item(
                Key=_release_key(function, release_id),
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(changes))),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if only_in is not None and aws.error_code(exc) == "ConditionalCheckFailedException":
                raise TransitionRefused(self.get(function, release_id), only_in) from exc
            raise
        return Release.from_item(resp["Attributes"])

    def record_hook_result(self, function: str, release_id: str, hook: str, result: dict[str, Any]) -> None:
        """Store one hook's results (checks, canary figures, verdict) under hook_results.<hook>.

        One write: a release is stored with an empty `hook_results` map (`Release.to_item`), so the entry
        is set into it directly. A release stored before releases carried the map gets the map with this
        entry in a second write; a missing release raises ConditionalCheckFailedException."""
        key = _release_key(function, release_id)
        value, stamp = _to_dynamo(result), now_iso()
        entry = {
            "Key": key,
            "UpdateExpression": "SET #hr.#h = :r, #u = :u",
            "ConditionExpression": "attribute_exists(#hr)",
            "ExpressionAttributeNames": {"#hr": "hook_results", "#h": hook, "#u": "updated_at"},
            "ExpressionAttributeValues": {":r": value, ":u": stamp},
        }
        try:
            self._table.update_item(**entry)
            return
        except Exception as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression="SET #hr = :m, #u = :u",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#hr)",
                ExpressionAttributeNames={"#hr": "hook_results", "#u": "updated_at"},
                ExpressionAttributeValues={":m": {hook: value}, ":u": stamp},
            )
        except Exception as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            self._table.update_item(**entry)  # another writer made the map meanwhile (or no release: raises)

    def keep_hook_result(self, deployment_id: str, hook: str, result: dict[str, Any]) -> None:
        """Keep a hook's result under its deployment id, for a release the hook could not find.

        An update, not a put: it creates the item all the same, with the permission the hooks
        already have to record on releases. It expires (the table's TTL, `expires_at`) long after any
        deployment that could read it has ended: one whose release did succeed never reads it."""
        self._table.update_item(
            Key=_kept_hook_result_key(deployment_id, hook),
            UpdateExpression="SET #r = :r, #u = :u, #e = :e",
            ExpressionAttributeNames={"#r": "result", "#u": "updated_at", "#e": "expires_at"},
            ExpressionAttributeValues={
                ":r": _to_dynamo(result),
                ":u": now_iso(),
                ":e": Decimal(int(time.time() + KEPT_HOOK_RESULT_SECONDS)),
            },
        )

    def kept_hook_results(self, deployment_id: str) -> dict[str, dict[str, Any]]:
        """The results hooks kept under `deployment_id` (`keep_hook_result`), by hook (a consistent read:
        a hook reports moments before CodeDeploy ends its deployment)."""
        resp = self._table.query(
            KeyConditionExpression=Key("pk").eq(_kept_hook_result_key(deployment_id, "")["pk"]),
            ConsistentRead=True,
        )
        return {
            str(item["sk"]).removeprefix("HOOK#"): _from_dynamo(item["result"])
            for item in resp.get("Items", [])
            if isinstance(item.get("result"), dict)
        }

    def forget_kept_hook_results(self, deployment_id: str, hooks: list[str]) -> None:
        for hook in hooks:
            self._table.delete_item(Key=_kept_hook_result_key(deployment_id, hook))

    def first_sighting(self, key: str, keep_seconds: int) -> bool:
        """Record `key` (a request's fingerprint); False when it was recorded before (a replay).

        Kept `keep_seconds` (an `expires_at` a TTL may use); an expired record counts as unseen."""
        now = time.time()
        try:
            self._table.put_item(
                Item={"pk": "SEEN", "sk": key, "expires_at": Decimal(int(now + keep_seconds))},
                ConditionExpression=Attr("pk").not_exists() | Attr("expires_at").lt(Decimal(int(now))),
            )
        except Exception as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- approval gates (rollout.gates) ---------------------------------------------------------
    def open_gate(self, function: str, release_id: str, record: dict[str, Any]) -> bool:
        """Store the release's gate; False when the release already has one (a gate opens once)."""
        return self._conditional_gate_write(
            function, release_id, record, "attribute_exists(pk) AND attribute_not_exists(#a)", {}
        )

    def answer_gate(self, function: str, release_id: str, execution_id: str, record: dict[str, Any]) -> bool:
        """Replace an AWAITING gate of `execution_id` with its answer; False when it is no longer
        awaiting (answered, expired) or belongs to another execution: one answer ever counts."""
        return self._conditional_gate_write(
            function,
            release_id,
            record,
            "#a.#s = :awaiting AND #a.#x = :x",
            {":awaiting": "AWAITING", ":x": execution_id},
            {"#s": "status", "#x": "execution_id"},
        )

    def mark_gate_reported(self, function: str, release_id: str, execution_id: str) -> None:
        """CodeDeploy has the gate's verdict (a repeated hook invocation then reports nothing)."""
        self._table.update_item(
            Key=_release_key(function, release_id),
            UpdateExpression="SET #a.#r = :t, #u = :u",
            ConditionExpression="#a.#x = :x",
            ExpressionAttributeNames={
                "#a": "approval",
                "#r": "reported",
                "#x": "execution_id",
                "#u": "updated_at",
            },
            ExpressionAttributeValues={":t": True, ":x": execution_id, ":u": now_iso()},
        )

    def _conditional_gate_write(
        self,
        function: str,
        release_id: str,
        record: dict[str, Any],
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        try:
            self._table.update_item(
                Key=_release_key(function, release_id),
                UpdateExpression="SET #a = :record, #u = :u",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#a": "approval", "#u": "updated_at", **(names or {})},
                ExpressionAttributeValues={":record": _to_dynamo(record), ":u": now_iso(), **values},
            )
        except Exception as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- the start claim of a queued release (rollout.claims) -----------------------------------------
    def claim_start(
        self, function: str, release_id: str, owner: str, until: float, now: float
    ) -> ClaimTaken | None:
        """Claim a QUEUED release for the start `owner`, until `until` (epoch seconds); the release as
        stored and as it was, or None when it is not QUEUED or another start's claim still counts at
        `now`.

        One conditional write, so of two callers only one gets it. Re-entrant for the same owner.
        The item as it was comes back (not as written) so the caller learns, in the same write,
        whether it took over the expired claim of a start that died."""
        try:
            resp = self._table.update_item(
                Key=_release_key(function, release_id),
                UpdateExpression="SET #by = :owner, #until = :until",
                ConditionExpression="#st = :queued AND "
                "(attribute_not_exists(#by) OR #by = :owner OR #until < :now)",
                ExpressionAttributeNames={"#by": "starting_by", "#until": "starting_until", "#st": "state"},
                ExpressionAttributeValues={
                    ":owner": owner,
                    ":until": _epoch(until),
                    ":now": _epoch(now),
                    ":queued": str(State.QUEUED),
                },
                ReturnValues="ALL_OLD",
            )
        except Exception as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        before = Release.from_item(resp["Attributes"])
        claimed = replace(before, starting_by=owner, starting_until=_from_dynamo(_epoch(until)))
        return ClaimTaken(release=claimed, before=before)

    def release_start_claim(self, function: str, release_id: str, owner: str) -> None:
        """Drop the start claim if `owner` still holds it (whatever the release's state now)."""
        try:
            self._table.update_item(
                Key=_release_key(function, release_id),
                UpdateExpression="REMOVE #by, #until",
                ConditionExpression="#by = :owner",
                ExpressionAttributeNames={"#by": "starting_by", "#until": "starting_until"},
                ExpressionAttributeValues={":owner": owner},
            )
        except Exception as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise

    # --- the per-function lock --------------------------------------------------------------
    def acquire_lock(self, function: str, release_id: str) -> bool:
        """Take the function's lock for a release; True if it now holds it (re-entrant)."""
        try:
            self._table.put_item(
                Item={
                    "pk": f"FN#{function}",
                    "sk": LOCK_SK,
                    "function": function,
                    "release_id": release_id,
                    "acquired_at": now_iso(),
                },
                ConditionExpression=Attr("pk").not_exists() | Attr("release_id").eq(release_id),
            )
            return True
        except Exception as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def attach_deployment(self, function: str, release_id: str, deployment_id: str) -> None:
        self._table.update_item(
            Key={"pk": f"FN#{function}", "sk": LOCK_SK},
            UpdateExpression="SET deployment_id = :d",
            ConditionExpression=Attr("release_id").eq(release_id),
            ExpressionAttributeValues={":d": deployment_id},
        )

    def get_lock(self, function: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": f"FN#{function}", "sk": LOCK_SK}, ConsistentRead=True).get(
            "Item"
        )
        return {k: _from_dynamo(v) for k, v in item.items()} if item else None

    def release_lock(self, function: str, release_id: str, acquired_at: str = "") -> bool:
        """Drop the lock if `release_id` holds it (and took it at `acquired_at`, when given: a lock read
        as stale is not dropped if its release took it again since); True if this call released it."""
        condition = Attr("release_id").eq(release_id)
        if acquired_at:
            condition = condition & Attr("acquired_at").eq(acquired_at)
        try:
            self._table.delete_item(
                Key={"pk": f"FN#{function}", "sk": LOCK_SK}, ConditionExpression=condition
            )
            return True
        except Exception as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    # --- the per-function publish lease --------------------------------------------------------
    def acquire_publish_lease(self, function: str, owner: str, seconds: float = 120.0) -> bool:
        """Hold $LATEST of `function` from update to publish; True if `owner` now holds it.

        A lease, not a lock: a deployer that dies mid-publish frees it when it expires.
        """
        now = time.time()
        try:
            self._table.put_item(
                Item={
                    "pk": f"FN#{function}",
                    "sk": PUBLISH_LOCK_SK,
                    "owner": owner,
                    "expires_at": Decimal(str(round(now + seconds, 3))),
                },
                ConditionExpression=Attr("pk").not_exists()
                | Attr("owner").eq(owner)
                | Attr("expires_at").lt(Decimal(str(round(now, 3)))),
            )
            return True
        except Exception as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def release_publish_lease(self, function: str, owner: str) -> None:
        try:
            self._table.delete_item(
                Key={"pk": f"FN#{function}", "sk": PUBLISH_LOCK_SK},
                ConditionExpression=Attr("owner").eq(owner),
            )
        except Exception as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise

    # --- freezes and version retention ---------------------------------------------------------
    def put_freeze(self, scope: str, record: dict[str, Any]) -> None:
        """Freeze `scope` (a function name, or FREEZE_ALL); replaces an earlier freeze of it."""
        sk = FREEZE_ALL if scope == FREEZE_ALL else f"FN#{scope}"
        item = {k: v for k, v in record.items() if v not in ("", None)}
        self._table.put_item(Item={**item, "pk": FREEZE_PK, "sk": sk, "scope": scope})

    def delete_freeze(self, scope: str) -> dict[str, Any] | None:
        """End the freeze of `scope`; the record removed, or None if there was none."""
        sk = FREEZE_ALL if scope == FREEZE_ALL else f"FN#{scope}"
        resp = self._table.delete_item(Key={"pk": FREEZE_PK, "sk": sk}, ReturnValues="ALL_OLD")
        old = resp.get("Attributes")
        return {k: _from_dynamo(v) for k, v in old.items()} if old else None

    def freezes(self) -> list[dict[str, Any]]:
        """Every freeze record (strongly consistent: a hold must see a freeze set a moment ago)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(FREEZE_PK), "ConsistentRead": True}
        while True:
            resp = self._table.query(**kwargs)
            items.extend({k: _from_dynamo(v) for k, v in i.items()} for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def record_retention(self, function: str, record: dict[str, Any]) -> None:
        """What the last version clean-up of `function` deleted and kept, and why."""
        self._table.put_item(
            Item={**_to_dynamo(record), "pk": f"FN#{function}", "sk": RETENTION_SK, "at": now_iso()}
        )

    def functions(self) -> list[str]:
        """Every function with a release in the ledger (a scan, like `locks`: the reconciler's).

        Eventually consistent on purpose: only version retention asks, and a function whose first
        release was written a moment ago has no version of Rollout's to clean up yet; the next run
        finds it. Half the read capacity of a consistent scan of the whole table."""
        names: set[str] = set()
        kwargs: dict[str, Any] = {
            "FilterExpression": Attr("sk").begins_with("REL#"),
            "ProjectionExpression": "#fn",
            "ExpressionAttributeNames": {"#fn": "function"},
        }
        while True:
            resp = self._table.scan(**kwargs)
            names.update(str(i["function"]) for i in resp.get("Items", []) if i.get("function"))
            if "LastEvaluatedKey" not in resp:
                return sorted(names)
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def locks(self) -> list[dict[str, Any]]:
        """Every held lock (the reconciler checks them against CodeDeploy).

        A consistent scan: the reconciler releases a lock that shows no deployment after the grace
        period, and an eventually consistent read could show a lock from before its deployment was
        recorded, or one released a moment ago (DynamoDB Developer Guide, "Read consistency": such a
        read "might not reflect the results of a recently completed write operation")."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"FilterExpression": Attr("sk").eq(LOCK_SK), "ConsistentRead": True}
        while True:
            resp = self._table.scan(**kwargs)
            items.extend({k: _from_dynamo(v) for k, v in i.items()} for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _order_key(release: Release) -> str:
    """`Release.order` as one string that sorts as the tuple does: tab sorts below every character of
    an upload order or a release id."""
    return "\t".join(release.order)


def _release_key(function: str, release_id: str) -> dict[str, str]:
    return {"pk": f"FN#{function}", "sk": f"REL#{release_id}"}


def _kept_hook_result_key(deployment_id: str, hook: str) -> dict[str, str]:
    return {"pk": f"DEPLOYMENT#{deployment_id}", "sk": f"HOOK#{hook}"}


def _transition_expression(
    values: dict[str, Any], target: State, entry: dict[str, Any]
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """SET every value, append `entry` to the history, and keep the sparse open-releases key in step."""
    names = {f"#f{i}": k for i, k in enumerate(values)}
    expr_values = {f":v{i}": _to_dynamo(v) for i, v in enumerate(values.values())}
    sets = [f"#f{i} = :v{i}" for i in range(len(values))]
    names["#history"] = "history"
    expr_values[":entry"] = [_to_dynamo(entry)]
    expr_values[":empty"] = []
    sets.append("#history = list_append(if_not_exists(#history, :empty), :entry)")
    update = "SET " + ", ".join(sets)
    names["#open"] = "open_state"
    if is_terminal(target):
        update += " REMOVE #open"
    else:
        update += ", #open = :open"
        expr_values[":open"] = str(target)
    return update, names, expr_values


def _epoch(seconds: float) -> Decimal:
    return Decimal(str(round(seconds, 3)))


def _history_note(changes: dict[str, Any]) -> dict[str, Any]:
    note = {k: changes[k] for k in ("reason_code", "reason", "deployment_id") if changes.get(k)}
    return note


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return sorted(_from_dynamo(v) for v in value)
    return value
