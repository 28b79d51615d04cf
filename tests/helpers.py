"""Helpers the tests share: waiting on a condition, buckets and configuration files, listener
processes, objects at the stores, the state of a stream, and S3 event notifications.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import json
import os
import os.path
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import redis
from botocore.exceptions import ClientError

from s3s3.config import Config
from s3s3.listen.delivery import publish
from tests.faults import FaultProxy
from tests.processes import Proc
from tests.servers.base import Server

MiB = 1024 * 1024
COPIED = r"INFO s3s3\.copy: Copied '.+' to dest\d:\S+: \d+ bytes in \d+\.\d\ds"
WHEN = "2024-05-01T10:00:00.000Z"  # the eventTime of the notifications `record` makes
_counter = itertools.count()


def next_number() -> int:
    """A number no other caller in this process got: for names no other test uses."""
    return next(_counter)


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


def new_bucket(server: Server, prefix: str = "b") -> str:
    """Create a bucket with a name no other test uses."""
    name = f"{prefix}-{next_number()}-{uuid.uuid4().hex[:8]}"
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


def start_listener(spawn: Callable[..., Proc], config: Config, *extra: str) -> Proc:
    """Start s3s3listen and wait until it reads from Redis."""
    listener = spawn("s3s3listen", "--config", config.path, *extra)
    listener.wait_for(r"INFO s3s3\.listen: Connected to \S+, reading .+")
    return listener


def write_config(
    tmp_path: Path,
    source: tuple[Server, str],
    dests: list[tuple[Server, str, dict[str, object]]],
    pubsub: dict[str, object],
    source_extra: dict[str, object] | None = None,
    **sections: dict[str, object],
) -> Config:
    """An s3s3.ini with per-destination options and any other sections ([metrics], [webhook])."""
    text = endpoint_section("source", *source, **(source_extra or {}))
    for i, (server, bucket, extra) in enumerate(dests, start=1):
        text += endpoint_section(f"dest{i}", server, bucket, **extra)
    for name, options in {"pubsub": pubsub, **sections}.items():
        text += f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
    path = tmp_path / f"s3s3-{uuid.uuid4().hex[:8]}.ini"
    path.write_text(text)
    return Config.from_file(path)


def via(server: Server, proxy: FaultProxy) -> Server:
    """The same S3 server, reached through the fault proxy."""
    return Server(server.name, proxy.url, server.access_key, server.secret_key)


def random_objects(prefix: str, count: int, low: int = 64, high: int = 4096) -> dict[str, bytes]:
    return {f"{prefix}{i:04d}.bin": os.urandom(random.randint(low, high)) for i in range(count)}


def put_objects(server: Server, bucket: str, objects: dict[str, bytes]) -> None:
    client = server.client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects.items()))


def listing(server: Server, bucket: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object in the bucket."""
    found: dict[str, tuple[int, str]] = {}
    for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["ETag"].strip('"'))
    return found


def fetched_md5s(server: Server, bucket: str, keys: Iterable[str]) -> dict[str, str]:
    """key -> MD5 of the bytes a GET of it returns."""
    client = server.client()

    def md5(key: str) -> tuple[str, str]:
        return key, hashlib.md5(client.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(md5, list(keys)))


def assert_intact(server: Server, bucket: str, objects: dict[str, bytes], sample: int = 40) -> None:
    """Every object is there with its size and MD5 (the ETag moto computed), a sample read back in full."""
    found = listing(server, bucket)
    assert {k: found.get(k) for k in objects} == {k: (len(v), hashlib.md5(v).hexdigest()) for k, v in objects.items()}
    some = random.sample(sorted(objects), min(sample, len(objects)))
    assert fetched_md5s(server, bucket, some) == md5s({k: objects[k] for k in some})


def md5s(objects: dict[str, bytes]) -> dict[str, str]:
    return {key: hashlib.md5(body).hexdigest() for key, body in objects.items()}


def all_arrived(server: Server, bucket: str, keys: Iterable[str]) -> Callable[[], bool]:
    wanted = set(keys)

    def check() -> bool:
        return wanted <= listing(server, bucket).keys()

    check.__name__ = f"{len(wanted)} keys at {bucket}"
    return check


def announce(client: redis.Redis, mode: str, target: str, messages: Iterable[str | bytes]) -> None:
    """Publish many announcements in one round trip (stream or list mode)."""
    pipe = client.pipeline(transaction=False)
    for message in messages:
        publish(pipe, mode, target, message.encode() if isinstance(message, str) else message)  # type: ignore[arg-type]
    pipe.execute()


def pending(client: redis.Redis, stream: str, group: str = "s3s3") -> int:
    return int(client.xpending(stream, group)["pending"])


def copied_lines(listener: Proc) -> int:
    return len(listener.find(COPIED))


def stream_pubsub(url: str, **extra: object) -> dict[str, object]:
    return {"url": url, "mode": "stream", "stream": f"ev-{uuid.uuid4().hex[:8]}", **extra}


def record(store: str, bucket: str, key: str, name: str = "ObjectCreated:Put", size: int = 1) -> dict[str, Any]:
    """One notification record with the key encoded as `store` encodes it."""
    if store == "aws":
        source, encoded = "aws:s3", quote_plus(key, safe="/")  # AWS: form encoding, "/" left alone
    elif store == "minio":
        source, encoded, name = "minio:s3", quote_plus(key, safe=""), "s3:" + name  # Go's url.QueryEscape
    else:
        source, encoded = "ceph:s3", key  # Ceph RGW: raw
    obj: dict[str, Any] = {"key": encoded, "size": str(size) if store == "ceph" else size, "eTag": "", "sequencer": "1"}
    return {"eventVersion": "2.1", "eventSource": source, "awsRegion": "us-east-1", "eventTime": WHEN,
            "eventName": name, "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj}}  # fmt: skip


def wrapped(wrapper: str, bucket: str, keys: list[str], name: str = "ObjectCreated:Put") -> str:
    """The keys' records in one of the wrappers the stores send."""
    store = wrapper.split("-")[0]
    records = [record(store, bucket, k, name) for k in keys]
    if wrapper == "aws-sns":
        return json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": "arn:aws:sns:x",
                           "Message": json.dumps({"Records": records})})  # fmt: skip
    if wrapper == "minio-webhook":
        return json.dumps({"EventName": "s3:" + name, "Key": f"{bucket}/{keys[0]}", "Records": records})
    if wrapper == "minio-access":
        return json.dumps([{"Event": records, "EventTime": WHEN}])
    return json.dumps({"Records": records})




def client_error(code: str, status: int, operation: str) -> ClientError:
    """The error botocore raises for an S3 answer with this code and status."""
    return ClientError(
        {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class FlakyRedis:
    """Wraps a client; the named commands raise ConnectionError while `broken` is set."""

    def __init__(self, client: Any, *commands: str) -> None:
        self.client, self.commands, self.broken = client, commands, False

    def __getattr__(self, name: str) -> Any:
        if self.broken and name in self.commands:
            raise redis.ConnectionError(f"{name}: Connection closed by server.")
        return getattr(self.client, name)


# --- bytes for the copy tests -------------------------------------------------------------------


def data_of(size: int, seed: int = 0) -> bytes:
    """`size` random bytes, the same ones for the same seed."""
    return random.Random(seed).randbytes(size)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_md5(data: bytes, part: int) -> str:
    """The ETag S3 gives `data` uploaded in parts of `part` bytes: the MD5 of the part MD5s, then `-N`."""
    digests = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


class RequestLog:
    """The requests one moto server saw, from its werkzeug access log (one line per request)."""

    LINE = re.compile(r'"([A-Z]+) (/[^ ]*) HTTP/1\.[01]" (\d{3})')

    def __init__(self, server: Server) -> None:
        port = server.endpoint_url.rsplit(":", 1)[1]
        (self.path,) = glob.glob(f"{server.workdir}/moto-{port}.log")
        self.server = server
        self.start = os.path.getsize(self.path)

    def requests(self, bucket: str) -> list[tuple[str, str]]:
        """(method, path) of every request on `bucket` since this log was opened."""
        # A request of our own that must appear in the log: everything before it is written.
        sentinel = f"sentinel-{uuid.uuid4().hex}"
        with contextlib.suppress(ClientError):  # 404: only the request's log line is wanted
            self.server.client().head_bucket(Bucket=sentinel)
        wait_until(lambda: sentinel in self._text(), timeout=10)
        found = []
        for line in self._text().splitlines():
            match = self.LINE.search(line)
            if match and (match[2] == f"/{bucket}" or match[2].startswith((f"/{bucket}/", f"/{bucket}?"))):
                found.append((match[1], match[2]))
        return found

    def _text(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode("utf-8", "replace")
