"""s3s3.store.connect: which transport an endpoint gets, and how patient its store is.

The copies' stores ride out a store's bad moment (a connection waited for
10 s, a request tried again with backoff); a connection check's store says
at once what it met (its own connect timeout, one try).
"""

from __future__ import annotations

import pytest

from s3s3.config import Endpoint
from s3s3.store import open_store
from s3s3.store.boto import BotoStore
from s3s3.store.http import HttpStore

pytestmark = pytest.mark.timeout(30)


def endpoint(signature_version: str = "s3v4") -> Endpoint:
    return Endpoint("dest1", "bucket", endpoint_url="http://127.0.0.1:9", access_key="AK", secret_key="SK",
                    signature_version=signature_version)  # fmt: skip


def test_a_lean_store_for_the_copies_keeps_its_patience_and_one_for_a_check_tries_once() -> None:
    # Given an endpoint that takes the lean transport
    # When a store is opened for the copies, and one for a connection check
    copies, check = open_store(endpoint()), open_store(endpoint(), check_timeout=2.5)

    # Then the copies' waits 10 s for a connection and tries a request 5 times; the check's, 2.5 s and once
    assert isinstance(copies, HttpStore) and isinstance(check, HttpStore)
    assert (copies.wire.connect_timeout, copies.wire.tries) == (10.0, 5)
    assert (check.wire.connect_timeout, check.wire.tries) == (2.5, 1)


def test_a_boto3_store_for_the_copies_keeps_its_patience_and_one_for_a_check_tries_once() -> None:
    # Given an endpoint that takes boto3 (SigV2)
    copies, check = open_store(endpoint("s3")), open_store(endpoint("s3"), check_timeout=2.5)

    # Then botocore sends a copy's request up to 5 times, a check's once, with their connect timeouts
    assert isinstance(copies, BotoStore) and isinstance(check, BotoStore)
    for store, timeout, tries in ((copies, 10, 5), (check, 2.5, 1)):
        config = store.client.meta.config
        assert (config.connect_timeout, config.retries["total_max_attempts"]) == (timeout, tries)
