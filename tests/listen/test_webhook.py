"""`s3s3 webhook` end to end: a store POSTs its notification, Redis holds it, a listener copies the object.

Real processes throughout: `s3s3 webhook`, `s3s3listen` in stream mode, a
redis-server with an append-only file (killed and started again), moto S3.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.helpers import (
    all_arrived,
    assert_intact,
    listing,
    new_bucket,
    put_objects,
    start_listener,
    stream_pubsub,
    wait_until,
    wrapped,
    write_config,
)
from tests.processes import BIN, Proc
from tests.servers.base import Server, free_port
from tests.servers.redis import RedisServer
from tests.servers.tls import make_self_signed_ca

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

TOKEN = "tok-3f9c2a71d8e64b05"


def post(
    url: str, body: str | bytes, headers: dict[str, str] | None = None, ca: str | None = None
) -> tuple[int, str]:
    """POST like a store does (over HTTPS trusting the CA `ca`); return (status, body text)."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    context = ssl.create_default_context(cafile=ca) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def kill(server: RedisServer) -> None:
    """SIGKILL redis-server: no shutdown save; only what the append-only file holds survives."""
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    server.proc = None


def test_given_s3s3_webhook_and_a_listener_when_stores_post_notifications_then_objects_arrive_and_nothing_is_lost(
    s3_source: Server,
    s3_dest: Server,
    private_redis: Callable[..., RedisServer],  # noqa: F811
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given `s3s3 webhook` with a token, and a stream-mode listener, on a Redis with an append-only file
    server = private_redis(persistent=True)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    objects = {"ceph/photo 1+2.jpg": b"ceph bytes" * 50, "minio/report é.pdf": b"minio bytes" * 70,
               "after/restart.txt": b"sent again once Redis was back"}  # fmt: skip
    put_objects(s3_source, src, objects)
    port = free_port()
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], stream_pubsub(server.url),
                          webhook={"port": port, "token": TOKEN})  # fmt: skip
    hook = spawn("s3s3", "webhook", "-v", "--config", config.path)
    hook.wait_for(rf"INFO s3s3\.listen\.webhook: Webhook listening on http://127\.0\.0\.1:{port}, "
                  rf"handing notifications to stream '{config.pubsub.stream}' \(group 's3s3'\)")  # fmt: skip
    listener = start_listener(spawn, config)
    url = f"http://127.0.0.1:{port}/"

    # When Ceph RGW posts (token in the push-endpoint's query) and MinIO posts (token as a bearer)
    ceph = post(f"{url}?token={TOKEN}", wrapped("ceph-records", src, ["ceph/photo 1+2.jpg"]))
    minio = post(url, wrapped("minio-webhook", src, ["minio/report é.pdf"]), {"Authorization": f"Bearer {TOKEN}"})

    # Then the webhook accepts both, and the listener copies both objects intact
    assert ceph == (200, "accepted\n") and minio == (200, "accepted\n")
    wait_until(all_arrived(s3_dest, dst, ["ceph/photo 1+2.jpg", "minio/report é.pdf"]), timeout=20)
    assert_intact(s3_dest, dst, {k: v for k, v in objects.items() if not k.startswith("after/")})

    # And a wrong or missing token is refused with 401, a bad body with 400 and the reason
    body = wrapped("ceph-records", src, ["ceph/photo 1+2.jpg"])
    assert post(f"{url}?token=wrong", body) == (401, "missing or wrong token\n")
    assert post(url, body) == (401, "missing or wrong token\n")
    assert post(url, body, {"Authorization": "Bearer nope"}) == (401, "missing or wrong token\n")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert post(url, '{"Records": []}', auth) == (400, "Records must be a non-empty list, not []\n")
    assert post(url, wrapped("minio-records", "elsewhere", ["x"]), auth) == (
        400, f"event for bucket 'elsewhere', not the source bucket {src!r}\n")
    assert post(url, b"\xff\xfe", auth) == (400, "not UTF-8 at byte 0: b'\\xff\\xfe'\n")

    # When Redis is killed, then the webhook answers 5xx, so the store keeps the notification
    kill(server)
    late = wrapped("minio-access", src, ["after/restart.txt"])
    status, text = post(url, late, auth)
    assert status == 503 and text == "Redis is unavailable; send it again later\n"

    # When Redis is back and the store sends it again (stores retry until a 2xx)
    server.start()
    client = redis.Redis.from_url(server.url)

    def resent() -> bool:
        return post(url, late, auth)[0] == 200

    wait_until(resent, timeout=20, interval=0.5)

    # Then the object arrives; what Redis held before the kill is still there, and nothing is left pending
    wait_until(all_arrived(s3_dest, dst, objects), timeout=40)
    assert_intact(s3_dest, dst, objects)
    wait_until(lambda: client.xpending(config.pubsub.stream, "s3s3")["pending"] == 0, timeout=20)
    assert client.xlen(config.pubsub.stream) >= 3
    assert sorted(listing(s3_dest, dst)) == sorted(objects)

    # And the token never appears in what either process logged
    assert hook.find(r"ERROR s3s3\.listen\.webhook: Webhook could not hand a notification to Redis: .+")
    assert hook.find(r"WARNING s3s3\.listen\.webhook: Webhook rejected a notification from 127\.0\.0\.1: .+")
    assert all(TOKEN not in line for line in hook.lines + listener.lines), [x for x in hook.lines if TOKEN in x]
    assert hook.alive() and listener.alive()
    client.close()


def test_given_s3s3_webhook_when_it_gets_a_notification_it_cannot_use_then_nothing_reaches_redis(
    s3_source: Server,
    private_redis: Callable[..., RedisServer],  # noqa: F811
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given `s3s3 webhook` without a token
    server = private_redis()
    src = new_bucket(s3_source)
    port = free_port()
    dests = [(s3_source, new_bucket(s3_source), {})]
    config = write_config(tmp_path, (s3_source, src), dests, stream_pubsub(server.url), webhook={"port": port})
    hook = spawn("s3s3", "webhook", "--config", config.path)
    hook.wait_for(r"INFO s3s3\.listen\.webhook: Webhook listening on .+")
    url = f"http://127.0.0.1:{port}/"

    # When it gets the AWS test event, unknown JSON, an unknown event, a bare key and JSON cut short
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": src})
    answers = [post(url, test_event), post(url, '{"hello": "world"}'),
               post(url, wrapped("aws-records", src, ["k"], "ObjectRestore:Completed")),
               post(url, "path/to/key"), post(url, '{"Records": [{"eventSource": "aws:s3"')]  # fmt: skip

    # Then it answers each as it deserves, and the stream stays empty
    assert answers == [
        (200, "ignored (test event)\n"),
        (400, "unknown JSON message shape: '{\"hello\": \"world\"}'\n"),
        (400, "unknown event 'ObjectRestore:Completed': only ObjectCreated:* and ObjectRemoved:* count\n"),
        (400, "not a JSON event notification\n"),
        (400, "broken JSON (Expecting ',' delimiter): '{\"Records\": [{\"eventSource\": \"aws:s3\"'\n"),
    ]
    client = redis.Redis.from_url(server.url)
    assert client.exists(config.pubsub.stream) == 0
    client.close()


def test_given_s3s3_webhook_with_a_tls_certificate_when_a_store_posts_over_https_then_the_object_is_copied(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a certificate for 127.0.0.1 signed by a CA made here, `s3s3 webhook` serving it, and a listener
    ca, cert, key = make_self_signed_ca(str(tmp_path))
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    put_objects(s3_source, src, {"secure/report.pdf": b"sent over TLS" * 40})
    port = free_port()
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], stream_pubsub(redis_server.url),
                          webhook={"port": port, "token": TOKEN, "tls_cert": cert, "tls_key": key})  # fmt: skip
    hook = spawn("s3s3", "webhook", "--config", config.path)
    hook.wait_for(rf"INFO s3s3\.listen\.webhook: Webhook listening on https://127\.0\.0\.1:{port}, .+")
    start_listener(spawn, config)
    url = f"https://127.0.0.1:{port}/"
    body = wrapped("minio-webhook", src, ["secure/report.pdf"])

    # When a store that trusts the CA posts a notification, its token in the header
    answer = post(url, body, {"Authorization": f"Bearer {TOKEN}"}, ca=ca)

    # Then it is accepted over HTTPS and the listener copies the object
    assert answer == (200, "accepted\n")
    wait_until(all_arrived(s3_dest, dst, ["secure/report.pdf"]), timeout=20)
    assert_intact(s3_dest, dst, {"secure/report.pdf": b"sent over TLS" * 40})

    # And a client that does not trust the CA, or speaks plain HTTP, gets no answer: each costs one warning line
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        post(url, body, {"Authorization": f"Bearer {TOKEN}"}, ca=None)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        post(f"http://127.0.0.1:{port}/", body, {"Authorization": f"Bearer {TOKEN}"})
    hook.wait_for(r"WARNING s3s3\.listen\.webhook: Webhook dropped a connection from 127\.0\.0\.1: .+", count=2)
    assert post(url, body, {"Authorization": f"Bearer {TOKEN}"}, ca=ca) == (200, "accepted\n")
    assert hook.alive() and not hook.find(r".*Traceback.*")
    assert all(TOKEN not in line for line in hook.lines)


def test_given_a_tls_key_that_does_not_go_with_the_certificate_then_s3s3_webhook_exits_2_naming_the_option(
    s3_source: Server, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Given a certificate whose key is some other file (here: the CA's certificate)
    ca, cert, _key = make_self_signed_ca(str(tmp_path))
    src = new_bucket(s3_source)
    config = write_config(tmp_path, (s3_source, src), [(s3_source, new_bucket(s3_source), {})],
                          stream_pubsub(redis_server.url),
                          webhook={"port": free_port(), "tls_cert": cert, "tls_key": ca})  # fmt: skip

    # When the webhook starts
    done = subprocess.run([str(BIN / "s3s3"), "webhook", "--config", config.path], capture_output=True, text=True,
                          timeout=30)  # fmt: skip

    # Then it exits 2 with one line naming the file, section and option
    assert done.returncode == 2
    assert done.stderr.startswith(f"s3s3: error: {config.path}: [webhook] tls_cert: with tls_key, not a PEM "
                                  "certificate and its unencrypted key: ")  # fmt: skip
    assert len(done.stderr.splitlines()) == 1


def test_the_webhook_answers_503_when_no_replica_holds_a_notification_in_time(
    s3_source: Server, s3_dest: Server, redis_server: RedisServer, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    # Given s3s3 webhook on a Redis without replicas, with wait_replicas = 1
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    port = free_port()
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})],
                          stream_pubsub(redis_server.url, wait_replicas=1), webhook={"port": port})  # fmt: skip
    webhook = spawn("s3s3", "webhook", "--config", config.path)
    webhook.wait_for(r"INFO s3s3\.listen\.webhook: Webhook listening on .+")

    # When a store posts a notification
    status, text = post(f"http://127.0.0.1:{port}/", wrapped("minio", src, ["k"]))

    # Then it is told to send it again, and why
    assert (status, text) == (503, "Redis did not replicate it in time; send it again later\n")
    webhook.wait_for(r"ERROR s3s3\.listen\.webhook: Webhook could not have a notification replicated: "
                     r"0 of 1 replica\(s\) acknowledged within 3s")  # fmt: skip
