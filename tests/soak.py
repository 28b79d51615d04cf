"""Chaos soak of the stream-mode delivery guarantee: `python -m tests.soak` (`make soak`).

Two SeaweedFS servers (moto if weed cannot start), a redis-server with AOF, a
FaultProxy in front of each store, N `s3s3listen` in one group. A producer
writes keys to the source and XADDs them while a chaos thread kills listeners
and Redis and makes the proxies fail; once drained, the destination is checked
against the producer's last write of each key, then again after one
`s3s3bucket`. Exit 0 when, before that, nothing is missing, stale, corrupt or pending.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

from s3s3 import names
from s3s3.listen.delivery import publish
from tests.faults import FaultProxy
from tests.servers.base import Server, stop_process
from tests.servers.moto import start_moto
from tests.servers.redis import RedisServer
from tests.servers.seaweedfs import start_seaweedfs

BIN = Path(sys.executable).parent
KiB, MiB = 1024, 1024 * 1024
PART = 5 * MiB
SOURCE_BUCKET, DEST_BUCKET, GROUP = "soak-source", "soak-dest", "s3s3"
CHAOS_GAP = (20.0, 60.0)
CHAOS_SCALE = 2 / 3  # the gaps above, scaled: about 9 events in 4 minutes
FAULTS = ("slowdown", "reset", "fin", "rst", "stall")
ODD_NAMES = (
    "with space/file {i} copy.txt", "unicode/été ß 日本語 ü {i}.dat", "plus/a+b+{i}+c", "percent/100%25 {i}%",
    "hash/#{i}#frag", "question/what?{i}=x&y=1", "deep/a/b/c/d/e/f/g/h/i/{i}.bin", "mix/ +%#?é {i}",
)  # fmt: skip
COUNTED = ("Unexpected error", "left pending by a listener that stopped")
ALWAYS_ZERO = ("missing", "stale", "corrupt", "entries left pending (XPENDING)")
_T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {text}", flush=True)


Version = tuple[str, int]  # (MD5, size) of one write


def key_name(rng: random.Random, i: int) -> str:
    return rng.choice(ODD_NAMES).format(i=i) if rng.random() < 0.3 else f"plain/{i % 64:02d}/obj-{i:06d}.bin"


def choose_size(rng: random.Random) -> tuple[int, bool]:
    """(size, multipart): 2 % multipart 6-20 MiB, 3 % empty, 5 % 200 KiB-2 MiB, else 1 B-64 KiB."""
    r = rng.random()
    if r < 0.02:
        return rng.randint(6 * MiB, 20 * MiB), True
    if r < 0.05:
        return 0, False
    if r < 0.10:
        return rng.randint(200 * KiB, 2 * MiB), False
    return int(2 ** rng.uniform(0, 16)), False


def plan_writes(rng: random.Random, keys: int) -> list[str]:
    """Every key once, in order, and 5 % of them again later (some soon after, some much later)."""
    keynames = [key_name(rng, i) for i in range(keys)]
    slots = [(float(i), name) for i, name in enumerate(keynames)]
    for i in rng.sample(range(keys), keys // 20):
        later = rng.uniform(0.5, 5) if rng.random() < 0.3 else rng.uniform(0.5, max(keys - i, 1))
        slots.append((i + later, keynames[i]))
    return [name for _, name in sorted(slots)]


class Producer(threading.Thread):
    """Writes the plan to the source over `seconds`, announcing each write; keeps every version written."""

    def __init__(self, s3: Any, redis_url: str, stream: str, plan: list[str], seconds: float, seed: int) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.s3, self.stream, self.plan, self.seconds, self.rng = s3, stream, plan, seconds, random.Random(seed)
        self.redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        self.stop, self.bytes, self.error = threading.Event(), 0, None
        self.written: dict[str, list[Version]] = {}

    def run(self) -> None:
        try:
            start, step = time.monotonic(), self.seconds / max(len(self.plan), 1)
            for n, key in enumerate(self.plan):
                if self.stop.wait(max(0.0, start + n * step - time.monotonic())):
                    raise RuntimeError("stopped before the end of the plan")
                self.written.setdefault(key, []).append(self.write(key))
                self.announce(key)
                if (n + 1) % 1000 == 0:
                    say(f"producer: {n + 1} of {len(self.plan)} writes announced")
        except BaseException as e:
            self.error = e
            say(f"producer FAILED: {e!r}")

    def write(self, key: str) -> Version:
        size, multipart = choose_size(self.rng)
        if size == 0 and key in self.written:
            size = 1  # an overwrite always changes the bytes
        data = os.urandom(size)
        if multipart:
            upload = self.s3.create_multipart_upload(Bucket=SOURCE_BUCKET, Key=key)["UploadId"]
            parts = [{"PartNumber": n, "ETag": self.s3.upload_part(Bucket=SOURCE_BUCKET, Key=key, UploadId=upload,
                                                                   PartNumber=n, Body=data[at : at + PART])["ETag"]}
                     for n, at in enumerate(range(0, size, PART), 1)]  # fmt: skip
            self.s3.complete_multipart_upload(Bucket=SOURCE_BUCKET, Key=key, UploadId=upload,
                                              MultipartUpload={"Parts": parts})  # fmt: skip
        else:
            self.s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=data)
        self.bytes += size
        return hashlib.md5(data).hexdigest(), size

    def announce(self, key: str) -> None:
        """XADD, trying again while Redis is down (as a producer must); a second entry is harmless."""
        deadline = time.monotonic() + 120
        while True:
            try:
                publish(self.redis, "stream", self.stream, key.encode())
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.stop.is_set():
                    raise
                time.sleep(0.2)


class Fleet:
    """The listener processes, each in its own session with its own log file."""

    def __init__(self, config: Path, logdir: Path, size: int) -> None:
        self.config, self.logdir, self.logs = config, logdir, {}
        self.stopping: list[tuple[subprocess.Popen[bytes], float]] = []  # SIGTERMed, not yet exited
        self.term_exits: list[int] = []
        self.crashed: list[str] = []
        self.procs = [self._spawn() for _ in range(size)]

    def _spawn(self) -> subprocess.Popen[bytes]:
        name = f"listener-{len(self.logs) + 1}.log"
        with open(self.logdir / name, "ab") as log:
            proc = subprocess.Popen([str(BIN / "s3s3listen"), "--config", str(self.config)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)  # fmt: skip
        self.logs[proc.pid] = name
        return proc

    def replace(self, index: int, sig: signal.Signals) -> str:
        old = self.procs[index]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(old.pid, sig)
        if sig == signal.SIGKILL:
            old.wait(10)
        else:
            self.stopping.append((old, time.monotonic()))
        self.procs[index] = new = self._spawn()
        return f"{sig.name} listener pid {old.pid}; started pid {new.pid} ({self.logs[new.pid]})"

    def reap(self) -> None:
        """Note SIGTERMed listeners that exited; restart (as supervisord would) any that exited unasked."""
        for proc, since in list(self.stopping):
            if proc.poll() is not None:
                self.stopping.remove((proc, since))
                self.term_exits.append(proc.returncode)
                say(f"listener pid {proc.pid} exited {proc.returncode}, {time.monotonic() - since:.1f}s after SIGTERM")
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.crashed.append(f"listener pid {proc.pid} exited {proc.returncode} unasked ({self.logs[proc.pid]})")
                say(f"listener pid {proc.pid} exited {proc.returncode} unasked; starting another")
                self.procs[i] = self._spawn()

    def stop(self) -> None:
        for proc in self.procs + [proc for proc, _ in self.stopping]:
            stop_process(proc, timeout=30)


class Chaos(threading.Thread):
    """Every 20-60 s (scaled), one seeded event; fault windows heal on their own schedule."""

    EVENTS = ("kill_listener", "term_listener", "kill_redis", "restart_redis", "fault_window", "fault_window",
              "dest_outage")  # fmt: skip

    def __init__(self, soak: Soak, seed: int) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.soak, self.rng, self.stop, self.events, self.error = soak, random.Random(seed), threading.Event(), 0, None
        self.heal_at: dict[str, float] = {}
        self.deck: list[str] = []

    def run(self) -> None:
        try:
            next_at = time.monotonic() + self.rng.uniform(*CHAOS_GAP) * CHAOS_SCALE
            while not self.stop.wait(min(1.0, max(0.0, next_at - time.monotonic()))):
                self.soak.fleet.reap()
                self.heal()
                if time.monotonic() >= next_at:
                    self.events += 1
                    if not self.deck:  # every kind of event (fault windows twice) in a seeded order, then again
                        self.deck = self.rng.sample(self.EVENTS, len(self.EVENTS))
                    say(f"chaos #{self.events}: " + getattr(self, self.deck.pop())())
                    next_at = time.monotonic() + self.rng.uniform(*CHAOS_GAP) * CHAOS_SCALE
        except BaseException as e:
            self.error = e
            say(f"chaos FAILED: {e!r}")

    def kill_listener(self, sig: signal.Signals = signal.SIGKILL) -> str:
        return self.soak.fleet.replace(self.rng.randrange(len(self.soak.fleet.procs)), sig)

    def term_listener(self) -> str:
        return self.kill_listener(signal.SIGTERM)

    def kill_redis(self) -> str:
        server, down = self.soak.redis, self.rng.uniform(2, 5)
        assert server.proc is not None
        pid = server.proc.pid
        os.killpg(pid, signal.SIGKILL)
        server.proc.wait(10)
        server.proc = None
        say(f"chaos #{self.events}: SIGKILL redis-server pid {pid}; down for {down:.1f}s")
        self.stop.wait(down)  # the schedule, not a synchronisation
        server.start()
        return f"redis-server started again on port {server.port}, pid {server.proc.pid}"

    def restart_redis(self) -> str:
        self.soak.redis.stop()
        self.soak.redis.start()
        assert self.soak.redis.proc is not None
        return f"redis-server restarted cleanly (SIGTERM, then start), pid {self.soak.redis.proc.pid}"

    def fault_window(self) -> str:
        side, fault, seconds = self.rng.choice(("source", "dest")), self.rng.choice(FAULTS), self.rng.uniform(15, 30)
        proxy = self.soak.proxies[side]
        proxy.faults, proxy.rate = (fault,), 0.3
        self.heal_at[side] = time.monotonic() + seconds
        return f"{side} proxy: {fault!r} on 30 % of requests for {seconds:.0f}s"

    def dest_outage(self) -> str:
        self.soak.proxies["dest"].outage(11)
        return "destination proxy outage: every request reset for 11s"

    def heal(self) -> None:
        for side, at in list(self.heal_at.items()):
            if time.monotonic() >= at:
                self.soak.proxies[side].rate = 0.0
                del self.heal_at[side]
                say(f"chaos: {side} proxy fault window over")


def start_stores(workdir: Path, stack: contextlib.ExitStack) -> tuple[Server, Server]:
    """Two SeaweedFS servers side by side; two moto servers if weed cannot start."""
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_seaweedfs, str(workdir / side)) for side in ("source", "dest")]
    errors = [f.exception() for f in futures if f.exception() is not None]
    servers = [f.result() for f in futures if f.exception() is None]
    if errors:
        for server in servers:
            server.stop()
        print(f"NOTE: SeaweedFS did not start ({errors[0]}); using two moto servers instead", flush=True)
        servers = [start_moto(str(workdir)) for _ in range(2)]
    for server in servers:
        stack.callback(server.stop)
    return servers[0], servers[1]


def write_config(path: Path, urls: tuple[str, str], stores: tuple[Server, Server], redis_url: str,
                 stream: str) -> Path:  # fmt: skip
    sections = []
    for name, url, server, bucket in zip(("source", "dest1"), urls, stores, (SOURCE_BUCKET, DEST_BUCKET), strict=True):
        sections.append(f"[{name}]\nendpoint_url = {url}\naws_access_key_id = {server.access_key}\n"
                        f"aws_secret_access_key = {server.secret_key}\nbucket_name = {bucket}\n"
                        "addressing_style = path\n")  # fmt: skip
    sections.append(f"[pubsub]\nurl = {redis_url}\nmode = stream\nstream = {stream}\ngroup = {GROUP}\n"
                    "claim_idle = 5\nworkers = 4\n")  # fmt: skip
    path.write_text("\n".join(sections))
    return path


def print_table(title: str, rows: dict[str, Any]) -> None:
    width = max(len(name) for name in rows)
    print(f"\n{title}\n{'-' * (width + 14)}")
    for name, value in rows.items():
        print(f"{name:<{width}}  {value!s:>12}")
    print(flush=True)


class Soak:
    """Everything one run started, and the run itself."""

    def __init__(self, args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> None:
        self.args, self.workdir, self.stack, self.bad = args, workdir, stack, {}

    def start(self) -> None:
        self.source, self.dest = start_stores(self.workdir, self.stack)
        self.source.client().create_bucket(Bucket=SOURCE_BUCKET)
        self.dest.client().create_bucket(Bucket=DEST_BUCKET)
        self.reader = self.dest.client()  # one client: creating them is not thread-safe
        (self.workdir / "redis").mkdir()
        self.redis = RedisServer(str(self.workdir / "redis"), extra_args=("--appendonly", "yes")).start()
        self.stack.callback(self.redis.stop)
        self.admin = redis.Redis.from_url(self.redis.url, decode_responses=True)
        self.proxies = {side: FaultProxy(server.endpoint_url, seed=self.args.seed).start()
                        for side, server in (("source", self.source), ("dest", self.dest))}  # fmt: skip
        for proxy in self.proxies.values():
            self.stack.callback(proxy.stop)
        self.stream = f"soak:{self.args.seed}:{os.getpid()}"
        urls = (self.proxies["source"].url, self.proxies["dest"].url)
        self.config = write_config(self.workdir / "s3s3.ini", urls, (self.source, self.dest), self.redis.url,
                                   self.stream)  # fmt: skip
        say(f"{self.source.name} {self.source.endpoint_url} -> {self.dest.name} {self.dest.endpoint_url}, through "
            f"proxies {' and '.join(urls)}; redis {self.redis.url} appendonly "
            f"{self.admin.config_get('appendonly')['appendonly']}; stream {self.stream}")  # fmt: skip
        self.fleet = Fleet(self.config, self.workdir, self.args.listeners)
        self.stack.callback(self.fleet.stop)
        deadline = time.monotonic() + 60
        while self.group_state()[1] < 0:  # until a listener has created the group
            if time.monotonic() > deadline:
                raise TimeoutError("no listener created the consumer group within 60s; see their logs")
            time.sleep(0.2)

    def run(self) -> int:
        self.start()
        plan = plan_writes(random.Random(self.args.seed), self.args.keys)
        self.producer = Producer(self.source.client(), self.redis.url, self.stream, plan, self.args.minutes * 60,
                                 self.args.seed + 1)  # fmt: skip
        chaos = Chaos(self, self.args.seed + 2)
        self.stack.callback(self.producer.stop.set)
        self.stack.callback(chaos.stop.set)
        say(f"producing {len(plan)} writes of {self.args.keys} keys over {self.args.minutes:g} min, "
            f"{self.args.listeners} listeners, chaos seed {self.args.seed}")  # fmt: skip
        self.producer.start()
        chaos.start()
        self.producer.join()
        chaos.stop.set()
        chaos.join()
        for proxy in self.proxies.values():
            proxy.healthy()
        say(f"producer done ({self.producer.bytes / MiB:.0f} MiB written), {chaos.events} chaos events, "
            "proxies healthy; draining")
        if self.producer.error is not None:
            raise RuntimeError("the producer failed") from self.producer.error
        self.drain()
        before = self.figures()
        print_table("Before the catch-up", before)
        self.details()
        self.catch_up()
        print_table("After one s3s3bucket run (the catch-up)", self.figures())
        failed = [name for name in ALWAYS_ZERO if before[name]]
        print("SOAK " + (f"FAILED: {', '.join(failed)} not 0 before the catch-up" if failed else "PASSED"), flush=True)
        return 1 if failed else 0

    def group_state(self) -> tuple[int | None, int]:
        try:
            group = next(g for g in self.admin.xinfo_groups(self.stream) if g["name"] == GROUP)
        except (redis.RedisError, StopIteration):
            return None, -1
        lag = group.get("lag")  # None where Redis cannot count it: compare the last ids instead
        if lag is None and group["last-delivered-id"] == self.admin.xinfo_stream(self.stream)["last-generated-id"]:
            lag = 0
        return lag, int(group["pending"])

    def drain(self) -> None:
        deadline, shown = time.monotonic() + self.args.drain_minutes * 60, 0.0
        while time.monotonic() < deadline:
            self.fleet.reap()
            lag, pending = self.group_state()
            if lag == 0 and pending == 0:
                say("drained: the group has no lag and nothing pending")
                return
            if time.monotonic() - shown >= 15:
                shown = time.monotonic()
                say(f"draining: lag {lag}, pending {pending}")
            time.sleep(1)  # polling the condition above
        say(f"drain deadline ({self.args.drain_minutes:g} min) passed")

    def verdict(self, key: str, listed: tuple[str, int] | None) -> str:
        """ok, missing, stale (an older version) or corrupt (no version written), against the latest write."""
        if listed is None:
            return "missing"
        etag, size = listed
        if not re.fullmatch(r"[0-9a-f]{32}", etag):  # multipart: read it
            try:
                body = self.reader.get_object(Bucket=DEST_BUCKET, Key=key)["Body"].read()
            except self.reader.exceptions.NoSuchKey:
                return "missing"
            etag, size = hashlib.md5(body).hexdigest(), len(body)
        versions = self.producer.written[key]
        if (etag, size) == versions[-1]:
            return "ok"
        return "stale" if (etag, size) in versions[:-1] else "corrupt"

    def figures(self) -> dict[str, Any]:
        s3, listing = self.reader, {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=DEST_BUCKET):
            listing.update({o["Key"]: (o["ETag"].strip('"'), o["Size"]) for o in page.get("Contents", [])})
        keys = list(self.producer.written)
        with ThreadPoolExecutor(8) as pool:
            verdicts = dict(zip(keys, pool.map(lambda k: self.verdict(k, listing.get(k)), keys), strict=True))
        self.bad = {k: v for k, v in verdicts.items() if v != "ok"}
        counts = Counter(verdicts.values())
        self.uploads = [f"{u['Key']!r} {u['UploadId']} begun {u['Initiated']:%H:%M:%S}"
                        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=DEST_BUCKET)
                        for u in page.get("Uploads", [])]  # fmt: skip
        logged = Counter(p for line in self.log_lines() for p in COUNTED if p in line)
        return {
            "keys expected": len(keys), "missing": counts["missing"], "stale": counts["stale"],
            "corrupt": counts["corrupt"],
            "entries left pending (XPENDING)": self.admin.xpending(self.stream, GROUP)["pending"],
            "dead-letter entries (XLEN s3s3:failed)": self.admin.xlen(names.DEADLETTER),
            "orphaned multipart uploads at dest": len(self.uploads),
            "listener processes alive": f"{sum(p.poll() is None for p in self.fleet.procs)} of {self.args.listeners}",
            "listener exits not asked for": len(self.fleet.crashed),
            "SIGTERMed listeners: exit codes": ",".join(map(str, self.fleet.term_exits)) or "-",
            "SIGTERMed listeners still running": len(self.fleet.stopping),
            "log lines 'Unexpected error'": logged[COUNTED[0]],
            "log lines 'left pending by a listener ...'": logged[COUNTED[1]],
        }  # fmt: skip

    def log_lines(self) -> list[str]:
        lines: list[str] = []
        for path in sorted(self.workdir.glob("listener-*.log")):
            lines += [f"{path.name}: {line}" for line in path.read_text(errors="replace").splitlines()]
        return lines

    def details(self) -> None:
        """What went wrong, for whoever reads the report: keys, their log lines, errors, dead letters."""
        lines = self.log_lines()
        for key, what in list(self.bad.items())[:10]:
            print(f"{what}: {key!r}  versions written: {len(self.producer.written[key])}")
            for line in [line for line in lines if repr(key) in line][-8:]:
                print(f"    {line}")
        for n in [n for n, line in enumerate(lines) if COUNTED[0] in line][:3]:
            print("\n".join(lines[n : n + 12]))  # the line and its traceback
        for entry_id, entry in self.admin.xrange(names.DEADLETTER, count=10):
            print(f"dead letter {entry_id}: {entry}")
        for text in [*(f"orphaned upload: {u}" for u in self.uploads[:10]), *self.fleet.crashed]:
            print(text)
        sys.stdout.flush()

    def catch_up(self) -> None:
        say("running s3s3bucket once (the catch-up)")
        with open(self.workdir / "bucket.log", "wb") as log:
            done = subprocess.run([str(BIN / "s3s3bucket"), "--config", str(self.config)], stdout=subprocess.PIPE,
                                  stderr=log, text=True, timeout=1800)  # fmt: skip
        print(done.stdout.strip(), flush=True)
        say(f"s3s3bucket exited {done.returncode}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=5000, help="keys the producer writes (default 5000)")
    parser.add_argument("--minutes", type=float, default=4.0, help="how long the producer and chaos run")
    parser.add_argument("--seed", type=int, default=1, help="seeds the key names, sizes and chaos schedule")
    parser.add_argument("--listeners", type=int, default=3, help="s3s3listen processes (default 3)")
    parser.add_argument("--drain-minutes", type=float, default=10.0, help="longest wait for the group to drain")
    parser.add_argument("--logs", type=Path, help="copy the listener, Redis and s3s3bucket logs here at the end")
    return parser.parse_args(argv)


def _keep_logs(workdir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in [*workdir.glob("*.log"), *workdir.glob("redis/*.log")]:
        shutil.copy(path, target / path.name)
    print(f"logs copied to {target}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT):  # SystemExit, so every callback stops what it started
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="s3s3-soak-") as tmp, contextlib.ExitStack() as stack:
        if args.logs is not None:
            stack.callback(_keep_logs, Path(tmp), args.logs)
        return Soak(args, Path(tmp), stack).run()


if __name__ == "__main__":
    sys.exit(main())
