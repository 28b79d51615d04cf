"""A private redis-server on a free loopback port, in a temp dir, that tests may kill and restart."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from tests.servers.base import free_port, stop_process, wait_for_port


@dataclass
class RedisServer:
    """One redis-server process; `url` for clients, `stop()`/`start()` to kill and bring it back."""

    workdir: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    extra_args: tuple[str, ...] = ()  # appended to the defaults, e.g. ("--appendonly", "yes") for persistence

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--logfile", f"{self.workdir}/redis.log",
             *self.extra_args],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout=10, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
