"""The one exception the CodeDeploy side raises for an AWS error answer."""

from __future__ import annotations


class CodeDeployError(Exception):
    """An AWS error: the server answers HTTP 400 with {"__type": code, "message": message}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
