"""Shared fixtures: a real redis-server and two moto S3 servers on loopback, private ones, a fault proxy,
and the real stores (Ceph, Ceph over TLS, Swift, SeaweedFS) the compat tests run against.

Session-scoped servers are started once, the real stores only when a test asks
for one; every test makes its own buckets and Redis channel names, so tests
never touch data they did not write.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3s3.config import Config
from tests.faults import FaultProxy
from tests.helpers import endpoint_section, next_number
from tests.processes import Proc, spawner
from tests.servers.base import Server
from tests.servers.ceph import start_ceph
from tests.servers.moto import start_moto
from tests.servers.redis import ClusterNodes, RedisServer, SentinelGroup
from tests.servers.swift import start_swift


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A master, its replica and three Sentinels of this test's own (to SIGKILL the master of)."""
    group = SentinelGroup(str(tmp_path / "sentinel"))
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture
def cluster_nodes(tmp_path: Path) -> Iterator[ClusterNodes]:
    """A Redis Cluster of three masters with a replica each, of this test's own (to fail a master over)."""
    nodes = ClusterNodes(str(tmp_path / "cluster"), replicas=1)
    try:
        yield nodes.start()
    finally:
        nodes.stop()


@pytest.fixture(scope="session")
def s3_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_moto(str(tmp_path_factory.mktemp("moto-source")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_dest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_moto(str(tmp_path_factory.mktemp("moto-dest")))
    yield server
    server.stop()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Write an s3s3.ini for these servers and buckets and load it."""

    def make(
        source: tuple[Server, str],
        dests: list[tuple[Server, str]],
        redis_url: str = "redis://127.0.0.1:1/0",
        channel: str | None = None,
        source_extra: dict | None = None,
        dest_extra: dict | None = None,
        pubsub_extra: dict | None = None,
    ) -> Config:
        text = endpoint_section("source", *source, **(source_extra or {}))
        for i, dest in enumerate(dests, start=1):
            text += endpoint_section(f"dest{i}", *dest, **(dest_extra or {}))
        text += f"[pubsub]\nurl = {redis_url}\nchannel = {channel or 'ch-' + uuid.uuid4().hex[:8]}\n"
        text += "".join(f"{k} = {v}\n" for k, v in (pubsub_extra or {}).items())
        path = tmp_path / f"s3s3-{next_number()}.ini"
        path.write_text(text)
        return Config.from_file(path)

    return make


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    """Start an s3s3 command as a process (`spawn("s3s3listen", "--config", path)`); killed at teardown."""
    with spawner() as start:
        yield start


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's AWS settings out of every test."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "S3S3_CONFIG":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """A redis-server of this test's own (to stop, restart, and count s3s3:failed in); AOF on request."""
    servers: list[RedisServer] = []

    def start(persistent: bool = False) -> RedisServer:
        workdir = tmp_path / f"redis-{len(servers)}"
        workdir.mkdir()
        extra = ("--appendonly", "yes", "--appendfsync", "always") if persistent else ()
        server = RedisServer(str(workdir), extra_args=extra).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fault_proxy(s3_dest: Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_dest.endpoint_url).start()
    yield proxy
    proxy.stop()


# ---------------------------------------------------------------- real stores (make compat)
# Each starts once per session, on first use (Ceph and Swift are installed on demand by their harness).


def _start(name: str, factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = factory(str(tmp_path_factory.mktemp(name)))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start("ceph", start_ceph, tmp_path_factory)


@pytest.fixture(scope="session")
def ceph_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second Ceph cluster, over HTTPS with its own CA."""
    yield from _start("ceph-tls", functools.partial(start_ceph, tls=True), tmp_path_factory)


@pytest.fixture(scope="session")
def swift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start("swift", start_swift, tmp_path_factory)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    try:
        from tests.servers.seaweedfs import start_seaweedfs
    except ImportError:
        pytest.skip("no SeaweedFS harness (tests/servers/seaweedfs.py)")
    try:
        server = start_seaweedfs(str(tmp_path_factory.mktemp("seaweedfs")))
    except Exception as e:  # the harness installs weed on demand; without it the pair cannot run
        pytest.skip(f"SeaweedFS did not start: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto(s3_dest: Server) -> Server:
    """AWS, as moto plays it."""
    return s3_dest
