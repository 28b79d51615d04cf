"""A fault-injecting HTTP proxy on 127.0.0.1, put in front of an S3 server to make it misbehave.

For a configurable fraction of requests (those `only` admits, if set) it
answers 503, or 503 `SlowDown` with S3's XML error body, or drops the
connection half-way through reading the request, or stalls before answering,
or sends the store's answer cut half-way through its body and then closes the
connection cleanly (`fin`, a FIN) or resets it (`rst`), at most
`max_faults_per_path` times for one object, if set. An outage fails every
request for a while. Requests whose path holds a "doomed" marker always get
503. Above `max_rate` requests a second it answers SlowDown. Requests
matching `hold` wait at a gate until the test opens it. It counts what it
did and how many PUTs of one path ran at once.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

FAULTS = ("503", "slowdown", "drop", "stall")
CUTS = ("fin", "rst")  # the store's answer cut half-way through its body, then a clean close or a reset
# Also "reset": the request half read, then the connection reset, nothing forwarded (a store going away).
GATE_SECONDS = 30.0  # longest a held request waits, so a failed test cannot hang
# Hop-by-hop headers, and Expect (the proxy answers 100-continue itself).
_NOT_FORWARDED = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "expect", "te", "upgrade"}
_NOT_RELAYED = _NOT_FORWARDED | {"server", "date"}  # send_response writes its own
_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message><RequestId>faults</RequestId></Error>"
)


class FaultProxy:
    """Forwards every request to `upstream`, except those it chooses to fail."""

    def __init__(self, upstream: str, *, rate: float = 0.0, seed: int = 0, stall_seconds: float = 2.0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate  # fraction of requests given one of `faults`
        self.faults: tuple[str, ...] = FAULTS
        self.doomed: tuple[str, ...] = ()  # substrings of a (decoded) path always answered 503
        self.stall_seconds = stall_seconds
        self.max_faults_per_path: int | None = None  # after this many faults a path is always forwarded
        self._faulted: Counter[str] = Counter()
        self.hold: Callable[[str, str], bool] | None = None  # (method, path) -> wait at the gate
        self.only: Callable[[str, str, str], bool] | None = None  # (method, path, query) -> may be faulted
        self.outage_fault = "reset"  # what every request gets during an outage
        self.max_rate = 0.0  # above this many requests in the last second, answer SlowDown (0: no cap), as stores do
        self._recent: deque[float] = deque()  # when the requests of the last second were let through
        self._outage_until = 0.0
        self.gate = threading.Event()
        self.counts: Counter[str] = Counter()  # fault or "forwarded" -> requests
        self.requests: list[tuple[str, str, int]] = []  # (method, decoded path, status or 0 if dropped)
        self.timeline: list[tuple[float, str]] = []  # (monotonic time, fault or "forwarded") of each request
        self.puts_at_once: Counter[str] = Counter()  # path -> most PUTs of it in flight together
        self._puts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def healthy(self) -> None:
        """From now on forward everything."""
        self.rate, self.doomed, self.hold, self.only = 0.0, (), None, None
        self._outage_until = 0.0
        self.gate.set()

    def outage(self, seconds: float, fault: str = "reset") -> None:
        """Fail every request with `fault` for the next `seconds`."""
        with self._lock:
            self.outage_fault = fault
            self._outage_until = time.monotonic() + seconds

    def count(self, method: str, path_part: str) -> int:
        """Requests of `method` whose path holds `path_part` that were forwarded."""
        with self._lock:
            return sum(1 for m, p, status in self.requests if m == method and path_part in p and status)

    def choose(self, method: str, path: str, query: str = "") -> str:
        """What to do with one request: a fault's name, or "forward"."""
        with self._lock:
            if time.monotonic() < self._outage_until:
                return self.outage_fault
            if self.max_rate and self._over_rate():
                return "slowdown"
            if any(marker in path for marker in self.doomed):
                return "doomed"
            if self.only is not None and not self.only(method, path, query):
                return "forward"
            spent = self.max_faults_per_path is not None and self._faulted[path] >= self.max_faults_per_path
            if self.rate and not spent and self._random.random() < self.rate:
                self._faulted[path] += 1
                return self._random.choice(self.faults)
            return "forward"

    def _over_rate(self) -> bool:
        """True when max_rate requests were let through in the last second; else count this one in."""
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.max_rate:
            return True
        self._recent.append(now)
        return False

    def faulted(self) -> set[str]:
        """The paths that were given at least one random fault."""
        with self._lock:
            return set(self._faulted)

    def record(self, what: str, method: str, path: str, status: int) -> None:
        with self._lock:
            self.counts[what] += 1
            self.requests.append((method, path, status))
            self.timeline.append((time.monotonic(), what))

    def put_started(self, path: str) -> None:
        with self._lock:
            self._puts[path] += 1
            self.puts_at_once[path] = max(self.puts_at_once[path], self._puts[path])

    def put_ended(self, path: str) -> None:
        with self._lock:
            self._puts[path] -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, proxy: FaultProxy) -> None:
        super().__init__(address, handler)
        self.proxy = proxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on a dropped or stalled request is expected here."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, and botocore's Expect: 100-continue is answered

    def _handle(self) -> None:
        proxy, method = self.server.proxy, self.command
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            raise AssertionError("the fault proxy reads Content-Length bodies only")
        length = int(self.headers.get("Content-Length") or 0) if method != "HEAD" else 0
        what = proxy.choose(method, path, parts.query)
        if what in ("drop", "reset"):
            # Take half the body (the client is mid-send), then hang up without an answer.
            self.rfile.read(length // 2)
            proxy.record(what, method, path, 0)
            self.close_connection = True
            if what == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self.rfile.read(length)
        if what in ("503", "doomed"):
            proxy.record(what, method, path, 503)
            return self._error(503, "ServiceUnavailable", "Please try again (fault proxy).")
        if what == "slowdown":
            proxy.record(what, method, path, 503)
            return self._error(503, "SlowDown", "Please reduce your request rate.")
        if method == "PUT":  # in flight from here, held or not
            proxy.put_started(path)
        try:
            if what == "stall":
                time.sleep(proxy.stall_seconds)
            if proxy.hold is not None and proxy.hold(method, path):
                proxy.gate.wait(GATE_SECONDS)
            self._forward(method, path, body, what if what in ("stall", *CUTS) else "forwarded")
        finally:
            if method == "PUT":
                proxy.put_ended(path)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    def _forward(self, method: str, path: str, body: bytes, what: str) -> None:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            upstream.request(method, self.path, body=body if method != "HEAD" else None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        proxy.record(what, method, path, response.status if what not in CUTS else 0)
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() in _NOT_RELAYED or (name.lower() == "content-length" and method != "HEAD"):
                continue
            self.send_header(name, value)
        if method != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if what in CUTS:
            return self._cut(data, reset=what == "rst")
        if method != "HEAD":
            self.wfile.write(data)

    def _cut(self, data: bytes, *, reset: bool) -> None:
        """Send half the body the headers promised, then close: cleanly (FIN) or with a reset (RST)."""
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        if reset:  # SO_LINGER with a zero timeout: close() sends RST, not FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_WR)

    def _error(self, status: int, code: str, message: str) -> None:
        data = b"" if self.command == "HEAD" else _ERROR.format(code=code, message=message).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the proxy's record is in FaultProxy.requests."""
