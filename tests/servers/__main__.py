"""`python -m tests.servers moto|redis`: start one server in a temp dir, print where it is, wait for SIGTERM."""

from __future__ import annotations

import sys

from tests.servers.base import serve
from tests.servers.moto import start_moto
from tests.servers.redis import RedisServer


def main(argv: list[str]) -> int:
    if argv == ["moto"]:
        return serve(start_moto, "s3s3-moto-")
    if argv == ["redis"]:
        return serve(lambda workdir: RedisServer(workdir).start(), "s3s3-redis-")
    print("usage: python -m tests.servers moto|redis", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
