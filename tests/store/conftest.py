"""The fixtures of the store contract (tests/store/test_contract*.py): a Store on each transport, on each store.

Every contract test runs on the lean transport (HttpStore) and on boto3
(BotoStore), both opened for the same endpoint, against moto (`make test`)
and against Ceph RGW, Swift and SeaweedFS (`make compat`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3s3.store.base import Store
from s3s3.store.boto import BotoStore
from s3s3.store.connect import open_store
from s3s3.store.facts import Facts, store_name
from s3s3.store.http import HttpStore
from tests.helpers import new_bucket
from tests.servers.base import Server
from tests.stores import Opener, endpoint_for

SERVERS = [
    pytest.param("moto", id="moto"),
    pytest.param("ceph", id="ceph", marks=pytest.mark.compat),
    pytest.param("swift", id="swift", marks=pytest.mark.compat),
    pytest.param("seaweedfs", id="seaweedfs", marks=pytest.mark.compat),
]


@pytest.fixture(params=["http", "boto3"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(request: pytest.FixtureRequest, server_name: str) -> Server:
    return request.getfixturevalue(server_name)


@pytest.fixture
def open_on(server: Server, transport: str) -> Iterator[Opener]:
    """Open a Store on the transport under test: for a new bucket, or the one given (which may not exist)."""
    opened: list[Store] = []

    def make(bucket: str | None = None, **options: str) -> Store:
        endpoint = endpoint_for(server, bucket or new_bucket(server, "contract"), **options)
        if transport == "http":
            store = open_store(endpoint)
            assert isinstance(store, HttpStore)
        else:
            store = BotoStore(endpoint, Facts(store_name(endpoint)))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_on: Opener) -> Store:
    """A Store on a bucket of its own."""
    return open_on()
