"""`python -m tests.servers moto|redis`: start one server in a temp dir, print where it is, wait for SIGTERM."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading

from tests.servers.moto import start_moto
from tests.servers.redis import RedisServer


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("moto", "redis"):
        print("usage: python -m tests.servers moto|redis", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="s3s3-server-") as workdir:
        if argv[0] == "redis":
            server = RedisServer(workdir).start()
            print(f"redis {server.url}", flush=True)
        else:
            server = start_moto(workdir)
            print(f"moto {server.endpoint_url} {server.access_key} {server.secret_key}", flush=True)
        stop.wait()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
