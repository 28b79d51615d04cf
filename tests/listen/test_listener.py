"""The listener: bad announcements, one copy per key at a time, a bounded pool, stopping, deletes.

Fast tests run `Listener.run()` in a thread against fakeredis with a fake copy
function; the slow ones run the real `s3s3listen` process against a real
redis-server and two moto S3 servers, then SIGTERM it mid-copy and restart
Redis under it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from s3s3 import names
from s3s3.config import Config, Endpoint, Versions
from s3s3.listen.delivery import Message, PubSubDelivery
from s3s3.listen.listener import Listener
from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.store import Store, open_store
from s3s3.store.facts import Facts
from tests.helpers import FlakyRedis, new_bucket, wait_until
from tests.processes import BIN, Proc
from tests.servers.base import Server
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
HOLD_SECONDS = 20.0  # longest a fake copy waits to be released, so a failed test cannot hang
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


# --- fast tests: Listener.run() in a thread, fakeredis, a fake copy_key -----------------------


class FakeCopies:
    """Stands in for copy_key: records calls, holds the keys asked to wait, measures overlap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running: dict[str, int] = {}
        self.most_at_once = 0
        self.most_of_one_key = 0
        self.held: dict[str, threading.Event] = {}
        self.hold_all: threading.Event | None = None
        self.explode_once: set[str] = set()

    def hold(self, *keys: str) -> None:
        for key in keys:
            self.held[key] = threading.Event()

    def release(self, *keys: str) -> None:
        for key in keys or list(self.held):
            self.held[key].set()
        if not keys and self.hold_all is not None:
            self.hold_all.set()

    def __call__(self, source: Store, dest: Store, key: str, *, verify_md5: bool = False, **_: Any) -> Outcome:
        with self.lock:
            self.started.append(key)
            self.running[key] = self.running.get(key, 0) + 1
            self.most_of_one_key = max(self.most_of_one_key, self.running[key])
            self.most_at_once = max(self.most_at_once, sum(self.running.values()))
        try:
            gate = self.held.get(key) or self.hold_all
            if gate is not None:
                assert gate.wait(HOLD_SECONDS), f"copy of {key!r} was never released"
            if key in self.explode_once:
                self.explode_once.discard(key)
                raise RuntimeError(f"fake copy of {key!r} broke")
        finally:
            with self.lock:
                self.running[key] -= 1
                self.finished.append(key)
        return Outcome(key, dest.endpoint.label, Action.COPIED, 3)


@dataclass
class Running:
    """A Listener running in a thread, and a client to publish to it."""

    listener: Listener
    publisher: Any
    thread: threading.Thread
    result: list[int] = field(default_factory=list)

    def publish(self, *messages: bytes | str) -> None:
        for message in messages:
            self.publisher.publish(self.listener.delivery.channel, message)

    def stop(self) -> int:
        self.listener.stopping.set()
        self.thread.join(HOLD_SECONDS)
        assert not self.thread.is_alive(), "the listener did not return"
        return self.result[0]


class FakeStore:
    """A store the fake copies never touch: only its endpoint and label are read."""

    transport = "test"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.facts = Facts(endpoint.name)

    @property
    def label(self) -> str:
        return self.endpoint.label


def fake_bucket(name: str, bucket: str, prefix: str = "") -> Any:
    return FakeStore(Endpoint(name=name, bucket=bucket, prefix=prefix))


@pytest.fixture
def copies() -> FakeCopies:
    """The copy function of listeners started by start_listener in this test."""
    return FakeCopies()


@pytest.fixture
def start_listener(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[Callable[..., Running]]:
    """Start Listener.run() in a thread on a fakeredis server; stop and join it at teardown.

    Its copies are the test's FakeCopies, where it asks for `copies`.
    """
    fake = request.getfixturevalue("copies") if "copies" in request.fixturenames else None
    caplog.set_level(logging.INFO, logger="s3s3")
    server = fakeredis.FakeServer()
    runs: list[Running] = []

    def start(
        source: Store | None = None,
        dests: list[Store] | None = None,
        *,
        workers: int = 2,
        **options: Any,
    ) -> Running:
        client = fakeredis.FakeRedis(server=server)
        listener = Listener(
            source or fake_bucket("source", "src"),
            dests or [fake_bucket("dest1", "dst")],
            client,
            PubSubDelivery(client, "ch-" + uuid.uuid4().hex[:8]),
            workers=workers,
            **{"copy": fake, **options},
        )
        listener.poll_seconds = 0.05
        outcomes: list[Outcome] = []
        listener.on_outcome = lambda o: (outcomes.append(o), log_outcome(o))  # type: ignore[func-returns-value]
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(listener.run()), daemon=True)
        run = Running(listener, fakeredis.FakeRedis(server=server), thread, result)
        thread.start()
        wait_until(lambda: run.publisher.pubsub_numsub(listener.delivery.channel)[0][1] == 1, timeout=5)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.listener.stopping.set()
    if fake is not None:
        fake.release()  # a failed test may have left copies held
    for run in runs:
        run.thread.join(HOLD_SECONDS)
        run.publisher.close()


def logged(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    """The messages s3s3 logged at exactly `level`, in order."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("s3s3") and r.levelno == level]


def test_given_bad_announcements_when_listening_then_each_is_rejected_with_one_warning_and_the_next_is_copied(
    copies: FakeCopies, start_listener: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a listener for bucket "src" under the prefix "in/"
    run = start_listener(fake_bucket("source", "src", prefix="in/"))

    # When bad announcements arrive, then a good one
    run.publish(
        b"\xffin/a",
        b"",
        b"\n",
        json.dumps({"hello": "world"}),
        json.dumps({"key": "in/a", "bucket": "photos"}),
        json.dumps({"key": "in/a", "event": "rename"}),
        b"out/a",
        b"in/good",
    )
    wait_until(lambda: copies.finished == ["in/good"], timeout=5)

    # Then each bad one got exactly one single-line WARNING naming why, and nothing else was copied
    assert logged(caplog, logging.WARNING) == [
        "Rejected an announcement: not UTF-8 at byte 0: b'\\xffin/a'",
        "Rejected an announcement: empty key",
        "Rejected an announcement: empty key",
        'Rejected an announcement: unknown JSON message shape: \'{"hello": "world"}\'',
        "Rejected an announcement: event for bucket 'photos', not the source bucket 'src'",
        "Rejected an announcement: unknown event 'rename': must be 'put', 'delete', 'marker' or 'purge'",
        "Rejected an announcement: 'out/a' is not under the source prefix 'in/'",
    ]
    # And each is kept, as it came, in the dead-letter stream, and counted
    kept = [fields for _id, fields in run.publisher.xrange("s3s3:failed")]
    assert [f[b"key"] for f in kept] == [b"\xffin/a", b"", b"\n", b'{"hello": "world"}',
                                         b'{"key": "in/a", "bucket": "photos"}', b'{"key": "in/a", "event": "rename"}',
                                         b"out/a"]  # fmt: skip
    assert {f[b"kind"] for f in kept} == {b"rejected"}
    assert run.listener.metrics.events_rejected._value.get() == 7
    assert run.listener.metrics.events_received._value.get() == 8
    assert copies.started == ["in/good"]
    assert "Copied 'in/good' to dest1:dst: 3 bytes in 0.00s" in logged(caplog)
    assert run.thread.is_alive() and not run.listener.stopping.is_set()
    assert run.stop() == 0


def test_given_a_copy_in_flight_when_its_key_is_announced_twice_more_then_it_is_copied_once_more_after_it(
    copies: FakeCopies, start_listener: Callable[..., Running]
) -> None:
    # Given a copy of "k" held in flight (two workers: the second is free to read)
    copies.hold("k")
    run = start_listener(workers=2)
    run.publish("k")
    wait_until(lambda: copies.started == ["k"], timeout=5)

    # When "k" is announced twice more, then "other" (read only once both "k" handlers gave back the slot)
    run.publish("k", "k", "other")
    wait_until(lambda: copies.finished == ["other"], timeout=5)

    # Then "k" was not copied alongside itself; released, it is copied exactly once more
    assert copies.started == ["k", "other"]
    copies.release("k")
    wait_until(lambda: copies.finished.count("k") == 2, timeout=5)
    run.publish("k")  # announced once the copies are done: copied again, not forgotten
    wait_until(lambda: copies.finished.count("k") == 3, timeout=5)
    assert run.stop() == 0
    assert copies.started == ["k", "other", "k", "k"]
    assert copies.most_of_one_key == 1


def test_given_a_copy_that_raises_when_its_key_is_announced_again_then_it_is_copied_again(
    copies: FakeCopies, start_listener: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a copy of "k" that breaks with an error nobody expected
    copies.explode_once.add("k")
    run = start_listener()
    run.publish("k")

    # Then that is a failed copy like any other: logged with its traceback, and dead-lettered
    wait_until(lambda: "Unexpected error while copying 'k' to dest1:dst" in logged(caplog, logging.ERROR), timeout=5)
    wait_until(lambda: "Failed 'k' to dest1:dst after 0.00s: fake copy of 'k' broke" in logged(caplog, logging.ERROR))
    failures = run.listener.client.xrange("s3s3:failed")
    assert [(f[b"key"], f[b"dest"], f[b"error"]) for _, f in failures] == [
        (b"k", b"dest1:dst", b"fake copy of 'k' broke")
    ]

    # When "k" is announced again
    run.publish("k")

    # Then it is copied again: the broken copy did not leave "k" marked in flight for ever
    wait_until(lambda: copies.finished == ["k", "k"], timeout=5)
    assert "Copied 'k' to dest1:dst: 3 bytes in 0.00s" in logged(caplog)
    assert run.stop() == 0


def test_given_a_copy_in_flight_longer_than_max_copy_seconds_then_health_fails_and_the_oldest_age_shows(
    copies: FakeCopies, start_listener: Callable[..., Running]
) -> None:
    # Given a listener whose bound on a copy's time is half a second, healthy while idle
    copies.hold("slow")
    run = start_listener(stuck_seconds=0.5)
    wait_until(run.listener.healthy, timeout=5)
    assert run.listener.oldest_copy_seconds() == 0.0

    # When a copy stays in flight past the bound
    run.publish("slow")
    wait_until(lambda: copies.started == ["slow"], timeout=5)
    wait_until(lambda: not run.listener.healthy(), timeout=5)

    # Then /healthz's answer is "unhealthy", and the gauge says how old the copy is
    assert run.listener.oldest_copy_seconds() > 0.5
    assert b"s3s3_oldest_copy_seconds " in run.listener.metrics.render()

    # When it finishes, then health comes back and the gauge is 0
    copies.release("slow")
    wait_until(run.listener.healthy, timeout=5)
    assert run.listener.oldest_copy_seconds() == 0.0
    assert run.stop() == 0


class OneMessage:
    """A Delivery holding one message; records whether it was acknowledged or given back."""

    def __init__(self, data: bytes) -> None:
        self.queue = [Message(data, receipt=b"1-0")]
        self.acked: list[Message] = []
        self.released: list[Message] = []

    def connect(self) -> None: ...

    def receive_many(self, timeout: float, count: int) -> list[Message]:
        taken, self.queue = self.queue[:count], self.queue[count:]
        return taken

    def ack(self, message: Message) -> None:
        self.acked.append(message)

    def ack_many(self, messages: list[Message]) -> None:
        self.acked.extend(messages)

    def release(self, message: Message) -> None:
        self.released.append(message)

    def leave(self) -> None: ...

    def close(self) -> None: ...


def test_given_a_failure_the_dead_letter_stream_cannot_take_then_the_message_is_given_back_not_acknowledged() -> None:
    # Given a copy that fails, and a Redis that refuses the dead-letter entry
    client = FlakyRedis(fakeredis.FakeRedis(), "xadd")
    client.broken = True
    delivery = OneMessage(b"k")

    def failing(source: Store, dest: Store, key: str, **_: Any) -> Outcome:
        return Outcome(key, dest.endpoint.label, Action.FAILED, error="the store said no")

    listener = Listener(fake_bucket("source", "src"), [fake_bucket("dest1", "dst")], client, delivery,  # type: ignore[arg-type]
                        copy=failing)  # fmt: skip
    listener.poll_seconds = 0.05
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()

    # Then the message is given back to be delivered again: acknowledging it would lose the failure
    wait_until(lambda: delivery.released, timeout=5)
    listener.stopping.set()
    thread.join(HOLD_SECONDS)
    assert [m.data for m in delivery.released] == [b"k"] and delivery.acked == []


def count_refusals(listener: Listener) -> list[int]:
    """Count the times the reader is turned away for want of a free slot."""
    refused = [0]
    slots = listener._slots
    take = slots.take

    def counting(timeout: float) -> int:
        got = take(timeout)
        refused[0] += not got
        return got

    slots.take = counting  # type: ignore[method-assign]
    return refused


def test_given_two_workers_busy_when_more_keys_are_announced_then_they_stay_unread_until_a_worker_frees(
    copies: FakeCopies, start_listener: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two workers and copies that wait to be released
    read: list[bytes] = []
    copies.hold("a", "b", "c", "d", "e")
    run = start_listener(workers=2)
    receive, calls = run.listener.delivery.receive_many, []

    def recording(timeout: float, count: int) -> list[Message]:
        calls.append(timeout)
        messages = receive(timeout, count)
        read.extend(m.data for m in messages)
        return messages

    monkeypatch.setattr(run.listener.delivery, "receive_many", recording)
    wait_until(lambda: calls, timeout=5)  # the loop reads through it from now on
    refused = count_refusals(run.listener)

    # When five keys are announced
    run.publish("a", "b", "c", "d", "e")
    wait_until(lambda: copies.started == ["a", "b"], timeout=5)
    turned_away = refused[0]
    wait_until(lambda: refused[0] >= turned_away + 3, timeout=5)

    # Then only two were read (two workers read none ahead): the reader waits at the gate and reads nothing more
    assert read == [b"a", b"b"]
    assert copies.started == ["a", "b"]

    # When one copy finishes, then exactly one more key is read
    copies.release("a")
    wait_until(lambda: copies.started == ["a", "b", "c"], timeout=5)
    turned_away = refused[0]
    wait_until(lambda: refused[0] >= turned_away + 3, timeout=5)
    assert read == [b"a", b"b", b"c"]

    copies.release()
    wait_until(lambda: sorted(copies.finished) == ["a", "b", "c", "d", "e"], timeout=5)
    assert copies.most_at_once == 2
    assert run.stop() == 0


def test_eight_busy_workers_read_two_ahead_of_them_and_read_again_only_once_two_have_started(
    copies: FakeCopies, start_listener: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given eight workers whose copies wait to be released, and twelve keys announced
    keys = [f"k{i:02d}" for i in range(12)]
    copies.hold(*keys)
    run = start_listener(workers=8)
    run.listener.poll_seconds = 2.0  # past the poll a reader takes what is free: this test must not reach it
    receive, reads, calls = run.listener.delivery.receive_many, [], []

    def recording(timeout: float, count: int) -> list[Message]:
        calls.append(count)
        messages = receive(timeout, count)
        if messages:
            reads.append([m.data.decode() for m in messages])
        return messages

    monkeypatch.setattr(run.listener.delivery, "receive_many", recording)
    wait_until(lambda: calls, timeout=5)  # the loop reads through it from now on
    run.publish(*keys)
    # Then eight copy, two wait for a worker, and the rest stay unread
    wait_until(lambda: len(copies.started) == 8, timeout=5)
    wait_until(lambda: sum(map(len, reads)) == 10, timeout=5)
    # When one copy finishes, nothing more is read; when a second does, two more are read at once
    copies.release(copies.started[0])
    wait_until(lambda: len(copies.started) == 9, timeout=5)
    assert sum(map(len, reads)) == 10
    copies.release(copies.started[1])
    wait_until(lambda: sum(map(len, reads)) == 12, timeout=5)
    assert reads[-1] == ["k10", "k11"]
    copies.release()
    wait_until(lambda: sorted(copies.finished) == keys, timeout=5)
    assert copies.most_at_once == 8
    assert run.stop() == 0


def test_given_a_copy_in_flight_when_stop_is_requested_then_run_returns_0_only_after_the_copy_finished(
    copies: FakeCopies, start_listener: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a copy in flight
    copies.hold("k")
    run = start_listener()
    run.publish("k")
    wait_until(lambda: copies.started == ["k"], timeout=5)

    # When the signal handler is called once
    run.listener.request_stop(signal.SIGTERM, None)

    # Then the listener stops reading but waits for the copy before run() returns 0
    assert run.listener.stopping.is_set()
    wait_until(lambda: "Stopping: finishing the copies in flight" in logged(caplog), timeout=5)
    assert run.thread.is_alive() and run.result == [] and copies.finished == []
    copies.release("k")
    run.thread.join(HOLD_SECONDS)
    assert run.result == [0]
    assert copies.finished == ["k"]
    assert logged(caplog)[-3:] == [
        "Stopping: finishing the copies in flight",
        "Copied 'k' to dest1:dst: 3 bytes in 0.00s",
        "Stopped",
    ]


def test_given_a_stop_requested_when_a_second_signal_comes_then_it_exits_1_at_once(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a listener asked to stop once
    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    client = fakeredis.FakeRedis()
    delivery = PubSubDelivery(client, "ch")
    listener = Listener(fake_bucket("source", "src"), [fake_bucket("dest1", "dst")], client, delivery)
    listener.request_stop(signal.SIGTERM, None)
    assert capfd.readouterr().err == ""

    # When the handler is called again, then it exits with 1 and says why
    with pytest.raises(Exited) as exited:
        listener.request_stop(signal.SIGINT, None)
    assert exited.value.args == (1,)
    assert capfd.readouterr().err == "s3s3: second stop signal, exiting without finishing copies in flight\n"


# --- destinations keeping every version: a fake replay_key and purge_version --------------------


class FakeReplays:
    """Stands in for replay_key and purge_version: records each call, holds the keys asked to wait."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, str, str | None]] = []  # (what, dest label, key, version purged)
        self.handed: list[tuple[object, object]] = []  # (lease, known) each call was given
        self.held: dict[str, threading.Event] = {}
        self.answers: dict[str, list[Outcome]] = {}  # key -> what its replay says (else one version copied)

    def hold(self, key: str) -> None:
        self.held[key] = threading.Event()

    def release(self) -> None:
        for gate in self.held.values():
            gate.set()

    def replay(self, source: Store, dest: Store, key: str, *, lease: Any = None, known: Any = None,
               **_: Any) -> list[Outcome]:  # fmt: skip
        with self.lock:
            self.calls.append(("replay", dest.label, key, None))
            self.handed.append((lease, known))
        gate = self.held.get(key)
        if gate is not None:
            assert gate.wait(HOLD_SECONDS), f"replay of {key!r} was never released"
        return self.answers.get(key, [Outcome(key, dest.label, Action.COPIED, 3, version_id="v1")])

    def purge(self, source: Store, dest: Store, key: str, version_id: str, *, lease: Any = None, known: Any = None,
              **_: Any) -> Outcome:  # fmt: skip
        with self.lock:
            self.calls.append(("purge", dest.label, key, version_id))
            self.handed.append((lease, known))
        return Outcome(key, dest.label, Action.DELETED, version_id=version_id)


def all_versions(name: str, bucket: str, **options: Any) -> Any:
    """A fake store whose endpoint keeps every version (versions = all)."""
    return FakeStore(Endpoint(name=name, bucket=bucket, versions=Versions.ALL, **options))


@pytest.fixture
def replays() -> FakeReplays:
    return FakeReplays()


def versioned(start_listener: Callable[..., Running], replays: FakeReplays, dests: list[Store],
              **options: Any) -> Running:  # fmt: skip
    """A listener whose replays and purges are `replays`', with a lease and a version map to hand on."""
    return start_listener(dests=dests, replay=replays.replay, purge=replays.purge, lease="the lease",
                          known="the map", **options)  # fmt: skip


def test_given_a_destination_keeping_every_version_when_keys_are_announced_then_their_history_is_replayed_there(
    copies: FakeCopies,
    replays: FakeReplays,
    start_listener: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given one destination keeping every version and one keeping the latest
    replays.answers["k"] = [
        Outcome("k", "dest1:all", Action.COPIED, 3, version_id="v1"),
        Outcome("k", "dest1:all", Action.COPIED, 4, version_id="v2"),
        Outcome("k", "dest1:all", Action.DELETED, version_id="dm3"),
    ]
    run = versioned(start_listener, replays, [all_versions("dest1", "all"), fake_bucket("dest2", "latest")])

    # When a version's event, a delete marker's and a bare key are announced
    run.publish(json.dumps({"key": "k", "version_id": "v2"}), json.dumps({"key": "m", "event": "marker"}), "bare")
    wait_until(lambda: len(replays.calls) == 3 and len(copies.finished) == 2, timeout=5)

    # Then each key's history is replayed at the first (handed the lease and the map), never copied there
    assert sorted(replays.calls) == [("replay", "dest1:all", k, None) for k in ("bare", "k", "m")]
    assert set(replays.handed) == {("the lease", "the map")}
    # And the second copies what is current; a marker is a delete there (kept: propagate_deletes is off)
    assert sorted(copies.started) == ["bare", "k"]
    wait_until(lambda: "Kept 'm' at dest2:latest: deleted at the source, propagate_deletes is off" in logged(caplog))
    # And the versions and markers the replays wrote are counted by destination
    metrics = run.listener.metrics.render().decode()
    assert 's3s3_versions_copied_total{dest="dest1:all"} 4.0' in metrics
    assert 's3s3_delete_markers_replayed_total{dest="dest1:all"} 1.0' in metrics
    assert run.stop() == 0


def test_given_a_version_deleted_for_good_then_the_backup_keeps_it_unless_propagate_version_deletes(
    replays: FakeReplays, start_listener: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    # Given two destinations keeping every version, the second propagating version deletes
    dests = [all_versions("dest1", "keep"), all_versions("dest2", "gone", propagate_version_deletes=True)]
    run = versioned(start_listener, replays, dests)

    # When the source announces a version deleted for good
    run.publish(json.dumps({"key": "k", "event": "delete", "version_id": "v1"}))
    wait_until(lambda: "Deleted 'k' at dest2:gone in 0.00s" in logged(caplog), timeout=5)

    # Then the first keeps it, and says so at INFO; the second deletes its copy; neither replays anything
    assert ("Kept 'k' at dest1:keep: version 'v1' deleted for good at the source, propagate_version_deletes is off"
            in logged(caplog))  # fmt: skip
    assert replays.calls == [("purge", "dest2:gone", "k", "v1")]
    assert replays.handed == [("the lease", "the map")]
    assert logged(caplog, logging.WARNING) == [] and logged(caplog, logging.ERROR) == []
    assert run.stop() == 0


def test_given_a_replay_in_flight_when_a_purge_and_a_put_of_its_key_come_then_both_are_done_after_it(
    replays: FakeReplays, start_listener: Callable[..., Running]
) -> None:
    # Given a replay of "k" held in flight
    replays.hold("k")
    run = versioned(start_listener, replays, [all_versions("dest1", "all", propagate_version_deletes=True)])
    run.publish("k")
    wait_until(lambda: replays.calls == [("replay", "dest1:all", "k", None)], timeout=5)

    # When a version of it is deleted for good, then another is written, and twice more the purge
    purge = json.dumps({"key": "k", "event": "purge", "version_id": "v1"})
    run.publish(purge, json.dumps({"key": "k", "version_id": "v3"}), purge)
    wait_until(lambda: run.listener._keys["k"].waiting.__len__() == 3, timeout=5)
    replays.release()

    # Then one more round does both, in that order: the purge (once) is not lost behind the newer put
    wait_until(lambda: len(replays.calls) == 3, timeout=5)
    assert replays.calls[1:] == [("purge", "dest1:all", "k", "v1"), ("replay", "dest1:all", "k", None)]
    assert run.stop() == 0


def test_given_a_failed_replay_then_it_is_dead_lettered_and_the_announcement_acknowledged() -> None:
    # Given a replay that fails at the store
    client = fakeredis.FakeRedis()
    delivery = OneMessage(json.dumps({"key": "k", "version_id": "v2"}).encode())

    def failing(source: Store, dest: Store, key: str, **_: Any) -> list[Outcome]:
        return [Outcome(key, dest.label, Action.COPIED, 1, version_id="v1"),
                Outcome(key, dest.label, Action.FAILED, error="the store said no")]  # fmt: skip

    listener = Listener(fake_bucket("source", "src"), [all_versions("dest1", "all")], client, delivery,  # type: ignore[arg-type]
                        replay=failing)  # fmt: skip
    listener.poll_seconds = 0.05
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()

    # Then the failure is in the dead-letter stream (the bucket sync retries it), and the message is done
    wait_until(lambda: delivery.acked, timeout=5)
    listener.stopping.set()
    thread.join(HOLD_SECONDS)
    failures = [(f[b"kind"], f[b"key"], f[b"dest"], f[b"error"]) for _, f in client.xrange("s3s3:failed")]
    assert failures == [(b"copy", b"k", b"dest1:all", b"the store said no")]
    assert delivery.released == []


def test_given_a_source_keeping_no_versions_then_a_destination_of_every_version_is_copied_to_as_ever(
    copies: FakeCopies, replays: FakeReplays, start_listener: Callable[..., Running]
) -> None:
    # Given a destination with versions = all, but the service found the source unversioned (none replays)
    run = versioned(start_listener, replays, [all_versions("dest1", "all")], replaying=[])

    # When a key is announced, then it is copied, as a destination of the latest version is
    run.publish("k")
    wait_until(lambda: copies.finished == ["k"], timeout=5)
    assert replays.calls == []
    assert run.stop() == 0


# --- deletes: moto servers, fakeredis ---------------------------------------------------------


@pytest.mark.parametrize(
    ("propagate", "at_source", "kept", "line"),
    [
        (False, False, True, r"Kept 'gone\.txt' at dest1:{dest}: deleted at the source, propagate_deletes is off"),
        (True, False, False, r"Deleted 'gone\.txt' at dest1:{dest} in \d+\.\d\ds"),
        (True, True, True, r"Kept 'gone\.txt' at dest1:{dest}: it is still at the source"),
    ],
    ids=["propagate-off-keeps", "propagate-on-deletes-what-the-source-lost", "propagate-on-keeps-what-the-source-has"],
)
def test_given_a_delete_event_when_listening_then_the_destination_keeps_or_deletes_the_key_as_configured(
    s3_source: Server,
    s3_dest: Server,
    make_config: Callable[..., Config],
    start_listener: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
    propagate: bool,
    at_source: bool,
    kept: bool,
    line: str,
) -> None:
    # Given the key at the destination, and at the source only when it is still there
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], dest_extra={"propagate_deletes": str(propagate)})
    if at_source:
        s3_source.client().put_object(Bucket=src, Key="gone.txt", Body=b"still here")
    s3_dest.client().put_object(Bucket=dst, Key="gone.txt", Body=b"backed up")
    run = start_listener(open_store(config.source), [open_store(d) for d in config.dests])

    # When the source announces that it deleted the key
    run.publish(json.dumps({"key": "gone.txt", "event": "delete", "bucket": src}))

    # Then the destination says what it did, and did it
    pattern = re.compile(line.format(dest=re.escape(dst)))
    wait_until(lambda: any(pattern.fullmatch(m) for m in logged(caplog)), timeout=10)
    listed = s3_dest.client().list_objects_v2(Bucket=dst).get("Contents", [])
    if kept:
        assert [o["Key"] for o in listed] == ["gone.txt"]
        assert s3_dest.client().get_object(Bucket=dst, Key="gone.txt")["Body"].read() == b"backed up"
    else:
        assert listed == []
    assert run.stop() == 0
    assert logged(caplog, logging.WARNING) == [] and logged(caplog, logging.ERROR) == []


# --- slow tests: the s3s3listen process, real redis-server, moto servers ----------------------


@pytest.fixture
def spawn_listener(spawn: Callable[..., Proc]) -> Callable[[Config], Proc]:
    """Start `s3s3listen --config FILE`, killed at teardown."""
    return lambda config: spawn("s3s3listen", "--config", config.path)


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def subscribed(client: redis.Redis, channel: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return client.pubsub_numsub(channel)[0][1] == 1
        except redis.ConnectionError:
            return False

    check.__name__ = f"one subscriber on {channel!r}"
    return check


def put(server: Server, bucket: str, key: str, body: bytes, **extra: Any) -> str:
    """Upload an object with user metadata; return its MD5."""
    server.client().put_object(Bucket=bucket, Key=key, Body=body, Metadata={"owner": "alice"}, **extra)
    return hashlib.md5(body).hexdigest()


def arrived(server: Server, bucket: str, key: str) -> Callable[[], bool]:
    def check() -> bool:
        contents = server.client().list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        return any(o["Key"] == key for o in contents)

    check.__name__ = f"{key!r} at {bucket}"
    return check


def assert_copied(server: Server, bucket: str, key: str, md5: str, content_type: str) -> None:
    """The destination object has the source's bytes, user metadata and s3s3's MD5 record."""
    got = server.client().get_object(Bucket=bucket, Key=key)
    assert hashlib.md5(got["Body"].read()).hexdigest() == md5
    assert got["ContentType"] == content_type
    assert got["Metadata"]["owner"] == "alice"
    assert got["Metadata"]["s3s3-md5"] == md5


@pytest.mark.slow
def test_given_s3s3listen_running_when_keys_are_published_then_every_destination_gets_their_bytes_and_metadata(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_config: Callable[..., Config],
    spawn_listener: Callable[[Config], Proc],
) -> None:
    # Given two destinations: one on another store (streamed), one on the source's (server-side copy)
    src, dst1, dst2 = new_bucket(s3_source), new_bucket(s3_dest), new_bucket(s3_source)
    config = make_config(
        (s3_source, src),
        [(s3_dest, dst1), (s3_source, dst2)],
        redis_url=redis_server.url,
        dest_extra={"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"},
    )
    objects = {
        "photos/café au lait.txt": (put(s3_source, src, "photos/café au lait.txt", b"froth" * 100,
                                        ContentType="text/plain"), "text/plain"),
        "big/six.bin": (put(s3_source, src, "big/six.bin", os.urandom(6 * MiB),
                            ContentType="application/x-six"), "application/x-six"),
    }  # fmt: skip
    listener = spawn_listener(config)
    url = re.escape(redis_server.url)
    listener.wait_for(rf"INFO s3s3\.listen: Connected to {url}, reading channel '{config.pubsub.channel}'")
    wait_until(subscribed(redis_client, config.pubsub.channel), timeout=5)

    # When both keys are published
    for key in objects:
        assert redis_client.publish(config.pubsub.channel, key.encode()) == 1

    # Then both destinations hold both objects, whole, with their metadata, one log line each
    for server, bucket, label in ((s3_dest, dst1, "dest1"), (s3_source, dst2, "dest2")):
        for key, (md5, content_type) in objects.items():
            wait_until(arrived(server, bucket, key), timeout=15)
            assert_copied(server, bucket, key, md5, content_type)
            size = 500 if key.endswith(".txt") else 6 * MiB
            line = listener.wait_for(rf"INFO s3s3\.copy: Copied {re.escape(repr(key))} to {label}:{bucket}: "
                                     rf"{size} bytes in \d+\.\d\ds")  # fmt: skip
            assert len(listener.find(re.escape(line))) == 1
    assert listener.find(r"(WARNING|ERROR) .*") == []


@pytest.mark.slow
def test_given_a_large_copy_in_flight_when_s3s3listen_gets_sigterm_then_it_finishes_the_copy_and_exits_0(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_config: Callable[..., Config],
    spawn_listener: Callable[[Config], Proc],
) -> None:
    # Given a 40 MiB object that goes to the destination in eight 5 MiB parts
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config(
        (s3_source, src),
        [(s3_dest, dst)],
        redis_url=redis_server.url,
        dest_extra={"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"},
    )
    md5 = put(s3_source, src, "big.bin", os.urandom(40 * MiB), ContentType="application/octet-stream")
    listener = spawn_listener(config)
    wait_until(subscribed(redis_client, config.pubsub.channel), timeout=15)
    dest = s3_dest.client()

    # When its copy has started (a multipart upload is open at the destination) and SIGTERM comes
    redis_client.publish(config.pubsub.channel, b"big.bin")
    wait_until(lambda: dest.list_multipart_uploads(Bucket=dst).get("Uploads"), timeout=15, interval=0.01)
    listener.proc.send_signal(signal.SIGTERM)

    # Then it stops reading, finishes the copy, and exits 0; the object is whole
    assert listener.proc.wait(timeout=30) == 0
    assert listener.reader is not None
    listener.reader.join(10)
    # (The loop sees the stop flag at its next poll, up to a second later, so "Stopping" may
    # come after "Copied"; the open upload above is what shows the signal came mid-copy.)
    copied = rf"INFO s3s3\.copy: Copied 'big\.bin' to dest1:{dst}: {40 * MiB} bytes in \d+\.\d\ds"
    assert len(listener.find(copied)) == 1
    assert "INFO s3s3.listen: Stopping: finishing the copies in flight" in listener.lines
    assert listener.lines[-1] == "INFO s3s3.listen: Stopped"
    assert_copied(s3_dest, dst, "big.bin", md5, "application/octet-stream")
    assert dest.list_multipart_uploads(Bucket=dst).get("Uploads", []) == []


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server this test alone may stop and start again."""
    workdir = tmp_path / "own-redis"
    workdir.mkdir()
    server = RedisServer(str(workdir)).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_given_redis_restarts_under_s3s3listen_then_it_logs_the_loss_and_the_gap_resubscribes_and_copies_again(
    s3_source: Server,
    s3_dest: Server,
    own_redis: RedisServer,
    make_config: Callable[..., Config],
    spawn_listener: Callable[[Config], Proc],
) -> None:
    # Given a listener subscribed on a Redis of its own
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=own_redis.url)
    channel, url = config.pubsub.channel, re.escape(own_redis.url)
    md5 = put(s3_source, src, "after.txt", b"after the restart", ContentType="text/plain")
    listener = spawn_listener(config)
    client = redis.Redis.from_url(own_redis.url)
    try:
        wait_until(subscribed(client, channel), timeout=15)

        # When Redis goes away
        own_redis.stop()

        # Then the listener says it lost Redis and cannot reach it, and stays up
        listener.wait_for(rf"ERROR s3s3\.listen: Lost the Redis connection at {url}: .+")
        listener.wait_for(rf"ERROR s3s3\.listen: Cannot reach Redis at {url} \(.+\); retrying in \d+\.\ds")

        # When Redis comes back on the same port
        own_redis.start()

        # Then the listener subscribes again and names the gap in which announcements were lost
        wait_until(subscribed(client, channel), timeout=15)
        listener.wait_for(rf"ERROR s3s3\.listen\.delivery: Announcements published on '{channel}' from {ISO} to {ISO} "
                          r"were missed while Redis was unreachable; run s3s3bucket to catch up")  # fmt: skip
        connected = rf"INFO s3s3\.listen: Connected to {url}, reading channel '{channel}'"
        wait_until(lambda: len(listener.find(connected)) == 2, timeout=5)
        gaps = client.xrange("s3s3:gaps")
        assert len(gaps) == 1 and gaps[0][1][b"channel"] == channel.encode()

        # And a key published now is copied
        assert client.publish(channel, b"after.txt") == 1
        wait_until(arrived(s3_dest, dst, "after.txt"), timeout=15)
        assert_copied(s3_dest, dst, "after.txt", md5, "text/plain")
        assert listener.proc.poll() is None
    finally:
        client.close()


@pytest.mark.slow
def test_given_s3s3listen_running_when_s3s3_publish_announces_a_key_then_it_arrives(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_config: Callable[..., Config],
    spawn_listener: Callable[[Config], Proc],
) -> None:
    # Given a listener and an object at the source
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    md5 = put(s3_source, src, "docs/read me.md", b"# hello\n", ContentType="text/markdown")
    spawn_listener(config)
    wait_until(subscribed(redis_client, config.pubsub.channel), timeout=15)

    # When `s3s3 publish` announces it
    done = subprocess.run(
        [str(BIN / "s3s3"), "publish", "--config", config.path, "docs/read me.md"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    # Then the command reports one listener, and the object arrives whole
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"published 'docs/read me.md' on {config.pubsub.channel!r} to 1 listener(s)\n"
    wait_until(arrived(s3_dest, dst, "docs/read me.md"), timeout=15)
    assert_copied(s3_dest, dst, "docs/read me.md", md5, "text/markdown")


@pytest.mark.slow
def test_given_a_stranded_processing_list_when_s3s3listen_starts_with_its_consumer_name_then_it_recovers_and_copies_it(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_config: Callable[..., Config],
    spawn: Callable[..., Proc],
) -> None:
    # Given list mode, a consumer name in the file, and a key the run of `--consumer backup-7` took and never
    # finished (a listener killed mid-copy leaves it in its processing list)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url,
                         pubsub_extra={"mode": "list", "list": queue, "consumer": "from-the-file"})  # fmt: skip
    md5 = put(s3_source, src, "stranded.txt", b"taken, never finished", ContentType="text/plain")
    processing = names.processing_list(queue, "backup-7")
    redis_client.rpush(processing, b"stranded.txt")

    # When s3s3listen starts again under that name, given on its command line
    listener = spawn("s3s3listen", "--config", config.path, "--consumer", "backup-7")

    # Then (the command line winning over the file) it puts the key back on the queue and copies it
    listener.wait_for(rf"WARNING s3s3\.listen\.delivery: Recovered 1 announcement\(s\) left in "
                      rf"'\{{{queue}\}}:processing:backup-7' by a previous run")  # fmt: skip
    wait_until(arrived(s3_dest, dst, "stranded.txt"), timeout=15)
    assert_copied(s3_dest, dst, "stranded.txt", md5, "text/plain")
    wait_until(lambda: redis_client.llen(processing) == 0, timeout=5)
    assert not redis_client.exists(f"{queue}:processing:from-the-file")


@pytest.mark.slow
def test_given_s3s3listen_with_a_consumer_name_in_stream_mode_then_it_joins_the_group_under_that_name(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_config: Callable[..., Config],
    spawn: Callable[..., Proc],
) -> None:
    # Given stream mode
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    stream = f"st-{uuid.uuid4().hex[:8]}"
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url,
                         pubsub_extra={"mode": "stream", "stream": stream})  # fmt: skip

    # When s3s3listen starts with --consumer
    listener = spawn("s3s3listen", "--config", config.path, "--consumer", "backup-7")
    listener.wait_for(r"INFO s3s3\.listen: Connected to \S+, reading stream .+")

    # Then the group knows it by that name, not host:pid
    assert [c["name"] for c in redis_client.xinfo_consumers(stream, "s3s3")] == [b"backup-7"]
