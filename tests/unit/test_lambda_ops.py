"""How the deployer reads a target function when IAM, not existence, is what refuses it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout import aws, lambda_ops
from rollout.errors import Rejected


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
