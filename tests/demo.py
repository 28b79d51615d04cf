"""`make demo`: watch s3s3 replicate between two local S3 servers, then tidy up.

Starts a private redis-server and two moto S3 servers on free loopback ports,
writes an s3s3.ini for them, runs the listener, uploads objects to the source
and announces their keys, shows them arriving with matching MD5s, then runs
s3s3bucket to catch an object that was never announced. Everything it started
is stopped at the end.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from tests.servers.base import Server
from tests.servers.moto import start_moto
from tests.servers.redis import RedisServer

BIN = Path(sys.executable).parent
OBJECTS = {
    "photos/2024/cat.jpg": os.urandom(300_000),
    "reports/q1 summary.pdf": os.urandom(50_000),
    "big/archive.tar": os.urandom(20 * 1024 * 1024),  # sent in 8 MiB parts
}
NEVER_ANNOUNCED = ("notes/missed by the listener.txt", b"only s3s3bucket will find me\n")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def write_config(workdir: str, source: Server, dest: Server, redis_url: str) -> Path:
    def section(name: str, server: Server, bucket: str) -> str:
        return (
            f"[{name}]\nendpoint_url = {server.endpoint_url}\naws_access_key_id = {server.access_key}\n"
            f"aws_secret_access_key = {server.secret_key}\nbucket_name = {bucket}\naddressing_style = path\n"
            "verify_md5 = True\n"
        )

    path = Path(workdir) / "s3s3.ini"
    path.write_text(
        section("source", source, "source-bucket")
        + section("dest1", dest, "backup-bucket")
        + f"[pubsub]\nurl = {redis_url}\nchannel = backup\nworkers = 4\n"
    )
    return path


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("demo: timed out waiting; see the listener's log above")
        time.sleep(0.1)


def md5_at(server: Server, bucket: str, key: str) -> str | None:
    try:
        body = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except server.client().exceptions.NoSuchKey:
        return None
    return hashlib.md5(body).hexdigest()


def show(source: Server, dest: Server, keys: list[str]) -> None:
    print(f"{'key':36} {'source MD5':34} {'destination MD5':34}")
    for key in keys:
        src, dst = md5_at(source, "source-bucket", key), md5_at(dest, "backup-bucket", key)
        mark = "ok" if src and src == dst else "MISSING"
        print(f"{key:36} {src or '-':34} {dst or '-':34} {mark}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="s3s3-demo-") as workdir:
        say("starting redis-server and two S3 servers (moto) on loopback")
        started: list = []
        listener = None
        try:
            rds = RedisServer(workdir).start()
            started.append(rds)
            source, dest = start_moto(workdir), start_moto(workdir)
            started += [source, dest]
            source.client().create_bucket(Bucket="source-bucket")
            dest.client().create_bucket(Bucket="backup-bucket")
            config = write_config(workdir, source, dest, rds.url)
            print(f"redis {rds.url}, source {source.endpoint_url}, destination {dest.endpoint_url}")
            print(f"configuration: {config}\n" + config.read_text().replace(source.secret_key, "***"))

            say("starting s3s3listen")
            listener = subprocess.Popen([BIN / "s3s3listen", "--config", str(config)])
            client = redis.Redis.from_url(rds.url)
            wait_for(lambda: client.pubsub_numsub("backup")[0][1] > 0)

            say("uploading objects to the source and announcing them on channel 'backup'")
            for key, data in OBJECTS.items():
                source.client().put_object(Bucket="source-bucket", Key=key, Body=data)
                subprocess.run([BIN / "s3s3", "publish", "--config", str(config), key], check=True)
            wait_for(lambda: all(md5_at(dest, "backup-bucket", k) for k in OBJECTS))
            say("replicated by the listener")
            show(source, dest, list(OBJECTS))

            say("uploading an object nobody announces, then running s3s3bucket")
            key, data = NEVER_ANNOUNCED
            source.client().put_object(Bucket="source-bucket", Key=key, Body=data)
            subprocess.run([BIN / "s3s3bucket", "--config", str(config)], check=True)
            show(source, dest, [*OBJECTS, key])

            ok = all(md5_at(source, "source-bucket", k) == md5_at(dest, "backup-bucket", k) for k in [*OBJECTS, key])
            say("demo finished: every object is at the destination with the same MD5" if ok else "demo FAILED")
            print("Next: the quick start (docs/quickstart.md) sets this up for your own stores; "
                  "docs/index.md lists every page.")
            return 0 if ok else 1
        finally:
            say("stopping everything the demo started")
            if listener is not None:
                listener.terminate()
                listener.wait(30)
            for server in reversed(started):
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
