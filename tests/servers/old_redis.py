"""A stand-in for a Redis older than s3s3 needs: it speaks enough RESP for a client to connect and ask INFO.

It answers HELLO (RESP3 came with Redis 6.0), PING, SELECT and `INFO
[server]` as Redis 6.0 would, with the version it is given; `-ERR unknown
command` to anything else (as 6.0 does to CLIENT SETINFO, which redis-py
sends and lets fail); and refuses INFO too when asked to (as some managed
services do). No real redis-server of an old
version need be installed.
"""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

from tests.servers.base import free_port


@dataclass
class OldRedis:
    """A RESP server on 127.0.0.1:`port` claiming to be Redis `version`; `start()`, `stop()`."""

    version: str = "6.0.16"
    port: int = field(default_factory=free_port)
    refuse_info: bool = False
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OldRedis:
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while command := _read_command(self.rfile):
                    self.wfile.write(fake.answer(command))
                    self.wfile.flush()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="old-redis", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def answer(self, command: list[bytes]) -> bytes:
        name = command[0].upper()
        if name == b"HELLO":
            fields = {"server": "redis", "version": self.version, "proto": 3, "id": 1, "mode": "standalone",
                      "role": "master"}  # fmt: skip
            return b"%%%d\r\n" % (len(fields) + 1) + b"".join(
                _bulk(k) + (b":%d\r\n" % v if isinstance(v, int) else _bulk(v)) for k, v in fields.items()
            ) + _bulk("modules") + b"*0\r\n"
        if name == b"PING":
            return b"+PONG\r\n"
        if name == b"SELECT":
            return b"+OK\r\n"
        if name == b"INFO" and not self.refuse_info:
            return _bulk(f"# Server\r\nredis_version:{self.version}\r\nredis_mode:standalone\r\n")
        return b"-ERR unknown command '%s'\r\n" % command[0]


def _read_command(rfile: BinaryIO) -> list[bytes]:
    """One command sent as a RESP array of bulk strings; [] when the client has gone."""
    header = rfile.readline()
    if not header.startswith(b"*"):
        return []
    command = []
    for _ in range(int(header[1:])):
        length = int(rfile.readline()[1:])
        command.append(rfile.read(length + 2)[:-2])
    return command


def _bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)
