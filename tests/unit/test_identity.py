"""`rollout/identity.py`, `rollout/sts_ops.py` and the proof check in `rollout/approvals.py`: an AWS
approver is whoever STS says signed the proof, never whoever the payload names, and never one of the
stack's own roles (fail closed)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from rollout import approvals, aws, identity, slack_interactions, sts_ops
from rollout.gates import Approver
from tests.support.identity_proofs import ALICE_ARN, signed_proof, sts_answer, sts_refusal

DEPLOYMENT = "d-ABCDEFGH1"
MALLORY = {"kind": "aws", "id": "arn:aws:iam::123456789012:user/mallory"}
# DeploymentActions' ROLLOUT_ROLE_ARNS as CloudFormation resolves it (template.yaml): the stack's roles.
RECONCILER_ROLE = "arn:aws:iam::123456789012:role/rollout-ReconcilerRole-AbC123XyZ"
SLACK_ROLE = "arn:aws:iam::123456789012:role/rollout-SlackInteractionsRole-QwE456RtY"
STACK_ROLES = f"arn:aws:iam::123456789012:role/rollout-HookRole-ZxC789VbN {RECONCILER_ROLE}  {SLACK_ROLE}"
# What STS answers for a proof signed with the Reconciler's credentials (any session name).
RECONCILER_SESSION = (
    "arn:aws:sts::123456789012:assumed-role/rollout-ReconcilerRole-AbC123XyZ/rollout-Reconciler"
)


def refused_code(raw: Any, action: str = "approve", deployment_id: str = DEPLOYMENT) -> str:
    with pytest.raises(identity.ProofRefused) as refused:
        identity.Proof.parse(raw, action, deployment_id)
    return refused.value.code


def test_a_proof_bound_to_this_action_and_deployment_is_accepted() -> None:
    proof = identity.Proof.parse(signed_proof("approve", DEPLOYMENT), "approve", DEPLOYMENT)
    assert proof.body == identity.BODY and "host" not in proof.headers
    assert "x-rollout-action" in proof.headers["authorization"]


def test_missing_and_malformed_proofs_are_refused() -> None:
    good = signed_proof("approve", DEPLOYMENT)
    assert refused_code(None) == identity.NO_PROOF
    assert refused_code("a url") == identity.MALFORMED
    assert refused_code({**good, "body": "Action=AssumeRole&Version=2011-06-15"}) == identity.MALFORMED
    # The host (the endpoint) is DeploymentActions' choice, never the caller's.
    with_host = {**good, "headers": {**good["headers"], "Host": "sts.evil.example"}}
    assert refused_code(with_host) == identity.MALFORMED
    unsigned = {**good, "headers": {k: v for k, v in good["headers"].items() if k != "Authorization"}}
    assert refused_code(unsigned) == identity.MALFORMED
    # HTTP cannot carry it as signed: refused as what it is, not sent on to fail as "STS unreachable".
    for value in ("20260101T000000Z\u4e2d", "20260101T000000Z\u00e9", "20260101T000000Z\x00"):
        not_ascii = {**good, "headers": {**good["headers"], "X-Amz-Date": value}}
        assert refused_code(not_ascii) == identity.MALFORMED


@pytest.mark.parametrize(
    ("action", "deployment_id"),
    [("approve", "d-OTHERONE1"), ("reject", DEPLOYMENT), ("rollback", DEPLOYMENT)],
)
def test_a_proof_bound_to_another_action_or_deployment_is_refused(action: str, deployment_id: str) -> None:
    assert refused_code(signed_proof("approve", DEPLOYMENT), action, deployment_id) == identity.NOT_BOUND


def test_a_binding_header_outside_the_signature_is_refused() -> None:
    # Any signed GetCallerIdentity request (made for something else) with the header added afterwards.
    proof = signed_proof("approve", "d-OTHERONE1")
    proof["headers"][identity.BINDING_HEADER] = identity.binding("approve", DEPLOYMENT)
    proof["headers"]["Authorization"] = proof["headers"]["Authorization"].replace(";x-rollout-action", "")
    assert refused_code(proof) == identity.NOT_BOUND


def test_stss_answer_names_the_approver_and_its_refusal_refuses() -> None:
    assert identity.approver_from(*sts_answer()) == Approver("aws", ALICE_ARN, "AIDAALICE")
    with pytest.raises(identity.ProofRefused) as expired:
        identity.approver_from(*sts_refusal(message="Signature expired: 20200101T000000Z is now earlier"))
    assert expired.value.code == identity.STS_REFUSED and "SignatureDoesNotMatch" in expired.value.reason
    for status, body in ((200, b"not xml"), (200, b"<GetCallerIdentityResponse/>"), (500, b"")):
        with pytest.raises(identity.ProofRefused):
            identity.approver_from(status, body)


class FakeHttp:
    def __init__(self, answer: Any) -> None:
        self.answer, self.sent = answer, []

    def send(self, request: Any) -> Any:
        self.sent.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        status, body = self.answer
        return type("R", (), {"status_code": status, "content": body})()


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> FakeHttp:
    fake = FakeHttp(sts_answer())
    monkeypatch.setattr(sts_ops, "_http", lambda: fake)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    monkeypatch.setenv(identity.ROLLOUT_ROLES_VARIABLE, STACK_ROLES)
    aws.reset_clients()
    yield fake
    aws.reset_clients()


@pytest.fixture
def acted(monkeypatch: pytest.MonkeyPatch) -> list[approvals.ActionRequest]:
    seen: list[approvals.ActionRequest] = []

    def act(_ctx: Any, request: approvals.ActionRequest) -> dict[str, Any]:
        seen.append(request)
        return {"ok": True}

    monkeypatch.setattr(approvals, "act", act)
    monkeypatch.setattr(approvals.ReleaseContext, "from_settings", classmethod(lambda cls, *a, **k: None))
    return seen


def request(action: str = "approve", **extra: Any) -> dict[str, Any]:
    return {"action": action, "deployment_id": DEPLOYMENT, "by": MALLORY, "text": "x", **extra}


def test_a_forged_approver_without_proof_is_refused(http: FakeHttp, acted: list[Any]) -> None:
    for action in ("approve", "reject", "abort", "rollback"):
        answer = approvals.handle(request(action), settings=object())  # type: ignore[arg-type]
        assert answer == {
            "ok": False,
            "refused": "unauthenticated",
            "reason": f"an AWS principal must prove who they are to {action} a deployment",
            "proof": "no_proof",
        }
    assert acted == [] and http.sent == []


def test_the_approver_is_whom_sts_names_not_the_payload(http: FakeHttp, acted: list[Any]) -> None:
    proof = signed_proof(
        "approve", DEPLOYMENT, url="https://sts.eu-west-1.amazonaws.com/", region="eu-west-1"
    )
    answer = approvals.handle(request(proof=proof), settings=object())  # type: ignore[arg-type]
    assert answer == {"ok": True}
    assert acted[0].by == Approver("aws", ALICE_ARN, "AIDAALICE")  # not mallory


def test_the_sts_endpoint_is_never_taken_from_the_payload(http: FakeHttp, acted: list[Any]) -> None:
    proof = signed_proof("approve", DEPLOYMENT, url="https://sts.evil.example/")
    proof["url"] = "https://sts.evil.example/"
    event = request(
        proof=proof, endpoint="https://sts.evil.example/", sts_endpoint="https://sts.evil.example/"
    )
    approvals.handle(event, settings=object())  # type: ignore[arg-type]
    sent = http.sent[0]
    assert sent.url == "https://sts.eu-west-1.amazonaws.com/" and sent.method == "POST"
    assert "host" not in {k.lower() for k in sent.headers}  # urllib3 sets it from our URL
    assert sent.body == identity.BODY.encode()


def test_the_configured_sts_endpoint_is_used(http: FakeHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566")
    aws.reset_clients()
    assert sts_ops.endpoint() == "http://127.0.0.1:4566/"


def test_a_refused_or_unreachable_sts_refuses(http: FakeHttp, acted: list[Any]) -> None:
    proof = signed_proof("reject", DEPLOYMENT)
    http.answer = sts_refusal()
    refused = approvals.handle(request("reject", proof=proof), settings=object())  # type: ignore[arg-type]
    assert refused["refused"] == "unauthenticated" and refused["proof"] == identity.STS_REFUSED
    assert "SignatureDoesNotMatch" in refused["reason"]
    http.answer = EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com/")
    refused = approvals.handle(request("reject", proof=proof), settings=object())  # type: ignore[arg-type]
    assert refused["proof"] == identity.STS_UNREACHABLE and "could not be reached" in refused["reason"]
    assert acted == []


def test_bound_elsewhere_is_refused_before_sts_is_asked(http: FakeHttp, acted: list[Any]) -> None:
    proof = signed_proof("approve", "d-OTHERONE1")
    refused = approvals.handle(request(proof=proof), settings=object())  # type: ignore[arg-type]
    assert refused["proof"] == identity.NOT_BOUND and http.sent == [] and acted == []


def test_rollouts_own_hand_overs_need_no_proof_and_a_slack_claim_needs_slacks_signature(
    http: FakeHttp, acted: list[Any]
) -> None:
    # A Slack user is proven by Slack's signature (tests/unit/test_slack_interactions.py), never by
    # naming them: a payload that only claims one is refused without asking STS.
    slack = {"kind": "slack", "id": "U0APPROVER", "name": "ops"}
    rollout = {"kind": "rollout", "id": "reconciler"}
    claimed = approvals.handle(request(by=slack), settings=object())  # type: ignore[arg-type]
    approvals.handle(request("expire", by=rollout), settings=object())  # type: ignore[arg-type]
    assert claimed["proof"] == slack_interactions.NOT_SIGNED_BY_SLACK
    assert [r.by.kind for r in acted] == ["rollout"] and http.sent == []


# --- Rollout's own roles are not people ------------------------------------------------------------
def refusal_for(arn: str, roles: str | None = STACK_ROLES) -> str | None:
    """The refusal code for the approver STS named, or None when it may act."""
    try:
        identity.RolloutRoles.parse(roles).refuse(Approver("aws", arn, "AROAX:session"))
    except identity.ProofRefused as refused:
        return refused.code
    return None


def test_a_session_of_one_of_the_stacks_roles_is_refused_as_rollout_not_a_person() -> None:
    assert refusal_for(RECONCILER_SESSION) == identity.ROLLOUT_ROLE
    slack = "arn:aws:sts::123456789012:assumed-role/rollout-SlackInteractionsRole-QwE456RtY/rollout-SlackInteractions"
    assert refusal_for(slack) == identity.ROLLOUT_ROLE
    # Whatever the session's name, and in any case: IAM role names are unique whatever their case.
    assert refusal_for(RECONCILER_SESSION.rsplit("/", 1)[0] + "/alice") == identity.ROLLOUT_ROLE
    assert (
        refusal_for(RECONCILER_SESSION.replace("ReconcilerRole", "RECONCILERROLE")) == identity.ROLLOUT_ROLE
    )
    # A role with a path is listed by its full ARN; its sessions name it without the path.
    with_path = "arn:aws:iam::123456789012:role/service-role/rollout-Mover-1"
    assert (
        refusal_for("arn:aws:sts::123456789012:assumed-role/rollout-Mover-1/s", with_path)
        == identity.ROLLOUT_ROLE
    )


def test_people_are_accepted_whatever_role_or_user_they_prove() -> None:
    for person in (
        ALICE_ARN,  # an IAM user
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReleaseManager_0123abcd/alice@example.com",
        "arn:aws:sts::123456789012:assumed-role/rollout-ReconcilerRole-AbC123XyZ-ops/bob",  # another name
        "arn:aws:sts::210987654321:assumed-role/rollout-ReconcilerRole-AbC123XyZ/carol",  # another account
        "arn:aws-cn:sts::123456789012:assumed-role/rollout-ReconcilerRole-AbC123XyZ/dave",  # another partition
        "arn:aws:sts::123456789012:federated-user/erin",
    ):
        assert refusal_for(person) is None, person


@pytest.mark.parametrize(
    "roles",
    [
        None,
        "",
        "   ",
        "rollout-ReconcilerRole-AbC123XyZ",
        f"{RECONCILER_ROLE},{SLACK_ROLE}",
        "arn:aws:iam::1:role/x",
    ],
    ids=["missing", "empty", "blank", "a-name", "comma-separated", "short-account"],
)
def test_without_a_readable_list_of_the_stacks_roles_nobody_is_accepted(roles: str | None) -> None:
    assert refusal_for(ALICE_ARN, roles) == identity.ROLES_UNKNOWN


def test_deployment_actions_refuses_a_proof_signed_with_one_of_the_stacks_roles(
    http: FakeHttp, acted: list[Any]
) -> None:
    http.answer = sts_answer(RECONCILER_SESSION, "AROARECONCILER:rollout-Reconciler")
    for action, text in (("approve", ""), ("reject", "x"), ("abort", ""), ("rollback", "")):
        proof = signed_proof(action, DEPLOYMENT)
        answer = approvals.handle(request(action, proof=proof, text=text), settings=object())  # type: ignore[arg-type]
        assert answer == {
            "ok": False,
            "refused": "unauthenticated",
            "reason": f"{RECONCILER_SESSION} is one of Rollout's own roles, not a person",
            "proof": identity.ROLLOUT_ROLE,
        }
    assert acted == [] and len(http.sent) == 4
    # A person's role session in the same account is accepted.
    person = "arn:aws:sts::123456789012:assumed-role/ReleaseManagers/alice"
    http.answer = sts_answer(person, "AROAPEOPLE:alice")
    answer = approvals.handle(request(proof=signed_proof("approve", DEPLOYMENT)), settings=object())  # type: ignore[arg-type]
    assert answer == {"ok": True} and acted[0].by == Approver("aws", person, "AROAPEOPLE:alice")


def test_deployment_actions_without_the_list_of_its_stacks_roles_refuses_every_aws_principal(
    http: FakeHttp, acted: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(identity.ROLLOUT_ROLES_VARIABLE)
    refused = approvals.handle(request(proof=signed_proof("approve", DEPLOYMENT)), settings=object())  # type: ignore[arg-type]
    assert refused["refused"] == "unauthenticated" and refused["proof"] == identity.ROLES_UNKNOWN
    assert "ROLLOUT_ROLE_ARNS is not set" in refused["reason"]
    monkeypatch.setenv(identity.ROLLOUT_ROLES_VARIABLE, "ReconcilerRole")
    refused = approvals.handle(request(proof=signed_proof("approve", DEPLOYMENT)), settings=object())  # type: ignore[arg-type]
    assert (
        refused["proof"] == identity.ROLES_UNKNOWN and "'ReconcilerRole', not a role ARN" in refused["reason"]
    )
    assert acted == [] and http.sent == []  # STS is not even asked


def test_the_cli_signs_a_proof_deployment_actions_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import approvals as cli_approvals
    from cli.backend import Backend

    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    proof = cli_approvals.identity_proof(Backend("stack", outputs={}), "reject", DEPLOYMENT)
    assert set(proof) == {"headers", "body"}  # headers and a body, never a URL
    assert identity.Proof.parse(proof, "reject", DEPLOYMENT).headers["x-amz-date"]
    assert "/eu-west-1/sts/aws4_request" in proof["headers"]["Authorization"]
    assert refused_code(proof, "approve", DEPLOYMENT) == identity.NOT_BOUND
