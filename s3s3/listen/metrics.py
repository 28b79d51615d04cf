"""What the listener counts, and the HTTP endpoint that shows it: /metrics and /healthz."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from s3s3.outcome import Action, Outcome
from s3s3.store import Store, store_name

if TYPE_CHECKING:
    from s3s3.listen.backlog import Watcher

_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900)  # to 15 min: RTC's SLA


class Metrics:
    """The listener's counters, in a registry of their own (so several listeners can share a process)."""

    def __init__(self, stores: Sequence[Store] = ()) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if any(store.throttle.rate is not None for store in stores):
            r.register(_ThrottleCollector(stores))
        self.events_received = Counter("s3s3_events_received", "Announcements received.", registry=r)
        self.events_rejected = Counter("s3s3_events_rejected", "Announcements rejected as bad input.", registry=r)
        self.copies = Counter(
            "s3s3_copies", "Keys handled, by destination and outcome.", ["dest", "outcome"], registry=r
        )
        self.bytes_copied = Counter("s3s3_bytes_copied", "Bytes copied, by destination.", ["dest"], registry=r)
        self.copy_seconds = Histogram(
            "s3s3_copy_duration_seconds",
            "Time to copy one key to one destination.",
            ["dest"],
            buckets=_SECONDS,
            registry=r,
        )
        self.lag_seconds = Histogram(
            "s3s3_replication_lag_seconds",
            "From the event (or its publication) until every destination holds it.",
            buckets=_SECONDS,
            registry=r,
        )
        self.in_flight = Gauge("s3s3_copies_in_flight", "Announcements being copied now.", registry=r)
        self.oldest_copy = Gauge(
            "s3s3_oldest_copy_seconds", "Age of the oldest announcement being copied now (0: none).", registry=r
        )
        self.last_copy = Gauge(
            "s3s3_last_copy_timestamp_seconds",
            "When this listener last landed a copy, by destination.",
            ["dest"],
            registry=r,
        )
        self.reconnects = Counter("s3s3_redis_reconnects", "Times the Redis connection was lost.", registry=r)
        self.versions_copied = Counter(
            "s3s3_versions_copied",
            "Versions replayed to a destination keeping every version, by destination.",
            ["dest"],
            registry=r,
        )
        self.delete_markers_replayed = Counter(
            "s3s3_delete_markers_replayed",
            "Delete markers replayed to a destination keeping every version, by destination.",
            ["dest"],
            registry=r,
        )
        self._counted: dict[tuple[str, Action], Counter] = {}
        self._copied: dict[str, tuple[Gauge, Counter, Histogram]] = {}
        self._replayed: dict[str, tuple[Counter, Counter]] = {}

    def watch(self, watcher: Watcher) -> None:
        """Export the backlog `watcher` reads (in its own thread: a scrape never waits on Redis)."""
        self.registry.register(_BacklogCollector(watcher))

    def outcome(self, outcome: Outcome) -> None:
        """Count one key's outcome at one destination."""
        # prometheus-client looks labelled children up under a lock on every call: each is looked up once.
        key = (outcome.dest, outcome.action)
        counted = self._counted.get(key) or self._counted.setdefault(key, self.copies.labels(*key))
        counted.inc()
        if outcome.action is Action.COPIED:
            copied = self._copied.get(outcome.dest) or self._copied.setdefault(outcome.dest, (
                self.last_copy.labels(outcome.dest), self.bytes_copied.labels(outcome.dest),
                self.copy_seconds.labels(outcome.dest),
            ))  # fmt: skip
            copied[0].set_to_current_time()
            copied[1].inc(outcome.size)
            copied[2].observe(outcome.seconds)

    def replayed(self, dest: str, outcomes: Sequence[Outcome]) -> None:
        """Count what one replay of a key's history wrote at `dest`: versions, and delete markers."""
        if not outcomes:
            return
        counters = self._replayed.get(dest) or self._replayed.setdefault(
            dest, (self.versions_copied.labels(dest), self.delete_markers_replayed.labels(dest))
        )
        for outcome in outcomes:
            if outcome.version_id is None:
                continue
            if outcome.action is Action.COPIED:
                counters[0].inc()
            elif outcome.action is Action.DELETED:
                counters[1].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ThrottleCollector(Collector):
    """Each store's request rate in force and the throttled answers this process saw (max_requests_per_second)."""

    def __init__(self, stores: Sequence[Store]) -> None:
        self.stores = {store_name(s.endpoint): [t for t in stores if store_name(t.endpoint) == store_name(s.endpoint)]
                       for s in stores}  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        rate = GaugeMetricFamily("s3s3_request_rate_limit", "Requests per second a store may be sent now, the "
                                 "fleet together (lowered by throttling).", labels=["store"])  # fmt: skip
        throttled = CounterMetricFamily("s3s3_requests_throttled", "Answers from a store that it is asked too fast "
                                        "(SlowDown, 503, 429).", labels=["store"])  # fmt: skip
        for name, stores in self.stores.items():
            limits = [s.throttle.rate for s in stores if s.throttle.rate is not None]
            if limits:
                rate.add_metric([name], min(limits))
            throttled.add_metric([name], sum(s.throttle.throttled for s in stores))
        yield rate
        yield throttled


class _BacklogCollector(Collector):
    """The backlog's gauges, from the Watcher's last reading; absent (and s3s3_backlog_up 0) when it is stale."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def collect(self) -> Iterator[Metric]:
        backlog = self.watcher.current()
        yield GaugeMetricFamily("s3s3_backlog_up", "1 while the backlog below was read from Redis lately, else 0.",
                                value=int(backlog is not None))  # fmt: skip
        if backlog is None:
            return
        mode = str(backlog.mode)
        for name, value, text in (
            ("s3s3_backlog_waiting", backlog.waiting,
             "Announcements not yet delivered to a listener (stream: the group's lag; list: the queue)."),
            ("s3s3_backlog_pending", backlog.pending,
             "Announcements delivered and not yet acknowledged (stream: the group's; list: this processing list)."),
            ("s3s3_backlog_oldest_pending_seconds", backlog.oldest_pending_seconds,
             "Age of the oldest announcement pending in the group (stream mode; 0: none)."),
            ("s3s3_backlog_consumers", backlog.consumers, "Listeners registered in the group (stream mode)."),
        ):  # fmt: skip
            if value is not None or name == "s3s3_backlog_oldest_pending_seconds":
                family = GaugeMetricFamily(name, text, labels=["mode"])
                family.add_metric([mode], float(value or 0))
                yield family
        yield GaugeMetricFamily("s3s3_pubsub_gaps", "Periods pubsub listeners missed while disconnected (s3s3:gaps).",
                                value=backlog.gaps)  # fmt: skip
        yield GaugeMetricFamily("s3s3_deadletter_entries", "Entries in the dead-letter stream.",
                                value=backlog.dead_letters)  # fmt: skip


class MetricsServer(ThreadingHTTPServer):
    """Serves /metrics (Prometheus text) and /healthz (200 while `healthy()`, else 503)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        healthy: Callable[[], bool],
    ) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.healthy = healthy

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="s3s3-metrics", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path.startswith("/metrics"):
            return self._answer(200, self.server.metrics.render(), CONTENT_TYPE_LATEST)
        if self.path.startswith("/healthz"):
            ok = self.server.healthy()
            return self._answer(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n", "text/plain")
        return self._answer(404, b"not found\n", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Scrapes are not worth a log line each."""
