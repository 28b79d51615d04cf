"""Signed S3 requests over keep-alive connections, one per thread: what the lean transport sends with.

boto3 spends 1.3-1.5 ms of CPU on each request (endpoint rules, parameter
validation, event hooks, response parsing); for small objects on a busy
machine that CPU, not the network or the store, bounds how fast s3s3 copies.
A request here is signed as botocore signs it (s3s3.store.sigv4), with the
endpoint's credentials, and sent with http.client over a connection kept per
thread.

Transient failures (a refused, reset or closed connection, an answer cut
short, a 5xx or throttling answer) are tried again with backoff, as botocore's
standard mode would; what is left is raised as a StoreError.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from s3s3.errors import StoreError
from s3s3.retry import backoff, transient_failure
from s3s3.store import sigv4
from s3s3.store.base import Buffer, store_error
from s3s3.store.response import Response
from s3s3.store.throttle import Throttle

# botocore's standard mode: up to 1 s before the second try, doubling, capped at 20 s.
REQUEST_BACKOFF = 1.0
REQUEST_BACKOFF_CAP = 20.0
MAX_TRIES = 5  # botocore's standard mode with max_attempts = 4
READ_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0  # the copies'; a connection check (check-config, status KEY) gives a shorter one


class Keys(NamedTuple):
    """Static keys in the shape of botocore's frozen credentials, which the signer reads from either."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> Keys:
        return self

    def __repr__(self) -> str:
        return f"Keys(access_key={self.access_key!r}, secret_key=***)"


class Credentials(Protocol):
    """Where the signer takes the keys from: Keys, or botocore's (refreshable) credentials."""

    def get_frozen_credentials(self) -> Any: ...


class Answer(NamedTuple):
    """An answer to a request: its status, headers, and body (unread, for a streamed GET)."""

    response: http.client.HTTPResponse
    data: bytes

    @property
    def status(self) -> int:
        return self.response.status

    def header(self, name: str, default: str = "") -> str:
        return self.response.headers.get(name, default)


class Wire:
    """Signed requests to one bucket (`base`, its URL ending in "/") over per-thread keep-alive connections.

    `connect_timeout` bounds the wait for a connection, `tries` the tries of
    a request (a connection check gives 1: it reports what it met at once),
    `throttle` how fast the store may be asked (s3s3.store.throttle).
    """

    def __init__(
        self,
        base: str,
        region: str,
        credentials: Credentials,
        *,
        verify: bool | str = True,
        connect_timeout: float = CONNECT_TIMEOUT,
        tries: int = MAX_TRIES,
        throttle: Throttle | None = None,
    ) -> None:
        parts = urlsplit(base)
        self.netloc = parts.netloc
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.host_header = sigv4.host_header(parts.scheme, self.host, parts.port)
        self.prefix = parts.path
        self.region = region
        self.credentials = credentials  # botocore credentials (refreshable) or Keys
        self.ssl_context = _ssl_context(verify) if parts.scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.tries = tries
        self.throttle = throttle or Throttle()  # every request waits its turn; throttled answers slow it down
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, closed with the Wire

    def send(
        self,
        method: str,
        key: str,
        operation: str,
        *,
        body: bytes | Iterable[Buffer] = b"",
        headers: dict[str, str] | None = None,
        query: str = "",
        stream: bool = False,
    ) -> Answer:
        """Send one request; return its answer, its body read (unless `stream` and the answer is a success).

        A body given as bytes is sent again after a transient failure; a
        streamed one is tried once (it cannot be read twice). An error answer,
        or the last failure, is raised as a StoreError.
        """
        path = self.prefix + quote(key, safe="/~")
        keys = self.credentials.get_frozen_credentials()
        signed = sigv4.sign(
            method, self.host_header, path, query, headers or {}, access_key=keys.access_key,
            secret_key=keys.secret_key, token=keys.token, region=self.region,
        )  # fmt: skip
        path += f"?{query}" if query else ""
        tries = self.tries if isinstance(body, bytes) else 1
        attempt = 0
        while True:
            attempt += 1
            self.throttle.before()
            try:
                response = self._exchange(method, path, body, signed)
                data = b"" if stream and response.status < 300 else response.read()
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                # A kept-alive connection the server closed meanwhile: again at once, on a new one.
                stale = attempt == 1 and tries > 1 and isinstance(e, http.client.RemoteDisconnected | BrokenPipeError)
                if not stale and (attempt >= tries or not transient_failure(e)):
                    raise StoreError(
                        f"{operation} on {self.netloc}: {type(e).__name__}: {e}", operation=operation,
                        code=type(e).__name__, transient=transient_failure(e),
                    ) from e  # fmt: skip
                if not stale:
                    time.sleep(backoff(attempt, REQUEST_BACKOFF, REQUEST_BACKOFF_CAP))
                continue
            if response.will_close:  # the server closes it after this answer
                self._forget()
            if response.status < 300:
                return Answer(response, data)
            marker = response.headers.get("x-amz-delete-marker") == "true"
            error = answer_error(operation, response.status, data, response.reason, delete_marker=marker)
            self.throttle.answered(error.status, error.code)
            if attempt >= tries or not error.transient:
                raise error
            time.sleep(backoff(attempt, REQUEST_BACKOFF, REQUEST_BACKOFF_CAP))

    def _exchange(
        self, method: str, path: str, body: bytes | Iterable[Buffer], headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        connection = self._connection()
        try:
            connection.request(method, path, body=body or None, headers=headers)
        except BaseException:
            # A stream's reader failed half-way: the request was cut short, so is its connection.
            self._drop()
            raise
        return connection.getresponse()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self.ssl_context is not None:
                connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.connect_timeout, context=self.ssl_context
                )
            else:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
            connection.response_class = Response  # http.client's answers, their headers read without `email`
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(READ_TIMEOUT)
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.connection = connection
            self._open.add(connection)
        return connection

    def _forget(self) -> None:
        """Stop using this thread's connection (the answer being read keeps it until it is done)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            self._open.discard(connection)

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._forget()
        if connection is not None:
            connection.close()

    def discard(self, response: http.client.HTTPResponse) -> None:
        """A body not read to its end cannot share its connection: close both."""
        if not response.isclosed():
            response.close()
            self._drop()

    def close(self) -> None:
        """Close every thread's connection."""
        for connection in list(self._open):
            connection.close()
        self._open.clear()

    def __del__(self) -> None:
        self.close()  # a Wire dropped without close() still lets go of its sockets


def answer_error(
    operation: str, status: int, data: bytes, reason: str = "", *, delete_marker: bool = False
) -> StoreError:
    """The StoreError for an error answer (its XML body, or nothing for a HEAD); of a delete marker, NotFound."""
    code, message = "", ""
    if data:
        try:
            root = ElementTree.fromstring(data)
            code = root.findtext("Code") or root.findtext("{*}Code") or ""
            message = root.findtext("Message") or root.findtext("{*}Message") or ""
        except ElementTree.ParseError:
            message = data[:200].decode("utf-8", "replace")
    if not code:  # a HEAD's error has no body
        code = "NoSuchKey" if status == 404 else str(status)
    return store_error(operation, status, code, message or reason, delete_marker=delete_marker)


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
