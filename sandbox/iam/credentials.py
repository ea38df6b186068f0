"""Temporary credentials the sandbox hands out for roles, and who a request's credentials stand for.

Lambda gives function code its execution role's temporary credentials in AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN ("Defined runtime environment variables",
https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime);
the session is named after the function. CodeDeploy acts with its deployment group's service role. The
sandbox issues such credentials itself and maps each access key back to its role session.

Any other credentials are the sandbox's operator (the person at the keyboard, the tests' set-up, the
`testing` keys): their calls are not authorised, as if made by an administrator of the account.
A session token the sandbox issued but no longer knows (a previous sandbox run) is refused as AWS
refuses an expired or forged token.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
from dataclasses import dataclass

from sandbox.iam.policy import Principal

TOKEN_PREFIX = "sandbox-session/"  # noqa: S105 - a marker, not a secret
_KEY_ALPHABET = string.ascii_uppercase + "234567"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    principal: Principal

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }

    def boto3_arguments(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


class InvalidToken(Exception):
    """Credentials that look issued by a sandbox but are unknown to this one."""


class CredentialStore:
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self._by_key: dict[str, Credentials] = {}
        self._lock = threading.Lock()

    def issue(self, role_arn: str, session_name: str) -> Credentials:
        """A new set of temporary credentials for a session of `role_arn` (ASIA…: AWS's prefix for
        temporary access keys, "Understanding unique ID prefixes" in the IAM user guide)."""
        key = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        credentials = Credentials(
            access_key_id=key,
            secret_access_key=secrets.token_urlsafe(30),
            session_token=TOKEN_PREFIX + secrets.token_urlsafe(48),
            principal=Principal(self.account_id, role_arn=role_arn, session_name=session_name[:64]),
        )
        with self._lock:
            self._by_key[key] = credentials
        return credentials

    def issued(self, access_key_id: str) -> Credentials | None:
        """The credentials this sandbox issued with that access key, if any (to check a signature)."""
        with self._lock:
            return self._by_key.get(access_key_id)

    def principal_for(self, access_key_id: str | None, session_token: str | None) -> Principal | None:
        """The role session behind these credentials; None for the operator. Raises InvalidToken."""
        with self._lock:
            found = self._by_key.get(access_key_id or "")
        if found is not None:
            if session_token != found.session_token:
                raise InvalidToken(access_key_id)
            return found.principal
        if session_token and session_token.startswith(TOKEN_PREFIX):
            raise InvalidToken(access_key_id)
        return None

    @staticmethod
    def from_headers(authorization: str, query_credential: str | None) -> str | None:
        """The access key id of a SigV4 request (Authorization header, or X-Amz-Credential when presigned)."""
        match = _CREDENTIAL.search(authorization)
        if match:
            return match.group(1)
        if query_credential:
            return query_credential.split("/", 1)[0]
        return None
