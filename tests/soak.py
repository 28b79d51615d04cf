"""Chaos soak of the delivery guarantee, stream mode then list mode: `python -m tests.soak` (`make soak`).

Two SeaweedFS servers (moto if weed cannot start), the source and two
destination buckets (propagate_deletes) behind a FaultProxy per store, and a
Redis master with a replica watched by three Sentinels. Each phase runs N
`s3s3listen` (the last one reaching Redis through a TCP proxy that can stop
forwarding) while a producer writes, overwrites and deletes keys at the
source and announces each with wait_replicas = 1, and a chaos thread kills
listeners, SIGKILLs the Redis master (a Sentinel failover), cuts one listener
off from Redis for 30 s while it holds entries, and makes the proxies fail.
Once drained, both destinations are checked against the producer's last
write (or delete) of each key, then again after one `s3s3bucket`. Exit 0
when, in every phase before that, nothing is missing, stale, corrupt or
pending.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

from s3s3 import names
from tests.faults import FaultProxy
from tests.servers.base import Server
from tests.servers.moto import start_moto
from tests.servers.redis import SentinelGroup
from tests.servers.seaweedfs import start_seaweedfs
from tests.soak_load import BIN, DELETED, Chaos, Fleet, MiB, Producer, listener_config, plan_writes, say
from tests.tcpproxy import TcpProxy

GROUP = "s3s3"
COUNTED = ("Unexpected error", "left pending by a listener that stopped")
ALWAYS_ZERO = ("missing", "stale", "corrupt", "entries left pending")


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


def print_table(title: str, rows: dict[str, Any]) -> None:
    width = max(len(name) for name in rows)
    print(f"\n{title}\n{'-' * (width + 14)}")
    for name, value in rows.items():
        print(f"{name:<{width}}  {value!s:>12}")
    print(flush=True)


class Soak:
    """What every phase shares: the stores and their proxies, the Sentinel-watched Redis, the TCP proxy."""

    def __init__(self, args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> None:
        self.args, self.workdir, self.stack = args, workdir, stack

    def start(self) -> None:
        self.source, self.dest = start_stores(self.workdir, self.stack)
        self.sentinels = SentinelGroup(str(self.workdir / "redis")).start()
        self.stack.callback(self.sentinels.stop)
        addresses = [("127.0.0.1", port) for port, _ in self.sentinels.sentinels]
        self.master = Sentinel(addresses, socket_timeout=5).master_for(self.sentinels.name, socket_timeout=5)
        # The cut-off listener's path to Redis: each connection goes to the master the Sentinels name now.
        self.tcp = TcpProxy(lambda: ("127.0.0.1", self.sentinels.master_port())).start()
        self.stack.callback(self.tcp.stop)
        self.proxies = {side: FaultProxy(server.endpoint_url, seed=self.args.seed).start()
                        for side, server in (("source", self.source), ("dest", self.dest))}  # fmt: skip
        for proxy in self.proxies.values():
            self.stack.callback(proxy.stop)
        say(f"{self.source.name} {self.source.endpoint_url} -> {self.dest.name} {self.dest.endpoint_url}, through "
            f"proxies {self.proxies['source'].url} and {self.proxies['dest'].url}; Redis master "
            f"{self.sentinels.name!r} of Sentinels {self.sentinels.option}; the cut-off listener through "
            f"{self.tcp.url}")  # fmt: skip

    def redis(self) -> redis.Redis:
        """The master, wherever the Sentinels say it is now."""
        return self.master

    def run(self) -> int:
        self.start()
        failed = []
        for number, mode in enumerate(("stream", "list"), 1):
            phase = Phase(self, mode, number)
            before, after = phase.run()
            print_table(f"Phase {number} ({mode} mode): before the catch-up", before)
            phase.details()
            print_table(f"Phase {number} ({mode} mode): after one s3s3bucket run (the catch-up)", after)
            failed += [f"phase {number} ({mode}): {name}" for name in ALWAYS_ZERO if before[name]]
            failed += [f"phase {number} ({mode}): {what} did not happen" for what, done in phase.happened() if not done]
        print("SOAK " + (f"FAILED: {', '.join(failed)}" if failed else "PASSED"), flush=True)
        return 1 if failed else 0


class Phase:
    """One run of the soak in one delivery mode, with buckets, a stream or list, and listeners of its own."""

    def __init__(self, soak: Soak, mode: str, number: int) -> None:
        self.soak, self.mode, self.number = soak, mode, number
        self.source_bucket = f"soak-source-{number}"
        self.dest_buckets = [f"soak-dest-{number}-1", f"soak-dest-{number}-2"]
        self.target = f"soak:{mode}:{soak.args.seed}:{number}"
        self.logdir = soak.workdir / f"phase-{number}"
        self.logdir.mkdir()
        self.bad: dict[str, str] = {}

    def run(self) -> tuple[dict[str, Any], dict[str, Any]]:
        args, soak = self.soak.args, self.soak
        soak.source.client().create_bucket(Bucket=self.source_bucket)
        for bucket in self.dest_buckets:
            soak.dest.client().create_bucket(Bucket=bucket)
        self.reader = soak.dest.client()  # one client: creating them is not thread-safe
        direct = {"url": "redis:///0", "sentinels": soak.sentinels.option, "sentinel_master": soak.sentinels.name}
        common = {"mode": self.mode, "stream": self.target, "list": self.target, "group": GROUP, "claim_idle": 5,
                  "workers": 4}  # fmt: skip
        configs = [listener_config(self.logdir / f"s3s3-{i}.ini", self, {**direct, **common, "consumer": f"l{i}"})
                   for i in range(1, args.listeners)]  # fmt: skip
        configs.append(listener_config(self.logdir / "s3s3-cutoff.ini", self,
                                       {"url": soak.tcp.url, **common, "consumer": "cutoff"}))  # fmt: skip
        self.config = configs[0]
        self.fleet = Fleet(configs, self.logdir)
        try:
            return self._run(args)
        finally:
            self.fleet.stop()

    def _run(self, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
        plan = plan_writes(random.Random(args.seed + self.number), args.keys)
        seconds = args.minutes * 60
        self.producer = Producer(self, plan, seconds, args.seed + 1)
        self.chaos = Chaos(self, seconds, args.seed + 2)
        say(f"phase {self.number} ({self.mode} mode): {len(plan)} writes and deletes of {args.keys} keys over "
            f"{args.minutes:g} min, {args.listeners} listeners, 2 destinations, chaos seed {args.seed}")  # fmt: skip
        self.producer.start()
        self.chaos.start()
        self.producer.join()
        self.chaos.fixed_done.wait(self.chaos.seconds_left() + 120)  # the failover and the cut happen, however fast
        self.chaos.stop.set()
        self.chaos.join()
        for proxy in self.soak.proxies.values():
            proxy.healthy()
        say(f"producer done ({self.producer.bytes / MiB:.0f} MiB written, {self.producer.retried} announcements "
            f"sent again), {self.chaos.events} chaos events, proxies healthy; draining")  # fmt: skip
        if self.producer.error is not None or self.chaos.error is not None:
            raise RuntimeError("the producer or the chaos failed") from self.producer.error or self.chaos.error
        self.drain(args.drain_minutes)
        before = self.figures()
        self.catch_up()
        return before, self.figures()

    def happened(self) -> list[tuple[str, bool]]:
        return [("the Sentinel failover", self.chaos.failed_over),
                ("the cut with entries held", self.chaos.cut and self.chaos.held_at_cut > 0)]  # fmt: skip

    def held_by(self, consumer: str) -> int:
        """Entries `consumer` holds now (pending to it, or in its processing list); 0 when Redis cannot say."""
        client = self.soak.redis()
        try:
            if self.mode == "list":
                return int(client.llen(names.processing_list(self.target, consumer)))
            found = client.xpending_range(self.target, GROUP, "-", "+", 1000, consumername=consumer)
            return len(found)
        except redis.RedisError:
            return 0

    def pending(self) -> int | None:
        """Entries delivered and not acknowledged (stream), or in a processing list (list); None: cannot say."""
        client = self.soak.redis()
        try:
            if self.mode == "list":
                lists = client.scan_iter(match=names.processing_list(self.target, "*"), count=1000)
                return sum(int(client.llen(name)) for name in lists)
            return int(client.xpending(self.target, GROUP)["pending"])
        except redis.RedisError:
            return None

    def waiting(self) -> int | None:
        """Entries no listener has taken yet; None when Redis cannot say."""
        client = self.soak.redis()
        try:
            if self.mode == "list":
                return int(client.llen(self.target))
            group = next(g for g in client.xinfo_groups(self.target) if g["name"] == GROUP.encode())
            lag = group.get("lag")  # None where Redis cannot count it: compare the last ids instead
            if lag is None and group["last-delivered-id"] == client.xinfo_stream(self.target)["last-generated-id"]:
                lag = 0
            return None if lag is None else int(lag)
        except (redis.RedisError, StopIteration):
            return None

    def drain(self, minutes: float) -> None:
        deadline, shown = time.monotonic() + minutes * 60, 0.0
        while time.monotonic() < deadline:
            self.fleet.reap()
            waiting, pending = self.waiting(), self.pending()
            if waiting == 0 and pending == 0:
                say("drained: nothing waiting and nothing pending")
                return
            if time.monotonic() - shown >= 15:
                shown = time.monotonic()
                say(f"draining: {waiting} waiting, {pending} pending")
            time.sleep(1)  # polling the condition above
        say(f"drain deadline ({minutes:g} min) passed")

    def verdict(self, bucket: str, key: str, listed: tuple[str, int] | None) -> str:
        """ok, missing, stale (an older version, or one deleted since) or corrupt (never written), against the last."""
        versions = self.producer.written[key]
        if listed is None:
            return "ok" if versions[-1] == DELETED else "missing"
        etag, size = listed
        if not re.fullmatch(r"[0-9a-f]{32}", etag):  # multipart: read it
            try:
                body = self.reader.get_object(Bucket=bucket, Key=key)["Body"].read()
            except self.reader.exceptions.NoSuchKey:
                return "ok" if versions[-1] == DELETED else "missing"
            etag, size = hashlib.md5(body).hexdigest(), len(body)
        if (etag, size) == versions[-1]:
            return "ok"
        return "stale" if (etag, size) in versions[:-1] else "corrupt"

    def figures(self) -> dict[str, Any]:
        verdicts: dict[str, str] = {}
        uploads = 0
        for bucket in self.dest_buckets:
            listing = {}
            for page in self.reader.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                listing.update({o["Key"]: (o["ETag"].strip('"'), o["Size"]) for o in page.get("Contents", [])})
            keys = list(self.producer.written)
            with ThreadPoolExecutor(8) as pool:
                found = pool.map(lambda k, b=bucket, got=listing: self.verdict(b, k, got.get(k)), keys)
                verdicts.update({f"{bucket}/{k}": v for k, v in zip(keys, found, strict=True)})
            uploads += sum(len(page.get("Uploads", []))
                           for page in self.reader.get_paginator("list_multipart_uploads").paginate(Bucket=bucket))
        self.bad = {k: v for k, v in verdicts.items() if v != "ok"}
        counts = Counter(verdicts.values())
        logged = Counter(p for line in self.log_lines() for p in COUNTED if p in line)
        deleted = sum(1 for versions in self.producer.written.values() if versions[-1] == DELETED)
        return {
            "keys checked (2 destinations)": len(verdicts), "of them deleted last": deleted * 2,
            "missing": counts["missing"], "stale": counts["stale"], "corrupt": counts["corrupt"],
            "entries left pending": self.pending(),
            "dead-letter entries (XLEN s3s3:failed)": self.soak.redis().xlen(names.DEADLETTER),
            "orphaned multipart uploads at dest": uploads,
            "Sentinel failovers": int(self.chaos.failed_over),
            "entries held by the cut-off listener": self.chaos.held_at_cut,
            "announcements sent again by producer": self.producer.retried,
            "listener processes alive": f"{sum(p.poll() is None for p in self.fleet.procs)} of {len(self.fleet.procs)}",
            "listener exits not asked for": len(self.fleet.crashed),
            "SIGTERMed listeners: exit codes": ",".join(map(str, self.fleet.term_exits)) or "-",
            "log lines 'Unexpected error'": logged[COUNTED[0]],
            "log lines 'left pending by a listener ...'": logged[COUNTED[1]],
        }  # fmt: skip

    def log_lines(self) -> list[str]:
        lines: list[str] = []
        for path in sorted(self.logdir.glob("listener-*.log")):
            lines += [f"{path.name}: {line}" for line in path.read_text(errors="replace").splitlines()]
        return lines

    def details(self) -> None:
        """What went wrong, for whoever reads the report: keys, their log lines, errors, dead letters."""
        lines = self.log_lines()
        for where, what in list(self.bad.items())[:10]:
            key = where.split("/", 1)[1]
            print(f"{what}: {where!r}  versions written: {self.producer.written[key]}")
            for line in [line for line in lines if repr(key) in line][-8:]:
                print(f"    {line}")
        for n in [n for n, line in enumerate(lines) if COUNTED[0] in line][:3]:
            print("\n".join(lines[n : n + 12]))  # the line and its traceback
        for entry_id, entry in self.soak.redis().xrange(names.DEADLETTER, count=10):
            print(f"dead letter {entry_id}: {entry}")
        for text in self.fleet.crashed:
            print(text)
        sys.stdout.flush()

    def catch_up(self) -> None:
        say("running s3s3bucket once (the catch-up)")
        with open(self.logdir / "bucket.log", "wb") as log:
            done = subprocess.run([str(BIN / "s3s3bucket"), "--config", str(self.config)], stdout=subprocess.PIPE,
                                  stderr=log, text=True, timeout=1800)  # fmt: skip
        print(done.stdout.strip(), flush=True)
        say(f"s3s3bucket exited {done.returncode}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=3000, help="keys the producer writes in each phase (default 3000)")
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the producer and chaos run, per phase")
    parser.add_argument("--seed", type=int, default=1, help="seeds the key names, sizes and chaos schedule")
    parser.add_argument("--listeners", type=int, default=3, help="s3s3listen processes, the cut-off one among them")
    parser.add_argument("--drain-minutes", type=float, default=10.0, help="longest wait for a phase to drain")
    parser.add_argument("--logs", type=Path, help="copy the listener, Redis and s3s3bucket logs here at the end")
    return parser.parse_args(argv)


def _keep_logs(workdir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in workdir.rglob("*.log"):
        shutil.copy(path, target / f"{path.parent.name}-{path.name}")
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
