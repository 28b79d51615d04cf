"""The listener's /metrics and /healthz, scraped from a real s3s3listen while it copies and fails.

Each test runs `s3s3listen` with `[metrics] port` set, on a Redis of its own
(so the dead-letter stream and the reconnect count are this test's alone),
and reads the Prometheus text the way a scraper would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from s3s3 import names
from s3s3.config import Config, endpoint_from_options
from s3s3.listen.metrics import Metrics
from s3s3.store import open_store
from tests.helpers import new_bucket, wait_until
from tests.servers.base import Server, free_port
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

BIN = Path(sys.executable).parent
MiB = 1024 * 1024

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled series that has not been seen yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def put(server: Server, bucket: str, key: str, body: bytes) -> str:
    server.client().put_object(Bucket=bucket, Key=key, Body=body)
    return hashlib.md5(body).hexdigest()


def s3_event(bucket: str, key: str, when: float) -> bytes:
    """An S3 event notification as AWS sends it: it carries the event's time, so lag can be measured."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when))
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": stamp,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
    }
    return json.dumps({"Records": [record]}).encode()


@dataclass
class Listening:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    channel: str


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "own-redis"
    workdir.mkdir()
    server = RedisServer(str(workdir)).start()
    yield server
    server.stop()


@pytest.fixture
def listen_with_metrics(tmp_path: Path) -> Iterator[Callable[[Config], Listening]]:
    """Start `s3s3listen` with [metrics] port added to the config; stop it at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Config) -> Listening:
        port = free_port()
        path = Path(config.path)
        path.write_text(path.read_text() + f"[metrics]\nport = {port}\nbind = 127.0.0.1\n")
        log = tmp_path / f"s3s3listen-{port}.log"
        with open(log, "wb") as stderr:
            proc = subprocess.Popen(
                [str(BIN / "s3s3listen"), "--config", str(path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        started.append(proc)
        running = Listening(proc, port, log, config.pubsub.channel)

        def answers() -> bool:
            assert proc.poll() is None, f"s3s3listen exited {proc.returncode}:\n{log.read_text()}"
            return healthz(port) == 200

        wait_until(answers, timeout=20)
        return running

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_given_a_listener_with_metrics_when_keys_are_copied_and_fail_then_the_counters_and_gauges_move(
    s3_source: Server,
    s3_dest: Server,
    own_redis: RedisServer,
    make_config: Callable[..., Config],
    listen_with_metrics: Callable[[Config], Listening],
) -> None:
    # Given a listener with a working destination and one whose bucket does not exist
    src, dst, missing = new_bucket(s3_source), new_bucket(s3_dest), f"no-such-bucket-{os.getpid()}"
    config = make_config(
        (s3_source, src),
        [(s3_dest, dst), (s3_dest, missing)],
        redis_url=own_redis.url,
        dest_extra={"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"},
        pubsub_extra={"max_attempts": 1},
    )
    good, bad = f"dest1:{dst}", f"dest2:{missing}"
    put(s3_source, src, "plain.txt", b"x" * 100)
    put(s3_source, src, "event.txt", b"y" * 50)
    put(s3_source, src, "big.bin", os.urandom(24 * MiB))
    listening = listen_with_metrics(config)
    client = redis.Redis.from_url(own_redis.url)
    try:
        wait_until(lambda: client.pubsub_numsub(listening.channel)[0][1] == 1, timeout=15)

        # Then before any announcement everything is zero
        before = scrape(listening.port)
        assert value(before, "s3s3_events_received_total") == 0
        assert value(before, "s3s3_copies_in_flight") == 0
        assert value(before, "s3s3_deadletter_entries") == 0
        assert value(before, "s3s3_redis_reconnects_total") == 0
        assert value(before, "s3s3_replication_lag_seconds_count") == 0

        # When a plain key and an S3 event (which carries its time) are announced
        client.publish(listening.channel, b"plain.txt")
        client.publish(listening.channel, s3_event(src, "event.txt", time.time()))

        # Then both count as received, copied at one destination and failed at the other
        def both_done() -> Samples | None:
            samples = scrape(listening.port)
            failed = value(samples, "s3s3_copies_total", dest=bad, outcome="failed")
            # The outcome is counted just before its dead-letter entry is written: wait for both.
            return samples if failed == 2 == value(samples, "s3s3_deadletter_entries") else None

        after = wait_until(both_done, timeout=20)
        assert isinstance(after, dict)
        assert value(after, "s3s3_events_received_total") == 2
        assert value(after, "s3s3_copies_total", dest=good, outcome="copied") == 2
        assert value(after, "s3s3_bytes_copied_total", dest=good) == 150
        assert value(after, "s3s3_bytes_copied_total", dest=bad) == 0
        assert value(after, "s3s3_copy_duration_seconds_count", dest=good) == 2
        assert value(after, "s3s3_copy_duration_seconds_bucket", dest=good, le="+Inf") == 2
        # (the event knew its time, but not every destination holds it: no replication lag yet)
        assert value(after, "s3s3_replication_lag_seconds_count") == 0
        assert value(after, "s3s3_deadletter_entries") == 2
        assert value(after, "s3s3_copies_in_flight") == 0
        assert value(after, "s3s3_events_rejected_total") == 0

        # When a 24 MiB object is announced, Then it is in flight while it is copied, and counted after
        client.publish(listening.channel, b"big.bin")
        wait_until(lambda: value(scrape(listening.port), "s3s3_copies_in_flight") == 1, timeout=15, interval=0.02)
        wait_until(lambda: value(scrape(listening.port), "s3s3_deadletter_entries") == 3, timeout=30)
        wait_until(lambda: value(scrape(listening.port), "s3s3_copies_in_flight") == 0, timeout=5)
        last = scrape(listening.port)
        assert value(last, "s3s3_copies_total", dest=good, outcome="copied") == 3
        assert value(last, "s3s3_bytes_copied_total", dest=good) == 150 + 24 * MiB
        assert value(last, "s3s3_copies_total", dest=bad, outcome="failed") == 3 == client.xlen(names.DEADLETTER)

        # When an announcement is not understood, Then it is received, rejected and dead-lettered
        client.publish(listening.channel, b'{"Records": "nonsense"}')
        wait_until(lambda: value(scrape(listening.port), "s3s3_events_rejected_total") == 1, timeout=10)
        wait_until(lambda: value(scrape(listening.port), "s3s3_deadletter_entries") == 4, timeout=15)
        assert healthz(listening.port) == 200
    finally:
        client.close()


def test_given_a_listener_with_metrics_when_redis_goes_away_and_comes_back_then_healthz_says_so(
    s3_source: Server,
    s3_dest: Server,
    own_redis: RedisServer,
    make_config: Callable[..., Config],
    listen_with_metrics: Callable[[Config], Listening],
) -> None:
    # Given a healthy listener
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=own_redis.url)
    listening = listen_with_metrics(config)
    assert healthz(listening.port) == 200
    assert value(scrape(listening.port), "s3s3_redis_reconnects_total") == 0

    # When its Redis stops
    own_redis.stop()

    # Then /healthz answers 503 and the lost connection is counted, while /metrics still answers
    wait_until(lambda: healthz(listening.port) == 503, timeout=15)
    assert value(scrape(listening.port), "s3s3_redis_reconnects_total") == 1

    # When Redis is back
    own_redis.start()

    # Then /healthz answers 200 again, and the listener copies
    wait_until(lambda: healthz(listening.port) == 200, timeout=30)
    md5 = put(s3_source, src, "back.txt", b"back again")
    client = redis.Redis.from_url(own_redis.url)
    try:
        wait_until(lambda: client.pubsub_numsub(listening.channel)[0][1] == 1, timeout=10)
        client.publish(listening.channel, s3_event(src, "back.txt", time.time() - 100))  # an event 100 s old
        wait_until(
            lambda: value(scrape(listening.port), "s3s3_copies_total", dest=f"dest1:{dst}", outcome="copied") == 1,
            timeout=15,
        )
        got = s3_dest.client().get_object(Bucket=dst, Key="back.txt")["Body"].read()
        assert hashlib.md5(got).hexdigest() == md5
        # And its replication lag, from the event's time until every destination held it, is about 100 s
        lag = scrape(listening.port)
        assert value(lag, "s3s3_replication_lag_seconds_count") == 1
        assert value(lag, "s3s3_replication_lag_seconds_bucket", le="60.0") == 0
        assert value(lag, "s3s3_replication_lag_seconds_bucket", le="120.0") == 1
    finally:
        client.close()

    # And an unknown path is a 404, not a crash
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"http://127.0.0.1:{listening.port}/nothing", timeout=5)
    assert answer.value.code == 404
    answer.value.close()


def test_metrics_show_a_limited_store_s_rate_in_force_and_the_throttled_answers_this_process_saw() -> None:
    # Given a listener's metrics over a source without a limit and a destination limited to 20 requests a second
    source = open_store(endpoint_from_options("source", {"bucket_name": "a", "endpoint_url": "http://127.0.0.1:1",
                                                          "aws_access_key_id": "k", "aws_secret_access_key": "s"}))
    dest = open_store(endpoint_from_options("dest1", {"bucket_name": "b", "endpoint_url": "http://127.0.0.1:2",
                                                      "aws_access_key_id": "k", "aws_secret_access_key": "s",
                                                      "max_requests_per_second": "20"}))  # fmt: skip
    metrics = Metrics(stores=[source, dest])

    # When the destination answers SlowDown once
    dest.throttle.answered(503, "SlowDown")

    # Then /metrics shows its lowered rate and the throttled answer, and nothing for the unlimited source's rate
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    rates = {s.labels["store"]: s.value for s in families["s3s3_request_rate_limit"].samples}
    throttled = {s.labels["store"]: s.value for s in families["s3s3_requests_throttled"].samples
                 if s.name.endswith("_total")}  # fmt: skip
    assert rates == {"http://127.0.0.1:2": pytest.approx(14)}
    assert throttled == {"http://127.0.0.1:1": 0, "http://127.0.0.1:2": 1}
