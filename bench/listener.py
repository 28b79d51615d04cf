"""Listener figures: how fast `s3s3listen` drains a burst of announcements, its latency at a steady rate, and
how its throughput grows with listeners in one stream group.

A key has landed when the listener logs its "Copied" line: the line is
written once the destination answered the PUT. The harness reads the
listener's log as it grows (a thread polling every 2 ms), so a latency
carries at most that much detection delay, and nothing lists the
destination while the listener is measured. CPU seconds are the listener
process's own (user + system, all threads), from before the first
announcement to the last copy.

    python bench/listener.py --scaling 1,2,4    # listeners in one stream group, on workload A
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import psutil
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script
    sys.path.insert(0, ROOT)

from bench.data import Manifest, VerifyError, Workload, verify  # noqa: E402
from bench.stores import Stores, drop_bucket, start_stores  # noqa: E402
from bench.tools import RssSampler, last_line, write_s3s3_ini  # noqa: E402
from tests.servers.base import binary_path  # noqa: E402

CHANNEL = "backup"  # the channel s3s3listen subscribes to by default
STREAM = "bench:events"  # the stream of stream mode
GROUP = "s3s3"  # its consumer group, s3s3's default
MODES = ("pubsub", "stream")
PACED = ((100.0, 1000), (500.0, 2000))  # (announcements per second, keys): 10 s and 4 s of steady arrivals
COPIED = re.compile(rb" Copied '(.+)' to dest1:")


class ListenerError(Exception):
    """Raised when a listener dies, never starts reading, or does not copy every announced key in time."""


@dataclass
class Paced:
    """Latencies at one steady rate, in seconds, per key."""

    rate: float
    latencies: list[float]

    def percentile(self, q: float) -> float:
        """The q-th percentile (nearest rank)."""
        ranked = sorted(self.latencies)
        return ranked[min(len(ranked) - 1, max(0, round(q / 100 * len(ranked)) - 1))]


@dataclass
class ModeResult:
    """One delivery mode: the burst's drain time and CPU, the paced latencies, the peak RSS."""

    mode: str
    burst_seconds: float | None = None
    burst_cpu: float | None = None
    paced: list[Paced] = field(default_factory=list)
    peak_rss: int = 0
    error: str | None = None


class _Landings:
    """When each key's "Copied" line appeared in one or more listeners' logs, read as they grow."""

    def __init__(self, paths: list[str]) -> None:
        self.files = []
        for path in paths:
            f = open(path, "rb")  # noqa: SIM115 - read as it grows, closed with the reader
            f.seek(0, os.SEEK_END)
            self.files.append([f, b""])
        self.landed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self._read()

    def _read(self) -> None:
        now = time.perf_counter()
        for entry in self.files:
            data = entry[1] + entry[0].read()
            lines = data.split(b"\n")
            entry[1] = lines.pop()
            for line in lines:
                if (match := COPIED.search(line)) is not None:
                    self.landed.setdefault(match.group(1).decode(), now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for f, _ in self.files:
            f.close()


class _Listener:
    """A running s3s3listen (as shipped: no options beyond the endpoints and the mode) into one bucket."""

    def __init__(self, stores: Stores, bucket: str, workdir: str, label: str, mode: str) -> None:
        script = binary_path("s3s3listen")
        if script is None:
            raise ListenerError("s3s3listen is not installed: pip install -e .")
        ini = os.path.join(workdir, f"{label}.s3s3.ini")
        write_s3s3_ini(ini, stores, bucket)
        if mode == "stream":
            with open(ini, "a") as f:
                f.write(f"mode = stream\nstream = {STREAM}\n")
        self.mode = mode
        self.log_path = os.path.join(workdir, f"{label}.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([script, "--config", ini], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.process = psutil.Process(self.proc.pid)
        self.sampler = RssSampler(self.proc.pid)
        self.sampler.start()

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ListenerError(f"s3s3listen exited {self.proc.returncode}: {last_line(self.log_path)}")

    def wait_ready(self, client: redis.Redis, consumers: int = 1, timeout: float = 20.0) -> None:
        """Until it has subscribed (pubsub) or joined the group (stream; `consumers` there in all)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.mode == "pubsub" and dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0) > 0:
                return
            if self.mode == "stream" and _consumers(client) >= consumers:
                return
            time.sleep(0.02)
        raise ListenerError(f"s3s3listen did not start reading in {timeout:.0f}s")

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


def _consumers(client: redis.Redis) -> int:
    try:
        groups = client.xinfo_groups(STREAM)
    except redis.ResponseError:
        return 0
    return sum(int(g["consumers"]) for g in groups if g["name"] in (GROUP, GROUP.encode()))


def _announce(client: redis.Redis, mode: str, keys: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        if mode == "stream":
            pipe.xadd(STREAM, {"message": key})
        else:
            pipe.publish(CHANNEL, key)
    pipe.execute()


def _wait_landed(landings: _Landings, keys: list[str], listeners: list[_Listener], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while len(landings.landed) < len(keys):
        for listener in listeners:
            listener.check_alive()
        if time.perf_counter() > deadline:
            raise ListenerError(f"{len(keys) - len(landings.landed)} of {len(keys)} keys never landed")
        time.sleep(0.01)


def burst(stores: Stores, client: redis.Redis, workload: Workload, manifest: Manifest, workdir: str, mode: str,
          label: str, *, listeners: int = 1, timeout: float = 120.0) -> tuple[float, float, int]:
    """Announce every key at once to `listeners` new listeners; (seconds until all landed, their CPU s, peak RSS)."""
    bucket = f"dst-{label}"
    stores.dest.client().create_bucket(Bucket=bucket)
    running = [_Listener(stores, bucket, workdir, f"{label}-{i}", mode) for i in range(listeners)]
    try:
        for listener in running:
            listener.wait_ready(client, consumers=listeners)
        keys = workload.key_names()
        landings = _Landings([listener.log_path for listener in running])
        cpu = sum(listener.cpu() for listener in running)
        start = time.perf_counter()
        _announce(client, mode, keys)
        _wait_landed(landings, keys, running, timeout)
        seconds = max(landings.landed.values()) - start
        cpu = sum(listener.cpu() for listener in running) - cpu
        landings.close()
        verify(stores.dest, bucket, workload, manifest)  # and the destination holds every key, byte for byte
        return seconds, cpu, max(listener.stop() for listener in running)
    finally:
        for listener in running:
            listener.stop()
        if mode == "stream":
            client.delete(STREAM)
        drop_bucket(stores.dest, bucket)


def paced(stores: Stores, client: redis.Redis, workload: Workload, workdir: str, mode: str, rate: float,
          count: int, timeout: float = 120.0) -> tuple[Paced, int]:
    """Announce `count` keys at `rate` per second; each key's seconds from its announcement to its landing."""
    bucket = f"dst-paced-{mode}-{rate:.0f}"
    stores.dest.client().create_bucket(Bucket=bucket)
    listener = _Listener(stores, bucket, workdir, f"paced-{mode}-{rate:.0f}", mode)
    keys = workload.key_names()[:count]
    published: dict[str, float] = {}
    try:
        listener.wait_ready(client)
        landings = _Landings([listener.log_path])
        start = time.perf_counter()
        for i, key in enumerate(keys):
            while (now := time.perf_counter()) < start + i / rate:
                time.sleep(min(0.0005, start + i / rate - now))
            _announce(client, mode, [key])
            published[key] = time.perf_counter()
        _wait_landed(landings, keys, [listener], timeout)
        landings.close()
        return Paced(rate, [landings.landed[k] - published[k] for k in keys]), listener.stop()
    finally:
        listener.stop()
        if mode == "stream":
            client.delete(STREAM)
        drop_bucket(stores.dest, bucket)


def run_listener(stores: Stores, workload: Workload, manifest: Manifest, workdir: str,
                 timeout: float = 120.0, repeat: int = 1) -> list[ModeResult]:
    """Each mode's burst (best of `repeat`) and paced latencies; a failure is reported in the result, never raised."""
    results = []
    if stores.redis is None:
        return [ModeResult(mode, error="failed: no redis-server was started") for mode in MODES]
    client = redis.Redis.from_url(stores.redis.url)
    try:
        for mode in MODES:
            result = ModeResult(mode)
            results.append(result)
            try:
                for attempt in range(1, repeat + 1):
                    seconds, cpu, peak = burst(stores, client, workload, manifest, workdir, mode,
                                               f"burst-{mode}-{attempt}", timeout=timeout)  # fmt: skip
                    if result.burst_seconds is None or seconds < result.burst_seconds:
                        result.burst_seconds, result.burst_cpu = seconds, cpu
                    result.peak_rss = max(result.peak_rss, peak)
                    print(f"  s3s3listen {mode} burst #{attempt}: {seconds:.2f}s, {cpu:.2f} CPU s", flush=True)
                for rate, count in PACED:
                    latencies, peak = paced(stores, client, workload, workdir, mode, rate, count, timeout)
                    result.paced.append(latencies)
                    result.peak_rss = max(result.peak_rss, peak)
            except (ListenerError, VerifyError, redis.RedisError, OSError) as e:
                result.error = f"failed: {e}"
    finally:
        client.close()
    return results


def summary(result: ModeResult, count: int) -> dict[str, object]:
    """One mode's figures for the table and results.json (latencies in milliseconds)."""
    return {
        "mode": result.mode,
        "burst_seconds": result.burst_seconds,
        "burst_cpu_seconds": result.burst_cpu,
        "cpu_ms_per_key": None if result.burst_cpu is None else result.burst_cpu / count * 1000,
        "peak_rss_mib": result.peak_rss / 2**20,
        "paced": [
            {"rate": p.rate, "keys": len(p.latencies), "p50_ms": p.percentile(50) * 1000,
             "p99_ms": p.percentile(99) * 1000, "p999_ms": p.percentile(99.9) * 1000}
            for p in result.paced
        ],  # fmt: skip
        "error": result.error,
    }


def scaling(counts: list[int], repeat: int) -> None:
    """Listeners in one stream group on A: keys/s and CPU per key, for each count."""
    from bench.data import fill_source
    from bench.harness import WORKLOADS

    workload = WORKLOADS["A"]
    workdir = tempfile.mkdtemp(prefix="s3s3-bench-listeners-")
    stores = start_stores(workdir, with_redis=True)
    assert stores.redis is not None
    client = redis.Redis.from_url(stores.redis.url)
    try:
        manifest = fill_source(stores.source, [workload])
        rows = []
        for listeners in counts:
            best: tuple[float, float] | None = None
            for attempt in range(1, repeat + 1):
                seconds, cpu, _ = burst(stores, client, workload, manifest, workdir, "stream",
                                        f"scale-{listeners}-{attempt}", listeners=listeners)  # fmt: skip
                print(f"  {listeners} listener(s) #{attempt}: {seconds:.2f}s, {cpu:.2f} CPU s", flush=True)
                best = (seconds, cpu) if best is None or seconds < best[0] else best
            assert best is not None
            rows.append((listeners, *best))
        print(f"\n{'listeners':>9} {'seconds':>8} {'keys/s':>7} {'CPU s':>6} {'CPU ms/key':>10}  "
              f"({workload.count} keys of {workload.size} bytes, stream mode, best of {repeat})")
        for listeners, seconds, cpu in rows:
            print(f"{listeners:>9} {seconds:>8.2f} {workload.count / seconds:>7.0f} {cpu:>6.2f} "
                  f"{cpu / workload.count * 1000:>10.3f}")
    finally:
        client.close()
        stores.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="How listener throughput grows with listeners in one stream group.")
    parser.add_argument("--scaling", default="1,2,4", help="listener counts, comma-separated (default 1,2,4)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per count; the fastest counts")
    args = parser.parse_args(argv)
    scaling([int(n) for n in args.scaling.split(",")], args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
