"""moto's S3 server as a separate process on a free loopback port: "another S3 endpoint"."""

from __future__ import annotations

import subprocess
import sys

from tests.servers.base import Server, free_port, wait_for_port

ACCESS_KEY = "motoaccess"
SECRET_KEY = "motosecret-not-a-real-one"


def start_moto(workdir: str) -> Server:
    """Start `moto_server` (moto[server]) and return it; it keeps everything in memory."""
    port = free_port()
    with open(f"{workdir}/moto-{port}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_port(port, timeout=30, proc=proc)
    return Server("moto", f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, procs=[proc], workdir=workdir)
