"""How the deployer reads a target function when IAM, not existence, is what refuses it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout import aws, lambda_ops
from rollout.deadlines import Deadline
from rollout.errors import CodeChanged, OutOfTime, Rejected, UpdateFailed


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
    """UpdateFunctionCode accepted; Lambda still applying it (or failed) at every poll."""

    def __init__(self, status: str = "InProgress") -> None:
        self.status = status
        self.polls = 0

    def update_function_code(self, **_: Any) -> dict[str, Any]:
        return {"CodeSha256": "new-sha", "LastUpdateStatus": "InProgress"}

    def get_function(self, FunctionName: str) -> dict[str, Any]:
        self.polls += 1
        return {
            "Configuration": {"LastUpdateStatus": self.status, "LastUpdateStatusReason": "EniLimitExceeded"}
        }


def test_the_update_waiter_polls_no_longer_than_the_invocation_has_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lam = _SlowToApplyLambda()
    pauses: list[float] = []
    monkeypatch.setattr(aws, "client", lambda service: lam)
    monkeypatch.setattr(lambda_ops, "sleep", pauses.append)
    with pytest.raises(OutOfTime, match="still applying the new code after 20 s"):
        lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1", Deadline(time.monotonic() + 20.5))
    assert lam.polls == 20
    second = lambda_ops.UPDATE_SECOND_POLL - lambda_ops.UPDATE_FIRST_POLL
    assert pauses == [lambda_ops.UPDATE_FIRST_POLL, second] + [1.0] * 18
    assert sum(pauses) <= 20.5


def test_without_an_invocation_deadline_the_waiter_keeps_its_own_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lam = _SlowToApplyLambda(status="Failed")
    monkeypatch.setattr(aws, "client", lambda service: lam)
    monkeypatch.setattr(lambda_ops, "sleep", lambda seconds: None)
    with pytest.raises(UpdateFailed, match="EniLimitExceeded"):
        lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1")
    assert lam.polls == 1  # a failed update is final: no more polls


class _QuickLambda:
    """Lambda applies the code while the waiter sleeps; the poll's configuration is $LATEST's."""

    def __init__(self, latest_sha: str, first: str = "InProgress") -> None:
        self.latest_sha = latest_sha
        self.first = first
        self.calls: list[str] = []

    def update_function_code(self, **_: Any) -> dict[str, Any]:
        self.calls.append("UpdateFunctionCode")
        return {"CodeSha256": "our-sha", "LastUpdateStatus": self.first, "RevisionId": "r1"}

    def get_function(self, FunctionName: str) -> dict[str, Any]:
        self.calls.append("GetFunction")
        configuration = {"LastUpdateStatus": "Successful", "CodeSha256": self.latest_sha, "RevisionId": "r2"}
        return {"Configuration": configuration}


def test_an_update_costs_one_poll_and_publishes_on_the_polled_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lam = _QuickLambda("our-sha")
    monkeypatch.setattr(aws, "client", lambda service: lam)
    monkeypatch.setattr(lambda_ops, "sleep", lambda seconds: None)
    update = lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1")
    assert update == lambda_ops.CodeUpdate(code_sha256="our-sha", revision_id="r2")
    assert lam.calls == ["UpdateFunctionCode", "GetFunction"]


def test_an_update_applied_at_once_is_read_back_without_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    lam = _QuickLambda("our-sha", first="Successful")
    pauses: list[float] = []
    monkeypatch.setattr(aws, "client", lambda service: lam)
    monkeypatch.setattr(lambda_ops, "sleep", pauses.append)
    update = lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1")
    assert update == lambda_ops.CodeUpdate(code_sha256="our-sha", revision_id="r2")
    assert lam.calls == ["UpdateFunctionCode", "GetFunction"] and pauses == []


@pytest.mark.parametrize(
    ("work_seconds", "pauses_left"),
    [(0.03, [lambda_ops.UPDATE_FIRST_POLL - 0.03]), (lambda_ops.UPDATE_FIRST_POLL * 3, [])],
)
def test_work_done_while_lambda_applies_the_update_comes_off_the_first_pause(
    monkeypatch: pytest.MonkeyPatch, work_seconds: float, pauses_left: list[float]
) -> None:
    lam = _QuickLambda("our-sha")
    pauses: list[float] = []
    monkeypatch.setattr(aws, "client", lambda service: lam)
    monkeypatch.setattr(lambda_ops, "sleep", pauses.append)
    readings = iter([10.0, 10.0 + work_seconds])  # lambda_ops' clock, before and after the work

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return next(readings)

    monkeypatch.setattr(lambda_ops, "time", Clock)
    update = lambda_ops.update_code(
        "orders", "bucket", "orders/b.zip", "v1", meanwhile=lambda: lam.calls.append("meanwhile")
    )
    assert update.code_sha256 == "our-sha"
    assert lam.calls == ["UpdateFunctionCode", "meanwhile", "GetFunction"]
    assert pauses == [pytest.approx(p) for p in pauses_left]


def test_code_another_upload_put_on_latest_meanwhile_is_not_taken_for_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lam = _QuickLambda("their-sha")
    monkeypatch.setattr(aws, "client", lambda service: lam)
    monkeypatch.setattr(lambda_ops, "sleep", lambda seconds: None)
    with pytest.raises(CodeChanged, match="their-sha"):
        lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1")


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


class _RefusingUpdate:
    """UpdateFunctionCode refused with Lambda's InvalidParameterValueException and `message`."""

    def __init__(self, message: str) -> None:
        self.message = message

    def update_function_code(self, **_: Any) -> dict[str, Any]:
        error = {"Error": {"Code": "InvalidParameterValueException", "Message": self.message}}
        raise ClientError(error, "UpdateFunctionCode")


@pytest.mark.parametrize(
    ("message", "room"),
    [
        ("Unzipped size must be smaller than 1853 bytes", "its layers take all but 1853 bytes"),
        (
            "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes. "
            "The actual size is 267227776 bytes.",
            "counts the function's layers with its code:",
        ),
    ],
)
def test_code_that_does_not_fit_beside_the_layers_is_rejected_too_large(
    monkeypatch: pytest.MonkeyPatch, message: str, room: str
) -> None:
    monkeypatch.setattr(aws, "client", lambda service: _RefusingUpdate(message))
    with pytest.raises(Rejected) as rejected:
        lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1")
    assert rejected.value.code == "TOO_LARGE"
    assert "262144000 bytes (250 MB) unzipped" in rejected.value.reason
    assert room in rejected.value.reason and message in rejected.value.reason


def test_another_refusal_of_the_package_keeps_lambdas_words(monkeypatch: pytest.MonkeyPatch) -> None:
    message = "Could not unzip uploaded file. Please check your file, then try to upload again."
    monkeypatch.setattr(aws, "client", lambda service: _RefusingUpdate(message))
    with pytest.raises(Rejected) as rejected:
        lambda_ops.update_code("orders", "bucket", "orders/b.zip", "v1")
    assert (rejected.value.code, rejected.value.reason) == (
        "LAMBDA_REFUSED_CODE",
        f"Lambda refused the package: {message}",
    )
