"""s3s3.state.connect: every service's Redis client, from [pubsub], over TCP or a Unix socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3s3.config import PubSub
from s3s3.state import connect_redis
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)


def test_a_unix_socket_url_reaches_redis(tmp_path: Path) -> None:
    # Given a redis-server listening on a Unix socket too
    socket = tmp_path / "redis.sock"
    server = RedisServer(str(tmp_path), extra_args=("--unixsocket", str(socket))).start()
    try:
        # When s3s3 connects with a unix:// URL, Then it talks to that server
        client = connect_redis(PubSub(url=f"unix://{socket}?db=0"))
        client.set("s3s3-test:unix", b"1")
        assert client.get("s3s3-test:unix") == b"1"
        client.close()
    finally:
        server.stop()


def test_a_tcp_client_keeps_its_connection_alive_and_gives_up_connecting_after_5_seconds() -> None:
    client = connect_redis(PubSub(url="redis://127.0.0.1:1/0"))
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_keepalive"], kwargs["socket_connect_timeout"]) == (True, 5)
