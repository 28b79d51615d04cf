"""A TCP proxy on 127.0.0.1 that can stop forwarding: one client cut off from a server while others are not.

Each new connection goes to `upstream()`, asked again every time (a
function, so the proxy can follow a Sentinel failover to the new master).
`cut()` stops forwarding in both directions: connections stay open and new
ones are accepted, but no byte passes, as when a network path goes silent;
`mend()` forwards again. Connections open during the cut are closed when it
ends, as a real network's would be by then (their bytes are lost).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class TcpProxy:
    """Forwards loopback connections to `upstream()` until cut."""

    def __init__(self, upstream: Callable[[], tuple[str, int]]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.closing = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> None:
        """Stop forwarding: every byte either way is held back (and dropped), nothing is closed."""
        self.forwarding.clear()

    def mend(self) -> None:
        """Forward again; the connections the cut silenced are closed."""
        self._close_all()
        self.forwarding.set()

    def stop(self) -> None:
        self.closing.set()
        self.forwarding.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._close_all()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._track(client)
        self.forwarding.wait()  # a connection made during a cut hangs, as a SYN to a silent network would not
        try:
            server = socket.create_connection(self.upstream(), timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._track(server)
        for source, target in ((client, server), (server, client)):
            threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.forwarding.is_set():
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _close_all(self) -> None:
        with self._lock:
            socks, self._open = self._open, set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
