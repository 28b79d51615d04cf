"""s3s3.state.version: the listener and the bucket sync refuse a Redis older than 6.2, once it answers.

The passing side runs against the real redis-server of the test session; the
old side against a stand-in that speaks RESP and claims an older version
(tests/servers/old_redis.py).
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from s3s3.errors import RequirementError
from s3s3.state.version import NEEDED, require_redis
from tests.helpers import new_bucket
from tests.processes import BIN, Proc
from tests.servers.base import Server, free_port
from tests.servers.old_redis import OldRedis
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

TOO_OLD = ("Redis 6.0.16 at redis://127.0.0.1:{port}/0 is too old: s3s3 needs Redis 6.2 or later "
           "(XAUTOCLAIM, BLMOVE, XGROUP CREATECONSUMER)")  # fmt: skip


@pytest.fixture
def old_redis() -> Iterator[OldRedis]:
    server = OldRedis("6.0.16").start()
    yield server
    server.stop()


def parts(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_real_redis_server_is_new_enough_and_its_version_is_what_it_says(redis_server: RedisServer) -> None:
    # Given the redis-server the tests run on
    client = redis.Redis.from_url(redis_server.url)

    # When s3s3 checks it
    found = require_redis(client, redis_server.url)

    # Then it passes, with the version the server itself reports
    assert found == client.info("server")["redis_version"]
    assert found is not None and parts(found) >= NEEDED
    client.close()


@pytest.mark.parametrize("version", ["6.2.0", "6.2.14", "7.4.1"])
def test_redis_6_2_and_later_pass(version: str) -> None:
    server = OldRedis(version).start()
    try:
        assert require_redis(redis.Redis.from_url(server.url), server.url) == version
    finally:
        server.stop()


def test_a_redis_older_than_6_2_is_refused_in_one_line_naming_both_versions(old_redis: OldRedis) -> None:
    with pytest.raises(RequirementError) as refused:
        require_redis(redis.Redis.from_url(old_redis.url), old_redis.url)
    assert str(refused.value) == TOO_OLD.format(port=old_redis.port)


def test_a_redis_that_refuses_info_is_let_through_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Given a server that answers INFO with an error, as some managed services do
    server = OldRedis(refuse_info=True).start()
    try:
        # When s3s3 checks it / Then it goes on, and says it could not tell
        with caplog.at_level(logging.WARNING, logger="s3s3.state.version"):
            assert require_redis(redis.Redis.from_url(server.url), server.url) is None
    finally:
        server.stop()
    assert caplog.messages == [f"Cannot tell the version of Redis at {server.url} (INFO: unknown command 'INFO'); "
                               "s3s3 needs 6.2 or later"]  # fmt: skip


def write_config(path: Path, source: Server, dest: Server, url: str) -> Path:
    path.write_text(
        f"[source]\nendpoint_url = {source.endpoint_url}\naws_access_key_id = {source.access_key}\n"
        f"aws_secret_access_key = {source.secret_key}\nbucket_name = {new_bucket(source)}\n"
        f"[dest1]\nendpoint_url = {dest.endpoint_url}\naws_access_key_id = {dest.access_key}\n"
        f"aws_secret_access_key = {dest.secret_key}\nbucket_name = {new_bucket(dest)}\n"
        f"[pubsub]\nurl = {url}\nmode = stream\n"
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("script", ["s3s3listen", "s3s3bucket"])
def test_the_listener_and_the_bucket_sync_exit_2_on_a_redis_older_than_6_2(
    script: str, old_redis: OldRedis, s3_source: Server, s3_dest: Server, tmp_path: Path
) -> None:
    # Given a configuration whose Redis is 6.0
    config = write_config(tmp_path / "s3s3.ini", s3_source, s3_dest, old_redis.url)

    # When the service starts
    done = subprocess.run([str(BIN / script), "--config", str(config)], capture_output=True, text=True, timeout=30)

    # Then it exits 2 with one line naming the version found and the one needed, having copied nothing
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == f"s3s3: error: {TOO_OLD.format(port=old_redis.port)}"
    assert "Traceback" not in done.stderr and "Copied" not in done.stderr


@pytest.mark.slow
def test_a_listener_started_before_redis_checks_its_version_once_it_answers(
    s3_source: Server, s3_dest: Server, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    # Given a listener started while nothing answers on its Redis port
    port = free_port()
    config = write_config(tmp_path / "s3s3.ini", s3_source, s3_dest, f"redis://127.0.0.1:{port}/0")
    listener = spawn("s3s3listen", "--config", str(config))
    listener.wait_for(rf"ERROR s3s3\.listen: Cannot reach Redis at redis://127\.0\.0\.1:{port}/0 \(.+\); "
                      r"retrying in \d+\.\ds")  # fmt: skip

    # When a Redis 6.0 comes up on that port
    server = OldRedis("6.0.16", port=port).start()
    try:
        # Then the listener, at its next try, exits 2 naming the versions
        assert listener.proc.wait(timeout=30) == 2
        assert listener.reader is not None
        listener.reader.join(10)
        assert listener.lines[-1] == f"s3s3: error: {TOO_OLD.format(port=port)}"
    finally:
        server.stop()
    assert not re.search("Traceback", "\n".join(listener.lines))
