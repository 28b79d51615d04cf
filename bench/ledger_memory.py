"""Memory the ledger takes in Redis per key, measured on a private redis-server.

    python bench/ledger_memory.py [--keys 100000] [--key-length 40]

Fills one destination's ledger hash as s3s3 does (`s3s3.state.ledger.entry`: a
multipart source ETag, the size, the destination's ETag) for --keys keys of
--key-length characters, and prints MEMORY USAGE of the hash per key, and
used_memory's growth per key.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import redis  # noqa: E402

from s3s3.state.ledger import entry  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--key-length", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3s3-ledger-") as workdir:
        server = RedisServer(workdir).start()
        try:
            client = redis.Redis.from_url(server.url)
            before = int(client.info("memory")["used_memory"])
            name = "s3s3:ledger:bench"
            pipe = client.pipeline(transaction=False)
            for i in range(args.keys):
                key = f"{i:012d}/".ljust(args.key_length, "k")
                pipe.hset(name, key, entry(f"{i:032x}-3", 20 * 1024 * 1024 + i, f"{i * 7:032x}-4"))
                if i % 10_000 == 9_999:
                    pipe.execute()
            pipe.execute()
            after = int(client.info("memory")["used_memory"])
            usage = int(client.memory_usage(name, samples=0) or 0)
            version = client.info("server")["redis_version"]
            print(f"redis {version}: {args.keys:,} ledger entries, keys of {args.key_length} characters: "
                  f"MEMORY USAGE {usage / args.keys:.0f} bytes a key, used_memory +{(after - before) / args.keys:.0f} "
                  f"bytes a key ({(after - before) / 2**20:.1f} MiB in all)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
