"""What the in-process moto tests would otherwise pay again in every test: paid once per process.

- botocore's service models. moto's `mock_aws()` replaces boto3's default session each time it
  starts, and every new session gets a new Loader that parses each service's JSON model (and the
  endpoint rulesets) again: about 10 ms per model, for every client the test and the package make.
  botocore shares a session's models between all its clients (and its S3 client edits them in
  place: `/{Bucket}` leaves the request URIs), so every boto3 session of the process may share one
  Loader, as one long-lived default session would in Lambda. Plain botocore sessions keep their own
  Loader: the sandbox reads the models as published to parse requests. Clients, credentials and
  event handlers stay per session.
- moto's SNS signing key. moto signs every message it delivers to an SQS subscriber with a
  2048-bit RSA key it generates for each new subscription (about 0.1 s, once per test). Messages
  are still signed; all subscriptions of the process sign with one key.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3.session
import pytest
from botocore.loaders import Loader, create_loader
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.sns.models import Subscription


class _SearchPaths(list[str]):
    """boto3 appends its own data folder each time it wraps a session: keep one of each."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@functools.cache
def shared_loader(search_path_string: str | None = None) -> Loader:
    """One Loader (and its cache of parsed models) per AWS_DATA_PATH, for every session."""
    loader = create_loader(search_path_string)
    loader._search_paths = _SearchPaths(loader.search_paths)
    return loader


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _subscription_key(_subscription: Any) -> rsa.RSAPrivateKey:
    return _signing_key()


@contextmanager
def paid_once() -> Iterator[None]:
    """While open, new boto3 sessions share `shared_loader` and moto's SNS signs with one key."""
    setup_loader = boto3.session.Session._setup_loader

    def setup_shared_loader(session: boto3.session.Session) -> None:
        botocore_session = session._session
        loader = shared_loader(botocore_session.get_config_variable("data_path"))
        botocore_session.register_component("data_loader", loader)
        setup_loader(session)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boto3.session.Session, "_setup_loader", setup_shared_loader)
        patch.setattr(Subscription, "private_key", _subscription_key)
        yield
