"""The bad-input corpus through the real artifact deployer on moto: every malformed upload ends
REJECTED with its reason code, the deployer never raises, and nothing is published for it.

The corpus itself (and why each case is refused) is in tests/unit/test_bad_input_corpus.py, which
runs it through the pure rules alone; here each case is an S3 upload and an EventBridge event.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.artifact_deployer.app import lambda_handler
from tests.support.artifacts_world import ArtifactWorld, Uploaded, eventbridge_event, function_zip
from tests.support.aws_stack import StackUnderTest, moto_client
from tests.unit.test_bad_input_corpus import CORPUS, Case

REJECTED_CASES = [case for case in CORPUS if case.code is not None]


def create_target(stack: StackUnderTest, case: Case) -> str:
    function = case.upload.key.partition("/")[0] if "/" in case.upload.key else "orders"
    function = function if function.replace("-", "").replace("_", "").isalnum() else "orders"
    moto_client("lambda").create_function(
        FunctionName=function,
        Runtime=case.upload.runtime,
        Role=stack.function_role_arn,
        Handler=case.upload.handler,
        Code={"ZipFile": function_zip("initial")},
        Tags={"rollout:managed": "true"},
    )
    return function


def upload(world: ArtifactWorld, case: Case) -> Uploaded:
    """The case's bytes under its key; a key S3 itself refuses is announced without an object."""
    try:
        return world.upload(case.upload.key, case.upload.body())
    except (UnicodeEncodeError, ValueError):
        return Uploaded(world.stack.bucket, case.upload.key, "", 0, "")


@pytest.mark.parametrize("case", REJECTED_CASES, ids=[case.id for case in REJECTED_CASES])
def test_every_bad_upload_is_rejected_through_the_deployer_and_publishes_nothing(
    stack: StackUnderTest, lambda_context: Any, case: Case
) -> None:
    world = ArtifactWorld(stack)
    function = create_target(stack, case)
    uploaded = upload(world, case)

    (result,) = lambda_handler(eventbridge_event(uploaded), lambda_context)["results"]

    assert (result["state"], result["reason_code"]) == ("REJECTED", case.code), result
    assert case.phrase in result["reason"]
    assert world.published_versions(function) == [], "nothing is published for a rejected upload"
    assert [n["kind"] for n in stack.notifications()] == ["release.rejected"]
