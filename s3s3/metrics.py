"""What the listener counts, and the HTTP endpoint that shows it: /metrics and /healthz."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    write_to_textfile,
)

from s3s3.outcome import Action, Outcome

if TYPE_CHECKING:
    from s3s3.bucket import Summary

_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    """The listener's counters, in a registry of their own (so several listeners can share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_received = Counter("s3s3_events_received", "Announcements received.", registry=r)
        self.events_rejected = Counter("s3s3_events_rejected", "Announcements rejected as bad input.", registry=r)
        self.copies = Counter(
            "s3s3_copies", "Keys handled, by destination and outcome.", ["dest", "outcome"], registry=r
        )
        self.bytes_copied = Counter("s3s3_bytes_copied", "Bytes copied, by destination.", ["dest"], registry=r)
        self.copy_seconds = Histogram(
            "s3s3_copy_duration_seconds", "Time to copy one key to one destination.", ["dest"],
            buckets=_SECONDS, registry=r,
        )
        self.lag_seconds = Histogram(
            "s3s3_replication_lag_seconds", "From the event (or its publication) to the copy done.",
            buckets=_SECONDS, registry=r,
        )
        self.in_flight = Gauge("s3s3_copies_in_flight", "Announcements being copied now.", registry=r)
        self.oldest_copy = Gauge(
            "s3s3_oldest_copy_seconds", "Age of the oldest announcement being copied now (0: none).", registry=r
        )
        self.deadletter = Gauge("s3s3_deadletter_entries", "Entries in the dead-letter stream.", registry=r)
        self.reconnects = Counter("s3s3_redis_reconnects", "Times the Redis connection was lost.", registry=r)

    def outcome(self, outcome: Outcome) -> None:
        """Count one key's outcome at one destination."""
        self.copies.labels(outcome.dest, outcome.action).inc()
        if outcome.action is Action.COPIED:
            self.bytes_copied.labels(outcome.dest).inc(outcome.size)
            self.copy_seconds.labels(outcome.dest).observe(outcome.seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer(ThreadingHTTPServer):
    """Serves /metrics (Prometheus text) and /healthz (200 while `healthy()`, else 503)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        healthy: Callable[[], bool],
        before_scrape: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.healthy = healthy
        self.before_scrape = before_scrape

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="s3s3-metrics", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path.startswith("/metrics"):
            self.server.before_scrape()
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


def write_textfile(path: str, summary: Summary) -> None:
    """The bucket sync's summary as a Prometheus textfile (for node_exporter), replaced atomically."""
    registry = CollectorRegistry()
    per_dest = Gauge("s3s3_bucket_keys", "Keys by destination and outcome in the last sync.", ["dest", "outcome"],
                     registry=registry)  # fmt: skip
    for dest, counts in summary.destinations.items():
        for outcome, value in vars(counts).items():
            if outcome != "bytes":
                per_dest.labels(dest, outcome).set(value)
    Gauge("s3s3_bucket_bytes_copied", "Bytes copied by the last sync.", registry=registry).set(summary.bytes)
    Gauge("s3s3_bucket_seconds", "Duration of the last sync.", registry=registry).set(summary.seconds)
    Gauge("s3s3_bucket_ok", "1 if the last sync had no failure.", registry=registry).set(int(summary.ok))
    ended = Gauge("s3s3_bucket_last_run_timestamp_seconds", "When the last sync ended.", registry=registry)
    ended.set_to_current_time()
    write_to_textfile(path, registry)
