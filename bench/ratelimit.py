"""One request rate per store, shared by a fleet: three processes copying through a store that throttles.

    python bench/ratelimit.py [--rate 50] [--objects 3000] [--processes 3]

Two S3 servers (SeaweedFS, moto if it does not start) and a private
redis-server. The destination is reached through a fault proxy that answers
503 SlowDown to every request beyond --rate in the last second, as a store
throttling per prefix or per address does. --objects small objects are
split in --processes key ranges (`s3s3bucket --split`) and copied by as many
`s3s3bucket --work` processes at once: first with the destination's
`max_requests_per_second = RATE` (the rate shared through Redis, lowered on
SlowDown and grown back), then without it. For each, a table: requests,
SlowDown answers (all, and after the first 10 s), the requests the store
accepted per second after the first 10 s against RATE, and the wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.bucket_scale import start_stores  # noqa: E402
from tests.faults import FaultProxy  # noqa: E402
from tests.helpers import endpoint_section, via  # noqa: E402
from tests.servers.base import Server  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402

BUCKET = os.path.join(os.path.dirname(sys.executable), "s3s3bucket")
WARM_UP = 10.0  # seconds not counted in the SlowDown share and the throughput


def fill(source: Server, bucket: str, objects: int) -> None:
    source.client().create_bucket(Bucket=bucket)
    client = source.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"obj/{i:05d}", Body=os.urandom(512)),
                      range(objects)))  # fmt: skip


def copy_once(workdir: str, source: Server, dest: Server, bucket: str, redis_url: str, args: argparse.Namespace,
              limited: bool) -> dict[str, object]:  # fmt: skip
    """Split and work one copy into a fresh bucket through a throttling proxy; what the proxy saw."""
    target = f"rl-{uuid.uuid4().hex[:8]}"
    dest.client().create_bucket(Bucket=target)
    proxy = FaultProxy(dest.endpoint_url).start()
    proxy.max_rate = args.rate
    extra = {"max_requests_per_second": args.rate} if limited else {}
    path = os.path.join(workdir, f"{target}.ini")
    text = endpoint_section("source", source, bucket) + endpoint_section("dest1", via(dest, proxy), target, **extra)
    with open(path, "w") as f:
        f.write(text + f"[pubsub]\nurl = {redis_url}\n")
    try:
        subprocess.run([BUCKET, "--config", path, "--split", str(args.processes)], check=True, capture_output=True)
        proxy.timeline.clear()
        start = time.monotonic()
        workers = [subprocess.Popen([BUCKET, "--config", path, "--work"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for _ in range(args.processes)]  # fmt: skip
        codes = [w.wait() for w in workers]
        wall = time.monotonic() - start
        timeline = list(proxy.timeline)
    finally:
        proxy.stop()
    copied = sum(1 for page in dest.client().get_paginator("list_objects_v2").paginate(Bucket=target)
                 for _ in page.get("Contents", []))  # fmt: skip
    late = [what for at, what in timeline if at - start >= WARM_UP]
    last = max((at for at, what in timeline if what == "forwarded"), default=start + WARM_UP)
    accepted = sum(1 for what in late if what == "forwarded")
    per_second = accepted / max(last - start - WARM_UP, 1e-9)
    return {
        "requests": len(timeline), "SlowDown answers": sum(1 for _, what in timeline if what == "slowdown"),
        "SlowDown share after 10 s": f"{100 * late.count('slowdown') / max(len(late), 1):.1f} %",
        "accepted per second after 10 s": f"{per_second:.1f}",
        "of the store's rate": f"{100 * per_second / args.rate:.0f} %",
        "objects copied": f"{copied} of {args.objects}", "wall seconds": f"{wall:.1f}",
        "exit codes": ",".join(map(str, codes)),
    }  # fmt: skip


def print_table(title: str, rows: dict[str, object]) -> None:
    width = max(len(name) for name in rows)
    print(f"\n{title}\n{'-' * (width + 16)}")
    for name, value in rows.items():
        print(f"{name:<{width}}  {value!s:>14}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=50, help="requests per second the store accepts (default 50)")
    parser.add_argument("--objects", type=int, default=3000, help="small objects to copy (default 3000)")
    parser.add_argument("--processes", type=int, default=3, help="s3s3bucket --work processes (default 3)")
    parser.add_argument("--stores", default="auto", choices=("auto", "seaweedfs", "moto"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3s3-ratelimit-") as workdir:
        (source, dest), kind = start_stores(args.stores, workdir)
        os.makedirs(os.path.join(workdir, "redis"))
        redis_server = RedisServer(os.path.join(workdir, "redis")).start()
        try:
            bucket = f"src-{uuid.uuid4().hex[:8]}"
            fill(source, bucket, args.objects)
            print(f"{kind}; the destination answers SlowDown above {args.rate} requests/s; {args.processes} "
                  f"s3s3bucket --work processes copy {args.objects} objects of 512 bytes", flush=True)  # fmt: skip
            for limited in (True, False):
                rows = copy_once(workdir, source, dest, bucket, redis_server.url, args, limited)
                title = (f"with max_requests_per_second = {args.rate}, shared through Redis" if limited
                         else "without a limit (each request retried on its own)")  # fmt: skip
                print_table(title, rows)
        finally:
            redis_server.stop()
            source.stop()
            dest.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
