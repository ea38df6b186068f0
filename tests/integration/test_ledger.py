"""The ledger against moto's DynamoDB: conditional transitions, the lock, the indexes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout.errors import TransitionRefused
from rollout.ledger import Ledger, Release, new_release_id
from rollout.states import State
from sandbox.dynamodb_consistency import lagging_in_process
from tests.support.aws_stack import LEDGER_TABLE, StackUnderTest


@pytest.fixture
def ledger(stack: StackUnderTest) -> Ledger:
    return Ledger(LEDGER_TABLE)


def _release(ledger: Ledger, function: str = "orders") -> Release:
    return ledger.create(
        Release(function=function, release_id=new_release_id(), bucket="b", key="orders/1.zip")
    )


def test_release_moves_forward_and_records_history(ledger: Ledger) -> None:
    release = _release(ledger)
    deploying = ledger.transition(release, State.DEPLOYING, deployment_id="d-ABCDEFGHI", target_version="2")
    done = ledger.transition(deploying, State.SUCCEEDED)

    stored = ledger.get("orders", release.release_id)
    assert stored is not None
    assert stored.state == State.SUCCEEDED == done.state
    assert [h["state"] for h in stored.history] == ["RECEIVED", "DEPLOYING", "SUCCEEDED"]
    assert stored.deploying_at and stored.completed_at
    assert ledger.by_deployment("d-ABCDEFGHI") == stored


def test_a_terminal_release_never_moves_again(ledger: Ledger) -> None:
    release = ledger.transition(_release(ledger), State.REJECTED, reason="bad zip", reason_code="BAD_ZIP")
    with pytest.raises(TransitionRefused) as refused:
        ledger.transition(release, State.DEPLOYING)
    assert refused.value.release is not None
    assert refused.value.release.state == State.REJECTED


def test_open_releases_index_forgets_finished_ones(ledger: Ledger) -> None:
    queued = ledger.transition(_release(ledger), State.QUEUED)
    other = _release(ledger, "billing")
    assert {r.release_id for r in ledger.open_releases(State.QUEUED)} == {queued.release_id}
    ledger.transition(queued, State.SUPERSEDED)
    assert ledger.open_releases(State.QUEUED) == []
    assert [r.release_id for r in ledger.open_releases()] == [other.release_id]


def test_lock_admits_one_release_per_function(ledger: Ledger) -> None:
    assert ledger.acquire_lock("orders", "r1")
    assert ledger.acquire_lock("orders", "r1"), "the holder may take it again"
    assert not ledger.acquire_lock("orders", "r2")
    assert ledger.acquire_lock("billing", "r2"), "functions lock independently"
    ledger.attach_deployment("orders", "r1", "d-AAAAAAAAA")
    assert ledger.get_lock("orders") == {
        "pk": "FN#orders",
        "sk": "LOCK",
        "function": "orders",
        "release_id": "r1",
        "deployment_id": "d-AAAAAAAAA",
        "acquired_at": ledger.get_lock("orders")["acquired_at"],  # type: ignore[index]
    }
    assert not ledger.release_lock("orders", "r2"), "only the holder releases"
    assert ledger.release_lock("orders", "r1")
    assert ledger.acquire_lock("orders", "r2")
    assert {lock["function"] for lock in ledger.locks()} == {"orders", "billing"}


def test_hook_results_are_kept_per_hook(ledger: Ledger) -> None:
    release = _release(ledger)
    ledger.record_hook_result(
        "orders", release.release_id, "pre_traffic", {"verdict": "Succeeded", "p99": 1.5}
    )
    ledger.record_hook_result("orders", release.release_id, "post_traffic", {"verdict": "Failed"})
    stored = ledger.get("orders", release.release_id)
    assert stored is not None
    assert stored.hook_results == {
        "pre_traffic": {"verdict": "Succeeded", "p99": 1.5},
        "post_traffic": {"verdict": "Failed"},
    }


@pytest.fixture
def writes(ledger: Ledger) -> Iterator[list[str]]:
    """The ledger's UpdateItem calls during the test (its Table's client, shared by every Ledger here)."""
    seen: list[str] = []
    events = ledger._table.meta.client.meta.events

    def count(**_: Any) -> None:
        seen.append("UpdateItem")

    events.register("before-call.dynamodb.UpdateItem", count, unique_id="test-ledger-writes")
    yield seen
    events.unregister("before-call.dynamodb.UpdateItem", unique_id="test-ledger-writes")


def test_a_hook_result_is_one_write(ledger: Ledger, writes: list[str]) -> None:
    release = _release(ledger)
    writes.clear()

    ledger.record_hook_result("orders", release.release_id, "pre_traffic", {"verdict": "Succeeded"})
    ledger.record_hook_result("orders", release.release_id, "pre_traffic", {"verdict": "Succeeded", "r": 1})

    assert writes == ["UpdateItem", "UpdateItem"]
    stored = ledger.get("orders", release.release_id)
    assert stored is not None and stored.hook_results == {"pre_traffic": {"verdict": "Succeeded", "r": 1}}


def test_a_release_stored_without_the_map_still_gets_its_hook_results(ledger: Ledger) -> None:
    release = _release(ledger)
    ledger._table.update_item(Key=_key(release), UpdateExpression="REMOVE hook_results")

    ledger.record_hook_result("orders", release.release_id, "pre_traffic", {"verdict": "Succeeded"})
    ledger.record_hook_result("orders", release.release_id, "post_traffic", {"verdict": "Failed"})

    stored = ledger.get("orders", release.release_id)
    assert stored is not None
    assert stored.hook_results == {
        "pre_traffic": {"verdict": "Succeeded"},
        "post_traffic": {"verdict": "Failed"},
    }


def test_a_hook_result_for_a_missing_release_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ClientError) as refused:
        ledger.record_hook_result("orders", new_release_id(), "pre_traffic", {"verdict": "Failed"})
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert ledger.releases("orders") == []


def _key(release: Release) -> dict[str, str]:
    return {"pk": f"FN#{release.function}", "sk": f"REL#{release.release_id}"}


def test_only_short_lived_records_expire_and_releases_never_do(ledger: Ledger) -> None:
    """The table's TTL deletes items by `expires_at` (template.yaml): a kept hook result, a request's
    fingerprint and a publish lease carry one; a release, its lock and the OUT item, through a whole
    life, never do."""
    import time

    release = ledger.transition(_release(ledger), State.QUEUED)
    assert ledger.claim_start(
        "orders", release.release_id, "start-1", until=time.time() + 60, now=time.time()
    )
    assert ledger.acquire_lock("orders", release.release_id)
    release = ledger.start_deployment(ledger.get("orders", release.release_id), "d-1", target_version="2")
    ledger.record_hook_result("orders", release.release_id, "pre_traffic", {"verdict": "Succeeded"})
    ledger.transition(ledger.get("orders", release.release_id), State.SUCCEEDED)
    ledger.keep_hook_result("d-2", "post_traffic", {"verdict": "Failed"})
    assert ledger.first_sighting("request-1", keep_seconds=300)
    assert ledger.acquire_publish_lease("orders", "r1", seconds=60)

    items = ledger._table.scan(ConsistentRead=True)["Items"]
    expiring = {(i["pk"], i["sk"]) for i in items if "expires_at" in i}
    assert expiring == {
        ("DEPLOYMENT#d-2", "HOOK#post_traffic"),
        ("SEEN", "request-1"),
        ("FN#orders", "PUBLISH"),
    }
    kept = next(i for i in items if i["pk"] == "DEPLOYMENT#d-2")
    assert kept["expires_at"] > time.time() + 7 * 24 * 3600, "long after its deployment could read it"


def test_queued_lists_oldest_first(ledger: Ledger) -> None:
    first = ledger.transition(_release(ledger), State.QUEUED)
    second = ledger.transition(_release(ledger), State.QUEUED)
    assert [r.release_id for r in ledger.queued("orders")] == [first.release_id, second.release_id]
    assert [r.release_id for r in ledger.releases("orders")][:2] == [second.release_id, first.release_id]


def test_the_newest_releases_are_all_read_however_large_they_are(ledger: Ledger) -> None:
    """A Query page stops at 1 MB: twelve releases of ~100 KB each (long hook results) span two pages,
    and "the last 50 releases" (where rollback and retention find the version to return to) must hold
    all twelve, not the first page's nine."""
    made = [
        ledger.update("orders", _release(ledger).release_id, reason="x" * 100_000).release_id
        for _ in range(12)
    ]
    assert [r.release_id for r in ledger.releases("orders", limit=50)] == made[::-1]
    assert [r.release_id for r in ledger.releases("orders", limit=10)] == made[::-1][:10]


def test_the_unfinished_releases_of_a_function_come_from_one_read(ledger: Ledger) -> None:
    from rollout.states import OPEN

    queued = ledger.transition(_release(ledger), State.QUEUED)
    held = ledger.transition(_release(ledger), State.HELD)
    ledger.transition(ledger.transition(_release(ledger), State.DEPLOYING), State.SUCCEEDED)
    received = _release(ledger)
    found = {r.release_id for r in ledger.in_states("orders", OPEN)}
    assert found == {queued.release_id, held.release_id, received.release_id}


def test_a_deployment_is_found_while_the_lock_names_it_too(ledger: Ledger) -> None:
    release = _release(ledger)
    assert ledger.acquire_lock("orders", release.release_id)
    ledger.attach_deployment("orders", release.release_id, "d-LOCKED001")
    ledger.transition(release, State.DEPLOYING, deployment_id="d-LOCKED001")
    found = ledger.by_deployment("d-LOCKED001")
    assert found is not None
    assert found.release_id == release.release_id


def test_publish_lease_admits_one_upload_at_a_time_and_expires(ledger: Ledger) -> None:
    assert ledger.acquire_publish_lease("orders", "r1", seconds=60)
    assert ledger.acquire_publish_lease("orders", "r1", seconds=60), "the holder may renew it"
    assert not ledger.acquire_publish_lease("orders", "r2", seconds=60)
    assert ledger.acquire_publish_lease("billing", "r2", seconds=60), "functions lease independently"
    ledger.release_publish_lease("orders", "r2")  # not the holder: nothing happens
    assert not ledger.acquire_publish_lease("orders", "r2", seconds=60)
    ledger.release_publish_lease("orders", "r1")
    assert ledger.acquire_publish_lease("orders", "r2", seconds=-1), "free once released"
    assert ledger.acquire_publish_lease("orders", "r3", seconds=60), "an expired lease is taken over"
    assert ledger.get_lock("orders") is None, "the lease is not the deployment lock"


def test_starting_a_deployment_writes_it_to_the_release_and_the_lock_together(ledger: Ledger) -> None:
    release = _release(ledger)
    assert ledger.acquire_lock("orders", release.release_id)

    started = ledger.start_deployment(release, "d-TOGETHER1", current_version="1")

    assert (started.state, started.deployment_id, started.current_version) == (
        State.DEPLOYING,
        "d-TOGETHER1",
        "1",
    )
    assert [h["state"] for h in started.history] == ["RECEIVED", "DEPLOYING"]
    assert (ledger.get_lock("orders") or {})["deployment_id"] == "d-TOGETHER1"


def test_a_refused_start_changes_neither_the_release_nor_the_lock(ledger: Ledger) -> None:
    release = ledger.transition(_release(ledger), State.REJECTED, reason="bad", reason_code="UNSAFE_ZIP")
    assert ledger.acquire_lock("orders", release.release_id)

    with pytest.raises(TransitionRefused):
        ledger.start_deployment(release, "d-REFUSED01")

    assert "deployment_id" not in (ledger.get_lock("orders") or {})
    stored = ledger.get("orders", release.release_id)
    assert stored is not None and stored.state == State.REJECTED and not stored.deployment_id


def test_a_start_whose_lock_moved_on_still_records_the_deployment(ledger: Ledger) -> None:
    release = _release(ledger)
    assert ledger.acquire_lock("orders", "someone-else")

    started = ledger.start_deployment(release, "d-NOLOCK001")

    assert (started.state, started.deployment_id) == (State.DEPLOYING, "d-NOLOCK001")
    assert "deployment_id" not in (ledger.get_lock("orders") or {})


def test_a_queued_release_is_claimed_by_one_start_at_a_time_until_the_claim_expires(ledger: Ledger) -> None:
    queued = ledger.transition(_release(ledger), State.QUEUED)
    function, release_id = "orders", queued.release_id

    claimed = ledger.claim_start(function, release_id, "a", until=200.0, now=100.0)
    assert claimed is not None
    assert (claimed.release.starting_by, claimed.release.starting_until) == ("a", 200.0)
    assert claimed.before.starting_by == "", "nobody's claim was replaced"
    assert claimed.release == ledger.get(function, release_id), "the release as stored"
    assert ledger.claim_start(function, release_id, "b", until=300.0, now=150.0) is None
    assert ledger.claim_start(function, release_id, "a", until=250.0, now=150.0) is not None, "re-entrant"
    taken_over = ledger.claim_start(function, release_id, "b", until=400.0, now=251.0)
    assert taken_over is not None and taken_over.release.starting_by == "b", "an expired claim is taken over"
    assert (taken_over.before.starting_by, taken_over.before.starting_until) == ("a", 250.0), "whose it was"

    ledger.release_start_claim(function, release_id, "a")  # no longer a's: nothing happens
    assert (ledger.get(function, release_id) or queued).starting_by == "b"
    ledger.release_start_claim(function, release_id, "b")
    released = ledger.get(function, release_id)
    assert released is not None and (released.starting_by, released.starting_until) == ("", None)


def test_only_a_queued_release_can_be_claimed(ledger: Ledger) -> None:
    received = _release(ledger)
    held = ledger.transition(_release(ledger), State.HELD)

    assert ledger.claim_start("orders", received.release_id, "a", until=200.0, now=100.0) is None
    assert ledger.claim_start("orders", held.release_id, "a", until=200.0, now=100.0) is None
    assert ledger.claim_start("orders", "never-recorded", "a", until=200.0, now=100.0) is None


def test_a_lock_read_as_stale_is_not_released_once_its_release_took_it_again(ledger: Ledger) -> None:
    assert ledger.acquire_lock("orders", "r1")
    read = (ledger.get_lock("orders") or {})["acquired_at"]
    ledger._table.update_item(  # r1 takes it again (a later start): the lock's time changes
        Key={"pk": "FN#orders", "sk": "LOCK"},
        UpdateExpression="SET acquired_at = :t",
        ExpressionAttributeValues={":t": "2099-01-01T00:00:00.000Z"},
    )

    assert not ledger.release_lock("orders", "r1", acquired_at=read)
    assert ledger.get_lock("orders") is not None
    assert ledger.release_lock("orders", "r1", acquired_at="2099-01-01T00:00:00.000Z")


def test_every_read_the_control_plane_decides_on_sees_a_write_made_a_moment_ago(ledger: Ledger) -> None:
    # DynamoDB's eventually consistent reads "might not reflect the results of a recently completed
    # write operation" (Developer Guide, "Read consistency"); here every such read is a minute behind.
    with lagging_in_process(gsi_lag=0, eventual_read_lag=60):
        release = ledger.transition(_release(ledger), State.QUEUED)
        assert ledger.acquire_lock("orders", release.release_id)
        ledger.attach_deployment("orders", release.release_id, "d-ABCDEFGHI")
        ledger.put_freeze("orders", {"by": "ops", "why": "incident"})

        assert ledger.get("orders", release.release_id) == release
        assert ledger.releases("orders") == [release]
        assert ledger.queued("orders") == [release]
        assert (ledger.get_lock("orders") or {}).get("deployment_id") == "d-ABCDEFGHI"
        assert [(lock["release_id"], lock.get("deployment_id")) for lock in ledger.locks()] == [
            (release.release_id, "d-ABCDEFGHI")
        ]
        assert [freeze["scope"] for freeze in ledger.freezes()] == ["orders"]
