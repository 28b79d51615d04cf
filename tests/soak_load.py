"""What the soak (tests/soak.py) runs against s3s3: the writes and deletes, the listeners, and the chaos."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from s3s3.errors import NotReplicated
from s3s3.listen.delivery import publish
from tests.helpers import record
from tests.servers.base import stop_process

if TYPE_CHECKING:
    from tests.soak import Phase

BIN = Path(sys.executable).parent
KiB, MiB = 1024, 1024 * 1024
PART = 5 * MiB
CHAOS_GAP = (12.0, 30.0)  # seconds between two chaos events
FAULTS = ("slowdown", "reset", "fin", "rst", "stall")
CUT_SECONDS = 30.0  # how long one listener is cut off from Redis
ODD_NAMES = (
    "with space/file {i} copy.txt", "unicode/été ß 日本語 ü {i}.dat", "plus/a+b+{i}+c", "percent/100%25 {i}%",
    "hash/#{i}#frag", "question/what?{i}=x&y=1", "deep/a/b/c/d/e/f/g/h/i/{i}.bin", "mix/ +%#?é {i}",
)  # fmt: skip
_T0 = time.monotonic()

Version = tuple[str, int]  # (MD5, size) of one write
DELETED: Version = ("deleted", -1)  # the "version" a delete leaves: no object


def say(text: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {text}", flush=True)


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


def plan_writes(rng: random.Random, keys: int) -> list[tuple[str, str]]:
    """(key, "put" or "delete"): every key put once, in order; 5 % put again later, 5 % deleted later."""
    keynames = [key_name(rng, i) for i in range(keys)]
    slots = [(float(i), name, "put") for i, name in enumerate(keynames)]
    for what in ("put", "delete"):
        for i in rng.sample(range(keys), keys // 20):
            later = rng.uniform(0.5, 5) if rng.random() < 0.3 else rng.uniform(0.5, max(keys - i, 1))
            slots.append((i + later, keynames[i], what))
    return [(name, what) for _, name, what in sorted(slots)]


class Producer(threading.Thread):
    """Writes and deletes by the plan over `seconds`, announcing each; keeps every version of every key."""

    def __init__(self, phase: Phase, plan: list[tuple[str, str]], seconds: float, seed: int) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.phase, self.plan, self.seconds, self.rng = phase, plan, seconds, random.Random(seed)
        self.s3 = phase.soak.source.client()
        self.stop, self.bytes, self.error, self.retried = threading.Event(), 0, None, 0
        self.written: dict[str, list[Version]] = {}

    def run(self) -> None:
        try:
            start, step = time.monotonic(), self.seconds / max(len(self.plan), 1)
            for n, (key, what) in enumerate(self.plan):
                if self.stop.wait(max(0.0, start + n * step - time.monotonic())):
                    raise RuntimeError("stopped before the end of the plan")
                if what == "delete":
                    self.s3.delete_object(Bucket=self.phase.source_bucket, Key=key)
                    self.written[key].append(DELETED)
                    self.announce(json.dumps({"Records": [record("aws", self.phase.source_bucket, key,
                                                                 "ObjectRemoved:Delete")]}).encode())  # fmt: skip
                else:
                    self.written.setdefault(key, []).append(self.write(key))
                    self.announce(key.encode())
                if (n + 1) % 1000 == 0:
                    say(f"producer: {n + 1} of {len(self.plan)} writes and deletes announced")
        except BaseException as e:
            self.error = e
            say(f"producer FAILED: {e!r}")

    def write(self, key: str) -> Version:
        size, multipart = choose_size(self.rng)
        if size == 0 and key in self.written:
            size = 1  # an overwrite always changes the bytes
        data, bucket = os.urandom(size), self.phase.source_bucket
        if multipart:
            upload = self.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            parts = [{"PartNumber": n, "ETag": self.s3.upload_part(Bucket=bucket, Key=key, UploadId=upload,
                                                                   PartNumber=n, Body=data[at : at + PART])["ETag"]}
                     for n, at in enumerate(range(0, size, PART), 1)]  # fmt: skip
            self.s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                              MultipartUpload={"Parts": parts})  # fmt: skip
        else:
            self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        self.bytes += size
        return hashlib.md5(data).hexdigest(), size

    def announce(self, data: bytes) -> None:
        """Publish with wait_replicas = 1, again while Redis fails over (as a producer must); a second is harmless."""
        deadline = time.monotonic() + 120
        while True:
            try:
                publish(self.phase.soak.redis(), self.phase.mode, self.phase.target, data, replicas=1)
                return
            except (redis.RedisError, NotReplicated):
                self.retried += 1
                if time.monotonic() > deadline or self.stop.is_set():
                    raise
                time.sleep(0.2)


class Fleet:
    """The listener processes, each in its own session with its own log file; the last one's Redis can be cut."""

    def __init__(self, configs: list[Path], logdir: Path) -> None:
        self.configs, self.logdir, self.logs = configs, logdir, {}
        self.stopping: list[tuple[subprocess.Popen[bytes], float]] = []  # SIGTERMed, not yet exited
        self.term_exits: list[int] = []
        self.crashed: list[str] = []
        self.procs = [self._spawn(config) for config in configs]

    def _spawn(self, config: Path) -> subprocess.Popen[bytes]:
        name = f"listener-{len(self.logs) + 1}.log"
        with open(self.logdir / name, "ab") as log:
            proc = subprocess.Popen([str(BIN / "s3s3listen"), "--config", str(config)],
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
        self.procs[index] = new = self._spawn(self.configs[index])
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
                self.procs[i] = self._spawn(self.configs[i])

    def stop(self) -> None:
        for proc in self.procs + [proc for proc, _ in self.stopping]:
            stop_process(proc, timeout=30)


class Chaos(threading.Thread):
    """A Sentinel failover at a third of the run, one listener cut off from Redis at three fifths, and between
    them, every 12-30 s, a seeded event: listeners killed, fault windows, a destination outage."""

    EVENTS = ("kill_listener", "term_listener", "fault_window", "fault_window", "dest_outage")

    def __init__(self, phase: Phase, seconds: float, seed: int) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.phase, self.rng, self.stop, self.events = phase, random.Random(seed), threading.Event(), 0
        self.error: BaseException | None = None
        self.fixed_done = threading.Event()  # the failover and the cut are over
        start = time.monotonic()
        self.fixed = {"failover": start + seconds / 3, "cut_listener": start + seconds * 3 / 5}
        self.heal_at: dict[str, float] = {}
        self.deck: list[str] = []
        self.held_at_cut = 0  # entries the cut-off listener held when it was cut
        self.failed_over = self.cut = False

    def run(self) -> None:
        try:
            next_at = time.monotonic() + self.rng.uniform(*CHAOS_GAP)
            while not self.stop.wait(min(1.0, max(0.0, next_at - time.monotonic()))):
                self.phase.fleet.reap()
                self.heal()
                due = [name for name, at in self.fixed.items() if time.monotonic() >= at]
                if due or time.monotonic() >= next_at:
                    self.events += 1
                    if due:
                        event = due[0]
                        del self.fixed[event]
                    else:
                        if not self.deck:  # every kind of event (fault windows twice) in a seeded order, then again
                            self.deck = self.rng.sample(self.EVENTS, len(self.EVENTS))
                        event = self.deck.pop()
                        next_at = time.monotonic() + self.rng.uniform(*CHAOS_GAP)
                    say(f"chaos #{self.events}: " + getattr(self, event)())
                    if not self.fixed:
                        self.fixed_done.set()
        except BaseException as e:
            self.error = e
            say(f"chaos FAILED: {e!r}")

    def seconds_left(self) -> float:
        """Until the last fixed event is due."""
        return max([at - time.monotonic() for at in self.fixed.values()], default=0.0)

    def kill_listener(self, sig: signal.Signals = signal.SIGKILL) -> str:
        fleet = self.phase.fleet
        return fleet.replace(self.rng.randrange(len(fleet.procs) - 1), sig)  # the cut-off one keeps its entries

    def term_listener(self) -> str:
        return self.kill_listener(signal.SIGTERM)

    def failover(self) -> str:
        group = self.phase.soak.sentinels
        old = group.kill_master()
        killed = time.monotonic()
        say(f"chaos #{self.events}: SIGKILL the Redis master (port {old.port}); waiting for the Sentinels")
        while not group.promoted(old):
            if time.monotonic() - killed > 60:
                raise TimeoutError("the Sentinels promoted no replica within 60s")
            time.sleep(0.2)  # polling the Sentinels
        promoted = time.monotonic() - killed
        group.rejoin(old)
        self.failed_over = True
        return (f"replica promoted after {promoted:.1f}s (port {group.master_port()}); the old master is back "
                f"as its replica after {time.monotonic() - killed:.1f}s")  # fmt: skip

    def cut_listener(self) -> str:
        deadline = time.monotonic() + 20
        while (held := self.phase.held_by("cutoff")) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # until the cut-off listener holds entries
        self.phase.soak.tcp.cut()
        self.held_at_cut, self.cut = max(held, self.phase.held_by("cutoff")), True
        say(f"chaos #{self.events}: listener 'cutoff' cut off from Redis, holding {self.held_at_cut} entries")
        self.stop.wait(CUT_SECONDS)  # the schedule, not a synchronisation
        self.phase.soak.tcp.mend()
        return f"listener 'cutoff' reaches Redis again after {CUT_SECONDS:.0f}s"

    def fault_window(self) -> str:
        side, fault, seconds = self.rng.choice(("source", "dest")), self.rng.choice(FAULTS), self.rng.uniform(15, 30)
        proxy = self.phase.soak.proxies[side]
        proxy.faults, proxy.rate = (fault,), 0.3
        self.heal_at[side] = time.monotonic() + seconds
        return f"{side} proxy: {fault!r} on 30 % of requests for {seconds:.0f}s"

    def dest_outage(self) -> str:
        self.phase.soak.proxies["dest"].outage(11)
        return "destination proxy outage: every request reset for 11s"

    def heal(self) -> None:
        for side, at in list(self.heal_at.items()):
            if time.monotonic() >= at:
                self.phase.soak.proxies[side].rate = 0.0
                del self.heal_at[side]
                say(f"chaos: {side} proxy fault window over")


def listener_config(path: Path, phase: Phase, pubsub: dict[str, Any]) -> Path:
    """An s3s3.ini for one listener of `phase`: the source and both destinations through the fault proxies."""
    soak, sections = phase.soak, []
    for name, server, proxy, bucket, extra in (
        ("source", soak.source, "source", phase.source_bucket, ""),
        *((f"dest{i}", soak.dest, "dest", bucket, "propagate_deletes = true\n")
          for i, bucket in enumerate(phase.dest_buckets, 1)),
    ):  # fmt: skip
        sections.append(f"[{name}]\nendpoint_url = {soak.proxies[proxy].url}\naws_access_key_id = {server.access_key}\n"
                        f"aws_secret_access_key = {server.secret_key}\nbucket_name = {bucket}\n"
                        f"addressing_style = path\n{extra}")  # fmt: skip
    sections.append("[pubsub]\n" + "".join(f"{k} = {v}\n" for k, v in pubsub.items()))
    path.write_text("\n".join(sections))
    return path
