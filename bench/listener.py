"""Listener figures: how fast `s3s3listen` drains a burst of announcements, and its latency at 100/s.

Arrival is seen by listing the destination in a loop, so a latency carries up
to one listing round (~10-30 ms here) of detection delay on top of the copy.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field

import redis

from bench.data import Manifest, VerifyError, Workload, list_sizes, verify
from bench.stores import Stores, drop_bucket
from bench.tools import RssSampler, last_line, write_s3s3_ini
from tests.servers.base import binary_path

CHANNEL = "backup"  # the channel s3s3listen subscribes to by default
PACED_RATE = 100.0  # announcements per second in the latency run
PACED_COUNT = 300  # keys announced in the latency run (3 s at 100/s)


class ListenerError(Exception):
    """Raised when the listener dies, never subscribes, or does not copy every announced key in time."""


@dataclass
class ListenerResult:
    """Burst drain time, paced latencies, and the listener's peak RSS; `error` says why figures are missing."""

    burst_seconds: float | None = None
    burst_count: int = 0
    latencies: list[float] = field(default_factory=list)
    peak_rss: int = 0
    error: str | None = None

    def percentile(self, q: float) -> float | None:
        """The q-th percentile latency in seconds (nearest rank), or None without samples."""
        if not self.latencies:
            return None
        ranked = sorted(self.latencies)
        return ranked[min(len(ranked) - 1, max(0, round(q / 100 * len(ranked)) - 1))]


class _Listener:
    """A running s3s3listen writing into one destination bucket."""

    def __init__(self, stores: Stores, bucket: str, workdir: str, label: str) -> None:
        script = binary_path("s3s3listen")
        if script is None:
            raise ListenerError("s3s3listen is not installed: pip install -e .")
        ini = os.path.join(workdir, f"{label}.s3s3.ini")
        write_s3s3_ini(ini, stores, bucket)
        self.log_path = os.path.join(workdir, f"{label}.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([script, "--config", ini], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.sampler = RssSampler(self.proc.pid)
        self.sampler.start()

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ListenerError(f"s3s3listen exited {self.proc.returncode}: {last_line(self.log_path)}")

    def wait_subscribed(self, client: redis.Redis, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0) > 0:
                return
            time.sleep(0.02)
        raise ListenerError(f"s3s3listen did not subscribe to {CHANNEL!r} in {timeout:.0f}s")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; return the peak RSS seen, in bytes."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.sampler.stop()


def _burst(stores: Stores, client: redis.Redis, workload: Workload, manifest: Manifest, workdir: str,
           timeout: float, attempt: int) -> tuple[float, int]:
    """Announce every key at once to a new listener; seconds until it has copied them all."""
    bucket = f"dst-listen-burst-{attempt}"
    stores.dest.client().create_bucket(Bucket=bucket)
    listener = _Listener(stores, bucket, workdir, f"s3s3listen-burst-{attempt}")
    try:
        listener.wait_subscribed(client)
        keys = workload.key_names()
        copied = _CopyCounter(listener.log_path)
        start = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.publish(CHANNEL, key)
        pipe.execute()
        # Done when the listener has logged every copy (each line is written
        # once the store answered its PUT), read from its log: listing the
        # destination in a loop would spend the CPU the listener is measured on.
        while copied.count() < len(keys):
            listener.check_alive()
            if time.perf_counter() - start > timeout:
                raise ListenerError(f"burst: not every key copied after {timeout:.0f}s")
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        copied.close()
        verify(stores.dest, bucket, workload, manifest)  # and the destination holds every key, byte for byte
        return seconds, listener.stop()
    finally:
        listener.stop()
        drop_bucket(stores.dest, bucket)


class _CopyCounter:
    """Counts the "Copied ..." lines a listener's log gained since this was made, reading only what is new."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 - read as it grows, closed with the counter
        self.file.seek(0, os.SEEK_END)
        self.copied = 0
        self.partial = b""

    def count(self) -> int:
        data = self.partial + self.file.read()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        self.copied += sum(1 for line in lines if b" Copied '" in line)
        return self.copied

    def close(self) -> None:
        self.file.close()


def _paced(stores: Stores, client: redis.Redis, workload: Workload, workdir: str,
           timeout: float) -> tuple[list[float], int]:
    """Announce PACED_COUNT keys at PACED_RATE/s; per-key seconds from PUBLISH to first seen listed."""
    bucket = "dst-listen-paced"
    stores.dest.client().create_bucket(Bucket=bucket)
    listener = _Listener(stores, bucket, workdir, "s3s3listen-paced")
    keys = workload.key_names()[:PACED_COUNT]
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    try:
        listener.wait_subscribed(client)
        start = time.perf_counter()
        for i, key in enumerate(keys):
            while (now := time.perf_counter()) < start + i / PACED_RATE:
                _poll(stores, bucket, workload, seen)  # listing doubles as the pacing sleep
            client.publish(CHANNEL, key)
            published[key] = now
        deadline = time.perf_counter() + timeout
        while len(seen) < len(keys):
            listener.check_alive()
            if time.perf_counter() > deadline:
                raise ListenerError(f"paced: {len(keys) - len(seen)} of {len(keys)} keys never arrived")
            _poll(stores, bucket, workload, seen)
        return [seen[k] - published[k] for k in keys], listener.stop()
    finally:
        listener.stop()
        drop_bucket(stores.dest, bucket)


def _poll(stores: Stores, bucket: str, workload: Workload, seen: dict[str, float]) -> None:
    listed = list_sizes(stores.dest, bucket, workload.prefix)
    now = time.perf_counter()
    for key in listed:
        seen.setdefault(key, now)


def run_listener(stores: Stores, workload: Workload, manifest: Manifest, workdir: str,
                 timeout: float = 120.0, repeat: int = 1) -> ListenerResult:
    """Both listener measurements (the burst's best of `repeat`); a failure is reported in the result, never raised."""
    result = ListenerResult(burst_count=workload.count)
    if stores.redis is None:
        result.error = "failed: no redis-server was started"
        return result
    client = redis.Redis.from_url(stores.redis.url)
    try:
        for attempt in range(1, repeat + 1):
            seconds, peak = _burst(stores, client, workload, manifest, workdir, timeout, attempt)
            result.burst_seconds = min(seconds, result.burst_seconds or seconds)
            result.peak_rss = max(result.peak_rss, peak)
            print(f"  s3s3listen burst #{attempt}: {seconds:.2f}s", flush=True)
        result.latencies, peak = _paced(stores, client, workload, workdir, timeout)
        result.peak_rss = max(result.peak_rss, peak)
    except (ListenerError, VerifyError, redis.RedisError, OSError) as e:
        result.error = f"failed: {e}"
    finally:
        client.close()
    return result


def summary(result: ListenerResult) -> dict[str, float | None]:
    """Latency figures in milliseconds for the table and results.json."""
    p50, p99 = result.percentile(50), result.percentile(99)
    return {
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "mean_ms": statistics.fmean(result.latencies) * 1000 if result.latencies else None,
    }
