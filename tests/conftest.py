"""Shared fixtures: a real redis-server and two moto S3 servers on loopback, and helpers.

Session-scoped servers are started once; every test makes its own buckets and
Redis channel names, so tests never touch data they did not write.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from s3s3.config import Config
from tests.processes import Proc, spawner
from tests.servers.base import Server
from tests.servers.moto import start_moto
from tests.servers.redis import RedisServer

_counter = itertools.count()


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05) -> object:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


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


def new_bucket(server: Server, prefix: str = "b") -> str:
    """Create a bucket with a name no other test uses."""
    name = f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=name)
    return name


def endpoint_section(name: str, server: Server, bucket: str, **extra: object) -> str:
    lines = [
        f"[{name}]",
        f"endpoint_url = {server.endpoint_url}",
        f"aws_access_key_id = {server.access_key}",
        f"aws_secret_access_key = {server.secret_key}",
        f"bucket_name = {bucket}",
        "addressing_style = path",
    ]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


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
        path = tmp_path / f"s3s3-{next(_counter)}.ini"
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
