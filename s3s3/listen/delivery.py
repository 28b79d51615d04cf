"""How announcements reach the listener: a pubsub channel, a stream, or a list.

All three sit behind one small interface (`receive_many` what has arrived,
waiting up to a timeout for the first; `ack` each once every destination
holds the object), so the listener's loop is the same whichever the
configuration chooses. Reads take what has arrived in one round trip, and
announcements done together are acknowledged in one (`ack_many`):

- pubsub: fire-and-forget; what is published while no listener is subscribed
  is lost, so a reconnect logs the gap and records it in Redis.
- stream: a consumer group; an entry stays pending until acknowledged, and
  entries a crashed listener left pending are claimed by the others.
- list: a reliable queue; each message moves to a per-consumer processing list
  and is removed from it once done; a restarted listener recovers its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import redis

from s3s3 import names
from s3s3.config import Mode
from s3s3.errors import NotReplicated

if TYPE_CHECKING:
    from s3s3.config import PubSub as PubSubConfig

logger = logging.getLogger(__name__)

WAIT_SECONDS = 3.0  # how long publish waits for wait_replicas replicas to hold an announcement (< socket timeout)


@dataclass(frozen=True)
class Message:
    """One raw announcement and what acknowledging it needs."""

    data: bytes
    receipt: Any = None  # stream entry id, or the list element itself
    published_at: float | None = None  # epoch seconds, where the transport knows


class Delivery(Protocol):
    """The interface the listener reads announcements through."""

    def connect(self) -> None: ...

    def receive_many(self, timeout: float, count: int) -> list[Message]:
        """Up to `count` messages: what has arrived, waiting up to `timeout` seconds for the first."""

    def ack(self, message: Message) -> None:
        """Done: every destination holds the message's keys, or their failures are kept."""

    def ack_many(self, messages: Sequence[Message]) -> None:
        """`ack` for each of `messages`, in one round trip."""

    def release(self, message: Message) -> None:
        """Not done, and no worker on it: let it be delivered again."""

    def close(self) -> None: ...

    def leave(self) -> None:
        """The listener stops for good (not a reconnect): let the others know it has gone."""


def default_consumer() -> str:
    """`host:pid`: unique per process, so each listener's pending entries are its own."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PubSubDelivery:
    """SUBSCRIBE (or PSUBSCRIBE) to a channel; nothing to acknowledge."""

    def __init__(self, client: redis.Redis, channel: str, *, pattern: bool = False) -> None:
        self.client = client
        self.channel = channel
        self.pattern = pattern
        self.pubsub: Any = None
        self.lost_at: float | None = None

    def connect(self) -> None:
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        if self.pattern:
            self.pubsub.psubscribe(self.channel)
        else:
            self.pubsub.subscribe(self.channel)
        if self.lost_at is not None:
            self._record_gap(self.lost_at, time.time())
            self.lost_at = None

    def receive(self, timeout: float) -> Message | None:
        return next(iter(self.receive_many(timeout, 1)), None)

    def receive_many(self, timeout: float, count: int) -> list[Message]:
        messages: list[Message] = []
        try:
            # The first waits up to `timeout`; the rest only if they have arrived already.
            while len(messages) < count:
                message = self.pubsub.get_message(timeout=0.0 if messages else timeout)
                if message is None:
                    break
                if message.get("type") in ("message", "pmessage"):
                    messages.append(Message(message["data"]))
        except (redis.ConnectionError, redis.TimeoutError):
            self.lost_at = self.lost_at or time.time()
            raise
        return messages

    def ack(self, message: Message) -> None:
        """Pubsub has nothing to acknowledge: a message is gone once read."""

    def ack_many(self, messages: Sequence[Message]) -> None:
        """Nor many."""

    def leave(self) -> None:
        """Nothing to leave: a pubsub subscription ends with its connection."""

    def release(self, message: Message) -> None:
        logger.error("An announcement could not be finished and pubsub cannot deliver it again: %r", message.data)

    def close(self) -> None:
        _quietly(self.pubsub.close if self.pubsub is not None else None)
        self.pubsub = None

    def _record_gap(self, lost: float, back: float) -> None:
        start, end = _iso(lost), _iso(back)
        logger.error(
            "Announcements published on %r from %s to %s were missed while Redis was unreachable; "
            "run s3s3bucket to catch up",
            self.channel,
            start,
            end,
        )
        try:
            self.client.xadd(names.GAPS, {"from": start, "to": end, "channel": self.channel},
                             maxlen=names.GAPS_MAXLEN, approximate=True)
        except redis.RedisError as e:
            logger.warning("Could not record the gap in %r: %s", names.GAPS, e)


class StreamDelivery:
    """XREADGROUP from a stream; XACK once done; claim what crashed listeners left pending.

    A heartbeat thread, independent of the copy workers, keeps this
    listener's in-flight entries from looking idle: another listener claims
    an entry only once its owner has really gone (dead, or cut off from Redis
    for longer than `claim_idle`), never because every worker was busy.
    """

    def __init__(
        self, client: redis.Redis, stream: str, group: str, consumer: str, *, claim_idle: float = 60.0
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.claim_idle_ms = int(claim_idle * 1000)
        self.heartbeat_seconds = max(claim_idle / 4, 0.1)
        self.inflight: set[bytes] = set()
        self._claimed: list[Message] = []
        self._unacked: list[bytes] = []  # entries done while Redis was unreachable
        self._next_claim = 0.0
        self._lock = threading.Lock()
        self._heartbeat: tuple[threading.Thread, threading.Event] | None = None

    def connect(self) -> None:
        self._join()
        while self._unacked:
            self.client.xack(self.stream, self.group, self._unacked[0])
            self._unacked.pop(0)
        if self._heartbeat is None:
            stop = threading.Event()
            thread = threading.Thread(target=self._beat, args=(stop,), name="s3s3-heartbeat", daemon=True)
            thread.start()
            self._heartbeat = (thread, stop)

    def _join(self) -> None:
        """Create the group (from the stream's start) unless it exists, and register this consumer in it."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        # Registered now, not at its first entry (Redis 7 creates a consumer only when XREADGROUP
        # returns one): XINFO CONSUMERS shows every running listener.
        self.client.xgroup_createconsumer(self.stream, self.group, self.consumer)

    def receive(self, timeout: float) -> Message | None:
        return next(iter(self.receive_many(timeout, 1)), None)

    def receive_many(self, timeout: float, count: int) -> list[Message]:
        try:
            return self._receive_many(timeout, count)
        except redis.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
        # A replica promoted before the group reached it (a Sentinel or Cluster failover), or the stream
        # was deleted: the group is made again from the stream's start. Entries the old master held
        # and this one has are delivered again, and copied again (harmless); see redis/redis#5433.
        logger.warning("The group %r of %r is gone (a failover?): creating it again", self.group, self.stream)
        self._join()
        return []

    def _receive_many(self, timeout: float, count: int) -> list[Message]:
        if time.monotonic() >= self._next_claim:
            self._claim()
        with self._lock:
            claimed, self._claimed = self._claimed[:count], self._claimed[count:]
        if claimed:
            return [self._take(m) for m in claimed]
        reply = cast(
            "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
            self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count,
                                   block=max(1, int(timeout * 1000))),
        )  # fmt: skip
        return [self._take(_stream_message(entry_id, fields)) for _stream, entries in reply or () for entry_id, fields
                in entries]  # fmt: skip

    def ack(self, message: Message) -> None:
        self.ack_many([message])

    def ack_many(self, messages: Sequence[Message]) -> None:
        # The delivery guarantee: an entry is acknowledged only here, after
        # every destination holds the object (or its failure is dead-lettered).
        receipts = [m.receipt for m in messages]
        try:
            self.client.xack(self.stream, self.group, *receipts)
        except redis.RedisError:
            self._unacked.extend(receipts)  # acknowledged on reconnect (connect)
            raise
        finally:
            for message in messages:
                self.release(message)

    def release(self, message: Message) -> None:
        """Stop keeping the entry fresh: it turns idle, and a listener (maybe this one) claims it after claim_idle."""
        with self._lock:
            self.inflight.discard(message.receipt)

    def leave(self) -> None:
        """Take this listener out of the group on a clean stop, but only while it holds no pending entry:
        one it holds must stay visible, to be claimed by another."""
        try:
            held = self.client.xpending_range(self.stream, self.group, "-", "+", 1, consumername=self.consumer)
            if not held:
                self.client.xgroup_delconsumer(self.stream, self.group, self.consumer)
        except redis.RedisError as e:
            logger.debug("Could not leave the group %r: %s", self.group, e)

    def close(self) -> None:
        """Pending entries stay pending: another listener claims them after claim_idle."""
        if self._heartbeat is not None:
            thread, stop = self._heartbeat
            stop.set()
            thread.join(5)
            self._heartbeat = None

    def _take(self, message: Message) -> Message:
        with self._lock:
            self.inflight.add(message.receipt)
        return message

    def _beat(self, stop: threading.Event) -> None:
        """Every claim_idle/4, reset the idle time of the entries this listener still owns and works on."""
        while not stop.wait(self.heartbeat_seconds):
            with self._lock:
                working = self.inflight | {m.receipt for m in self._claimed}
            if not working:
                continue
            try:
                self._refresh(working)
            except redis.RedisError as e:
                logger.debug("Could not refresh the in-flight entries: %s", e)  # they turn idle: that is the point

    def _refresh(self, working: set[bytes]) -> None:
        # Only entries still ours: one another listener claimed while this one
        # was cut off is its now, and claiming it back would copy it twice at once.
        mine = self.client.xpending_range(
            self.stream, self.group, "-", "+", max(len(working) * 2, 100), consumername=self.consumer
        )
        ids: list[Any] = [entry["message_id"] for entry in mine if entry["message_id"] in working]
        if ids:
            self.client.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)

    def _claim(self) -> None:
        """Take over entries idle past claim_idle: their listener stopped, or lost Redis that long."""
        self._next_claim = time.monotonic() + max(self.claim_idle_ms / 4000, 0.5)
        reply = self.client.xautoclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms, start_id="0-0", count=16
        )
        with self._lock:
            waiting = {m.receipt for m in self._claimed}
            for entry_id, fields in reply[1]:
                if fields is None:  # deleted from the stream since it was delivered
                    self.client.xack(self.stream, self.group, entry_id)
                    continue
                if entry_id not in self.inflight and entry_id not in waiting:
                    logger.warning("Claimed %s, left pending by a listener that stopped", entry_id.decode())
                    self._claimed.append(_stream_message(entry_id, fields))


class ListDelivery:
    """BLMOVE from a list into this consumer's processing list; LREM once done."""

    def __init__(self, client: redis.Redis, key: str, consumer: str) -> None:
        self.client = client
        self.key = key
        self.consumer = consumer
        self.processing = names.processing_list(key, consumer)
        self._recovered = False
        self._unacked: list[bytes] = []  # elements done while Redis was unreachable
        self._taken: Counter[bytes] = Counter()  # elements received and not yet acknowledged
        self._lock = threading.Lock()

    def connect(self) -> None:
        while self._unacked:  # else they would stay in the processing list until a restart
            self.client.lrem(self.processing, 1, _element(self._unacked[0]))
            self._unacked.pop(0)
        if self._recovered:
            self._requeue_stranded()
            return
        moved = 0
        # What this consumer held when it last stopped goes back to the head
        # of the queue, to be copied again (copies are idempotent).
        while self.client.lmove(self.processing, self.key, "RIGHT", "LEFT") is not None:
            moved += 1
        moved += self._recover_former()
        if moved:
            logger.warning("Recovered %d announcement(s) left in %r by a previous run", moved, self.processing)
        self._recovered = True

    def _recover_former(self) -> int:
        """Put back what is left in the processing list's name from before it had a hash tag."""
        former, moved = names.former_processing_list(self.key, self.consumer), 0
        # CROSSSLOT on a Redis Cluster, where the name without a hash tag never worked: nothing to recover there.
        with contextlib.suppress(redis.ResponseError, redis.exceptions.RedisClusterException):
            while former != self.processing and self.client.lmove(former, self.key, "RIGHT", "LEFT") is not None:
                moved += 1
        return moved

    def _requeue_stranded(self) -> None:
        """Put back what a BLMOVE moved as the connection broke: its reply was lost, so nobody works on it."""
        with self._lock:
            held = Counter(self._taken)
        stranded = []
        for data in cast("list[bytes]", self.client.lrange(self.processing, 0, -1)):
            if held[data]:
                held[data] -= 1
            else:
                stranded.append(data)
        for data in reversed(stranded):
            pipe = self.client.pipeline(transaction=True)  # moved, never dropped nor doubled
            pipe.lrem(self.processing, -1, _element(data))
            pipe.lpush(self.key, data)
            pipe.execute()
        if stranded:
            logger.warning("Put back %d announcement(s) taken from %r as the connection broke", len(stranded), self.key)

    def receive(self, timeout: float) -> Message | None:
        return next(iter(self.receive_many(timeout, 1)), None)

    def receive_many(self, timeout: float, count: int) -> list[Message]:
        wait = cast(int, max(timeout, 0.01))  # a float: BLMOVE's timeout is a double since Redis 6
        first = cast("bytes | None", self.client.blmove(self.key, self.processing, wait, "LEFT", "RIGHT"))
        if first is None:
            return []
        taken = [first]
        if count > 1:  # whatever else waits, in one round trip
            pipe = self.client.pipeline(transaction=False)
            for _ in range(count - 1):
                pipe.lmove(self.key, self.processing, "LEFT", "RIGHT")
            taken += [data for data in pipe.execute() if data is not None]
        with self._lock:
            self._taken.update(taken)
        return [Message(data, receipt=data) for data in taken]

    def ack(self, message: Message) -> None:
        self.ack_many([message])

    def ack_many(self, messages: Sequence[Message]) -> None:
        # The delivery guarantee: removed from the processing list only once
        # every destination holds the object (or its failure is dead-lettered).
        receipts = [m.receipt for m in messages]
        try:
            if len(receipts) == 1:
                self.client.lrem(self.processing, 1, receipts[0])
            else:
                pipe = self.client.pipeline(transaction=False)
                for receipt in receipts:
                    pipe.lrem(self.processing, 1, _element(receipt))
                pipe.execute()
        except redis.RedisError:
            self._unacked.extend(receipts)  # removed on reconnect (connect)
            raise
        finally:
            with self._lock:
                self._taken.subtract(receipts)
                for receipt in receipts:
                    if self._taken[receipt] <= 0:
                        self._taken.pop(receipt, None)

    def release(self, message: Message) -> None:
        """Put the element back at the tail of the queue, to be taken again (by any listener)."""
        with self._lock:
            self._taken[message.receipt] -= 1
            if self._taken[message.receipt] <= 0:
                del self._taken[message.receipt]
        # Moved, never dropped nor doubled. If Redis cannot take it now, it
        # stays in the processing list, untracked: the next reconnect puts it back.
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(self.processing, -1, message.receipt)
        pipe.rpush(self.key, message.receipt)
        pipe.execute()

    def leave(self) -> None:
        """The processing list stays: the next start of this consumer recovers it."""

    def close(self) -> None:
        """The processing list stays: the next start of this consumer recovers it."""


def publish(client: redis.Redis, mode: Mode, target: str, data: bytes, *, replicas: int = 0) -> int:
    """Announce `data` the way `mode` delivers it; returns subscribers reached (pubsub) or 1.

    With `replicas`, returns only once that many replicas hold it (WAIT), and
    raises NotReplicated when they do not within WAIT_SECONDS: a failover
    before they do would lose it, so the caller must not report success.
    """
    if mode == Mode.STREAM:
        client.xadd(target, {names.STREAM_FIELD: data}, maxlen=names.STREAM_MAXLEN, approximate=True)
    elif mode == Mode.LIST:
        client.rpush(target, data)
    else:
        return int(client.publish(target, data))
    if replicas:
        wait_replicas(client, target, replicas)
    return 1


def wait_replicas(client: redis.Redis, key: str, replicas: int) -> None:
    """Wait until `replicas` replicas of the master holding `key` have what this client wrote there."""
    cluster: Any = client  # connect_redis gives a RedisCluster as a Redis
    if isinstance(cluster, redis.RedisCluster):  # WAIT goes to the master of the key's slot
        node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
        wait = ("WAIT", replicas, int(WAIT_SECONDS * 1000))
        held = int(cluster.execute_command(*wait, target_nodes=node))  # type: ignore[no-untyped-call]
    else:
        held = int(client.wait(replicas, int(WAIT_SECONDS * 1000)))
    if held < replicas:
        raise NotReplicated(f"{held} of {replicas} replica(s) acknowledged within {WAIT_SECONDS:g}s")


def _stream_message(entry_id: bytes, fields: dict[bytes, bytes]) -> Message:
    data = fields.get(names.STREAM_FIELD.encode())
    if data is None and fields:
        data = next(iter(fields.values()))  # a producer that named the field otherwise
    millis = int(entry_id.split(b"-")[0])
    return Message(data or b"", receipt=entry_id, published_at=millis / 1000)


def _element(data: bytes) -> str:
    """A list element for LREM: redis-py annotates it as str, and sends bytes as they are (elements are raw bytes)."""
    return cast(str, data)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _quietly(call: Any) -> None:
    if call is None:
        return
    with contextlib.suppress(redis.RedisError, OSError):  # the connection is already gone
        call()


def make_delivery(client: redis.Redis, pubsub: PubSubConfig) -> Delivery:
    """The Delivery that `[pubsub] mode` asks for."""
    if pubsub.mode is Mode.STREAM:
        return StreamDelivery(
            client, pubsub.stream, pubsub.group, pubsub.consumer or default_consumer(), claim_idle=pubsub.claim_idle
        )
    if pubsub.mode is Mode.LIST:
        # Stable across restarts (unlike host:pid), so a restarted listener finds its processing list.
        return ListDelivery(client, pubsub.list, pubsub.consumer or socket.gethostname())
    return PubSubDelivery(client, pubsub.channel, pattern=pubsub.pattern)


def describe(pubsub: PubSubConfig) -> str:
    """How logs name what a listener reads."""
    if pubsub.mode is Mode.STREAM:
        return f"stream {pubsub.stream!r} (group {pubsub.group!r})"
    if pubsub.mode is Mode.LIST:
        return f"list {pubsub.list!r}"
    return f"{'pattern' if pubsub.pattern else 'channel'} {pubsub.channel!r}"
