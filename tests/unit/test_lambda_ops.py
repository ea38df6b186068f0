"""How the deployer reads a target function when IAM, not existence, is what refuses it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from rollout import aws, lambda_ops
from rollout.deadlines import Deadline
from rollout.errors import OutOfTime, Rejected, UpdateFailed


class _RefusingLambda:
    def __init__(self, code: str) -> None:
        self.code = code

    def get_function(self, **_: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "GetFunction")


@pytest.mark.parametrize(
    ("code", "reason_code"),
    [("ResourceNotFoundException", "FUNCTION_NOT_FOUND"), ("AccessDeniedException", "FUNCTION_NOT_MANAGED")],
)
def test_a_function_the_deployer_may_not_read_is_rejected(
    monkeypatch: pytest.MonkeyPatch, code: str, reason_code: str
) -> None:
    monkeypatch.setattr(aws, "client", lambda service: _RefusingLambda(code))
    with pytest.raises(Rejected) as rejected:
        lambda_ops.get_managed_function("orders", "Canary10Percent5Minutes")
    assert rejected.value.code == reason_code
    assert "orders" in rejected.value.reason


def test_other_errors_are_not_mistaken_for_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "client", lambda service: _RefusingLambda("ServiceException"))
    with pytest.raises(ClientError):
        lambda_ops.get_managed_function("orders", "Canary10Percent5Minutes")


class _SlowToApplyLambda:
    """UpdateFunctionCode accepted; Lambda still applying it whenever the waiter gives up."""

    def __init__(self, status: str = "InProgress") -> None:
        self.status = status
        self.waiter_configs: list[dict[str, Any]] = []

    def update_function_code(self, **_: Any) -> dict[str, Any]:
        return {"CodeSha256": "new-sha", "LastUpdateStatus": "InProgress"}

    def get_waiter(self, name: str) -> Any:
        assert name == "function_updated_v2"
        lam = self

        class Waiter:
            def wait(self, FunctionName: str, WaiterConfig: dict[str, Any]) -> None:
                lam.waiter_configs.append(WaiterConfig)
                raise WaiterError("FunctionUpdatedV2", "Max attempts exceeded", {})

        return Waiter()

    def get_function_configuration(self, **_: Any) -> dict[str, Any]:
        return {"LastUpdateStatus": self.status, "LastUpdateStatusReason": "EniLimitExceeded"}


def test_the_update_waiter_polls_no_longer_than_the_invocation_has_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lam = _SlowToApplyLambda()
    monkeypatch.setattr(aws, "client", lambda service: lam)
    with pytest.raises(OutOfTime, match="still applying the new code after 20 s"):
        lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1", Deadline(time.monotonic() + 20.5))
    assert lam.waiter_configs == [{"Delay": 1, "MaxAttempts": 20}]


def test_without_an_invocation_deadline_the_waiter_keeps_its_own_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lam = _SlowToApplyLambda(status="Failed")
    monkeypatch.setattr(aws, "client", lambda service: lam)
    with pytest.raises(UpdateFailed, match="EniLimitExceeded"):
        lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1")
    assert lam.waiter_configs == [lambda_ops.UPDATE_WAIT]


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data

    def read(self, *_: Any) -> bytes:
        return self.data


@pytest.mark.parametrize(("status", "code"), [(500, "ServiceException"), (429, "TooManyRequestsException")])
def test_the_check_client_sends_each_invocation_once(status: int, code: str) -> None:
    # botocore would retry both (a 5xx, a throttle); a check that ran must never run twice, and a
    # throttle is retried by the check runner within the hook's deadline, not by the client.
    from botocore.awsrequest import AWSResponse

    client = aws.check_invoke_client()
    sent: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
        return AWSResponse(request.url, status, headers, _Body(b'{"message": "no"}'))

    client.meta.events.register("before-send.lambda.Invoke", answer)
    try:
        with pytest.raises(ClientError) as raised:
            client.invoke(FunctionName="orders", Qualifier="7", Payload=b"{}")
    finally:
        client.meta.events.unregister("before-send.lambda.Invoke", answer)
    assert aws.error_code(raised.value) == code
    assert len(sent) == 1


def test_conflict_retries_pause_only_while_the_invocation_has_time(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(lambda_ops, "sleep", pauses.append)
    calls: list[int] = []

    def conflicting() -> None:
        calls.append(1)
        raise ClientError({"Error": {"Code": "ResourceConflictException", "Message": "pending"}}, "X")

    with pytest.raises(ClientError):
        lambda_ops.retry_conflicts(conflicting, "X")
    assert len(calls) == lambda_ops.CONFLICT_ATTEMPTS and len(pauses) == lambda_ops.CONFLICT_ATTEMPTS - 1

    calls.clear()
    pauses.clear()
    with pytest.raises(ClientError):
        # 0.4 s left: the first pause (0.5 to 1 s) would outlive the invocation, so none is taken.
        lambda_ops.retry_conflicts(conflicting, "X", Deadline(time.monotonic() + 0.4))
    assert (len(calls), pauses) == (1, [])
