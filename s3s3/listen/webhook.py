"""`s3s3 webhook`: receive S3 event notifications over HTTP(S) and hand them to Redis.

Ceph RGW (an HTTP push endpoint), MinIO (a webhook target) and AWS (SNS over
HTTP) cannot write to Redis. This server takes their POSTs, checks each body
parses as an announcement, appends it to the configured stream or list, and
answers 200 only once Redis holds it: a store with persistent notifications
re-sends whatever was not accepted. Bad input gets a 4xx naming the reason.
Given a TLS context (`[webhook] tls_cert` and `tls_key`), it speaks HTTPS.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import sys
import threading
from base64 import b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis

from s3s3.config import Mode
from s3s3.errors import BadMessage, NotReplicated
from s3s3.listen.delivery import publish
from s3s3.listen.messages import is_json, parse

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # larger notification bodies are refused (413)
HANDSHAKE_SECONDS = 10.0  # a TLS client that has not finished its handshake by then is dropped


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server's TLS context from a PEM certificate chain and its unencrypted key; ssl.SSLError or OSError if not."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # An encrypted key would have OpenSSL ask for its passphrase on the terminal, which a service has not got:
    # an empty one makes it fail at once instead.
    context.load_cert_chain(cert, key, password=lambda: b"")
    return context


class WebhookServer(ThreadingHTTPServer):
    """A threading HTTP server that knows where to put what it receives."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        client: redis.Redis,
        mode: Mode,
        target: str,
        source_bucket: str,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        *,
        replicas: int = 0,
    ) -> None:
        super().__init__(address, _Handler)
        self.client = client
        self.mode = mode
        self.target = target
        self.source_bucket = source_bucket
        self.token = token
        self.replicas = replicas  # [pubsub] wait_replicas: 200 only once this many replicas hold it
        self.scheme = "https" if tls else "http"
        if tls is not None:
            # Each handshake is made by its request's thread (finish_request), not by the accepting
            # one: a client slow to finish it must not keep the others waiting.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(HANDSHAKE_SECONDS)
            request.do_handshake()
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (a failed TLS handshake: plain HTTP, an unknown CA): one line, no traceback."""
        error = sys.exc_info()[1]
        logger.warning("Webhook dropped a connection from %s: %s", client_address[0], _one_line(error))

    def start(self) -> threading.Thread:
        """Serve in a background thread (for tests and for embedding); `shutdown()` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="s3s3-webhook", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        if not self._authorised():
            return self._answer(401, "missing or wrong token")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._answer(413, f"body of {length} bytes is over {MAX_BODY}")
        body = self.rfile.read(length)
        try:
            events = parse(body, self.server.source_bucket)  # first: it names a body that is not UTF-8
            if not is_json(body.decode("utf-8")):  # stores send JSON; a bare key is no event
                raise BadMessage("not a JSON event notification")
        except BadMessage as e:
            logger.warning("Webhook rejected a notification from %s: %s", self.client_address[0], e)
            return self._answer(400, str(e))
        if not events:
            return self._answer(200, "ignored (test event)")
        try:
            reached = publish(self.server.client, self.server.mode, self.server.target, body,
                              replicas=self.server.replicas)  # fmt: skip
        except redis.RedisError as e:
            logger.error("Webhook could not hand a notification to Redis: %s", e)
            return self._answer(503, "Redis is unavailable; send it again later")
        except NotReplicated as e:  # a failover now would lose it: the store must send it again
            logger.error("Webhook could not have a notification replicated: %s", e)
            return self._answer(503, "Redis did not replicate it in time; send it again later")
        if reached == 0:
            return self._answer(503, "no listener is subscribed; send it again later")
        logger.info("Webhook accepted %d event(s) for %s", len(events), ", ".join(repr(e.key) for e in events))
        return self._answer(200, "accepted")

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, "s3s3 webhook")

    def do_HEAD(self) -> None:  # noqa: N802 - MinIO checks a webhook target is up this way
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authorised(self) -> bool:
        token = self.server.token
        if not token:
            return True
        offered = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered = header[len("Bearer ") :]
        elif header.startswith("Basic "):
            offered = _basic_password(header[len("Basic ") :])
        return hmac.compare_digest(offered.encode(), token.encode())

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Request lines may carry the token in their query: they are never logged."""


def _one_line(error: BaseException | None) -> str:
    if isinstance(error, TimeoutError):
        return f"no TLS handshake within {HANDSHAKE_SECONDS:g}s"
    return " ".join(str(error).split()) or type(error).__name__


def _basic_password(encoded: str) -> str:
    try:
        return b64decode(encoded).decode().partition(":")[2]
    except (ValueError, UnicodeDecodeError):
        return ""
