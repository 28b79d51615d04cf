"""The bucket sync with `versions = all`: a no-op replay against the plain no-op, and its memory by versions.

    python bench/versions.py [--keys 1000] [--versions 1,10,50] [--workers 16] [--store seaweedfs|moto]

Starts two S3 servers (SeaweedFS `weed mini` when it can, else moto; the
output says which) and a private redis-server. For each V of --versions it
fills a versioned source bucket with --keys keys of V versions each and syncs
it to a versioned destination with `versions = all` (the first run replays
every version); then measures, each sync a child process whose peak RSS and
CPU are read with wait4():

1. the second run, nothing to replay: both version listings, the version
   map from Redis, no HEAD;
2. for the middle V, the plain no-op on the same keys: a `versions = latest`
   destination synced once, then again (ListObjectsV2 on both sides).

Each row gives wall and CPU seconds, the list requests and HEADs the sync
made (counted by a Store wrapper in the child), and its peak RSS: flat in
the number of versions, the listings being streamed key by key.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.bucket_scale import start_stores  # noqa: E402
from tests.helpers import endpoint_section  # noqa: E402
from tests.servers.base import Server  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402

FILL_THREADS = 16

# One bucket sync, as s3s3bucket runs it, with every listing and HEAD counted; prints the counts and the summary.
SYNC = """
import collections, json, sys, threading
import redis
from s3s3.config import Config
from s3s3.store import open_store
from s3s3.sync.bucket import duplicate_bucket
from s3s3.sync.options import SyncOptions

COUNTED = ("list_page", "list_versions_page", "head", "get", "put", "delete")
counts, lock = collections.Counter(), threading.Lock()

class Counted:
    def __init__(self, store):
        self._store = store
    def __getattr__(self, name):
        found = getattr(self._store, name)
        if name not in COUNTED:
            return found
        def counted(*args, **kwargs):
            with lock:
                counts[name] += 1
            return found(*args, **kwargs)
        return counted

config = Config.from_file(sys.argv[1])
source, dest = Counted(open_store(config.source)), Counted(open_store(config.dests[0]))
summary = duplicate_bucket(source, [dest], options=SyncOptions(workers=int(sys.argv[2])),
                           client=redis.Redis.from_url(config.pubsub.url))
print(json.dumps({"requests": counts, "summary": summary.as_dict()}))
"""


def measured(argv: list[str]) -> tuple[float, float, float, str]:
    """Run a child; return (wall seconds, CPU seconds, peak RSS in MiB, its stdout). Fails loudly on an error."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the sync exited {os.waitstatus_to_exitcode(status)}:\n{stderr[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def versioned(server: Server, bucket: str) -> None:
    client = server.client()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def fill(server: Server, bucket: str, keys: int, versions: int) -> float:
    """`keys` keys of `versions` versions each (each key's versions in order); return the seconds taken."""
    started = time.monotonic()
    client = server.client(max_pool_connections=FILL_THREADS)

    def write(i: int) -> None:
        for n in range(versions):
            client.put_object(Bucket=bucket, Key=f"k/{i:06d}", Body=f"key {i:06d}, version {n}\n".encode())

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(write, range(keys)))
    return time.monotonic() - started


def write_ini(path: str, source: Server, src: str, dest: Server, dst: str, redis_url: str, versions: str) -> str:
    with open(path, "w") as f:
        f.write(endpoint_section("source", source, src))
        f.write(endpoint_section("dest1", dest, dst, versions=versions))
        f.write(f"[pubsub]\nurl = {redis_url}\n")
    return path


def sync(config: str, workers: int) -> tuple[float, float, float, dict[str, Any]]:
    seconds, cpu, rss, out = measured([sys.executable, "-c", SYNC, config, str(workers)])
    return seconds, cpu, rss, json.loads(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000, help="keys in each source bucket (default 1000)")
    parser.add_argument("--versions", default="1,10,50", help="versions of each key, one bucket each (default 1,10,50)")
    parser.add_argument("--workers", type=int, default=16, help="the sync's workers (default 16)")
    parser.add_argument("--store", choices=("auto", "seaweedfs", "moto"), default="auto")
    args = parser.parse_args(argv)
    args.versions = [int(v) for v in args.versions.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3s3-versions-") as workdir:
        redis_server = RedisServer(workdir).start()
        stores: list[Server] = []
        try:
            stores, kind = start_stores(args.store, workdir)
            return run(args, workdir, stores, kind, redis_server.url)
        finally:
            for server in stores:
                server.stop()
            redis_server.stop()


def run(args: argparse.Namespace, workdir: str, stores: list[Server], kind: str, redis_url: str) -> int:
    source, dest = stores
    print(f"stores: {kind} x2, redis-server {redis_url}; {args.keys} keys, --workers {args.workers}", flush=True)
    rows = []
    middle = sorted(args.versions)[len(args.versions) // 2]
    for v in args.versions:
        src, dst = f"src-v{v}", f"dst-v{v}"
        versioned(source, src)
        versioned(dest, dst)
        print(f"V={v}: filled the source in {fill(source, src, args.keys, v):.1f}s", flush=True)
        config = write_ini(os.path.join(workdir, f"v{v}.ini"), source, src, dest, dst, redis_url, "all")
        seconds, _, _, first = sync(config, args.workers)
        assert first["summary"]["versions_copied"] == args.keys * v, first["summary"]
        print(f"V={v}: first run replayed {args.keys * v} versions in {seconds:.1f}s", flush=True)
        rows.append((f"versions = all, V={v}", *sync(config, args.workers)))
        if v == middle:
            versioned(dest, "dst-latest")
            plain = write_ini(os.path.join(workdir, "latest.ini"), source, src, dest, "dst-latest", redis_url,
                              "latest")  # fmt: skip
            sync(plain, args.workers)
            rows.append((f"versions = latest, V={v}", *sync(plain, args.workers)))

    python = sys.version.split()[0]
    print(f"\nno-op bucket syncs on {kind}, {args.keys} keys, --workers {args.workers} (python {python})")
    print(f"{'':26} {'wall':>7} {'CPU':>7} {'lists':>6} {'HEADs':>6} {'writes':>7} {'peak RSS':>9}")
    for label, seconds, cpu, rss, found in rows:
        requests, summary = found["requests"], found["summary"]
        lists = requests.get("list_page", 0) + requests.get("list_versions_page", 0)
        writes = requests.get("put", 0) + requests.get("delete", 0)
        assert summary["skipped"] == args.keys and not summary["failed"], summary
        print(f"{label:26} {seconds:6.2f}s {cpu:6.2f}s {lists:6d} {requests.get('head', 0):6d} {writes:7d} "
              f"{rss:6.0f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
