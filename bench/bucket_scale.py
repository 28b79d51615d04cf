"""s3s3bucket at scale: wall time and peak memory of a bucket sync over many small keys.

    python bench/bucket_scale.py [--keys 100000] [--small 10000] [--workers 32] [--store seaweedfs|moto]

Starts two S3 servers (SeaweedFS `weed mini` when it can, else moto; the output
says which) and a private redis-server, fills the source with --keys small
objects, then measures, each as a child process whose own peak RSS is read
with wait4():

1. `s3s3bucket`, first run: copies every key;
2. `s3s3bucket`, second run: nothing to do (listings, and the ledger, decide);
3. the listing diff alone (`s3s3.sync.diff.diff` over both buckets, counting pairs)
   over all keys and over the first --small keys: its memory must not grow
   with the number of keys.

Everything runs on loopback in a temp dir and is stopped at the end.
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
from multiprocessing import Pool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.helpers import endpoint_section  # noqa: E402
from tests.servers.base import Server  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402

S3S3BUCKET = os.path.join(os.path.dirname(sys.executable), "s3s3bucket")
BODY = b"s3s3 bucket-scale benchmark object\n" * 3  # 105 bytes
FILL_PROCESSES = 4
FILL_THREADS = 16

# The diff alone, as a child process: list both buckets below a prefix, count the pairs.
DIFF_ONLY = """
import sys
from s3s3.config import Config
from s3s3.sync.diff import KeyFilter, diff
from s3s3.store import open_store
config = Config.from_file(sys.argv[1])
source, dest = open_store(config.source), open_store(config.dests[0])
print(sum(1 for _ in diff(source, dest, KeyFilter(prefix=sys.argv[2]))))
"""


def key_name(i: int, small: int) -> str:
    """The first `small` keys live under a/, the rest under b/: a prefix picks the small set."""
    return f"{'a' if i < small else 'b'}/{i:08d}"


def start_stores(kind: str, workdir: str) -> tuple[list[Server], str]:
    """Two S3 servers: SeaweedFS if asked (or by default) and it starts, else moto."""
    if kind in ("auto", "seaweedfs"):
        try:
            from tests.servers.seaweedfs import start_seaweedfs

            first = start_seaweedfs(os.path.join(workdir, "weed-1"))
            try:
                return [first, start_seaweedfs(os.path.join(workdir, "weed-2"))], "SeaweedFS (weed mini)"
            except BaseException:
                first.stop()
                raise
        except (RuntimeError, TimeoutError, OSError) as e:
            if kind == "seaweedfs":
                raise
            print(f"SeaweedFS did not start ({e}); using moto", flush=True)
    from tests.servers.moto import start_moto

    servers = []
    for name in ("moto-1", "moto-2"):
        os.makedirs(os.path.join(workdir, name))
        servers.append(start_moto(os.path.join(workdir, name)))
    return servers, "moto (in-memory)"


def _fill_slice(args: tuple[str, str, str, str, int, int, int]) -> int:
    url, access_key, secret_key, bucket, start, stop, small = args
    client = Server("fill", url, access_key, secret_key).client(max_pool_connections=FILL_THREADS)
    with ThreadPoolExecutor(FILL_THREADS) as pool:
        for _ in pool.map(
            lambda i: client.put_object(Bucket=bucket, Key=key_name(i, small), Body=BODY), range(start, stop)
        ):
            pass
    return stop - start


def fill(server: Server, bucket: str, keys: int, small: int) -> float:
    """Put `keys` small objects, from several processes of many threads; return the seconds taken."""
    started = time.monotonic()
    step = -(-keys // (FILL_PROCESSES * 8))
    where = (server.endpoint_url, server.access_key, server.secret_key, bucket)
    slices = [(*where, s, min(s + step, keys), small) for s in range(0, keys, step)]
    with Pool(FILL_PROCESSES) as pool:
        done = sum(pool.imap_unordered(_fill_slice, slices))
    assert done == keys
    return time.monotonic() - started


def measured(argv: list[str]) -> tuple[float, float, str]:
    """Run a child; return (wall seconds, its peak RSS in MiB, its stdout). Fails loudly on a non-zero exit."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... exited {proc.returncode}:\n{stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout  # ru_maxrss is in KiB on Linux


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="objects in the source (default 100000)")
    parser.add_argument("--small", type=int, help="keys of the small diff (default keys/10)")
    parser.add_argument("--workers", type=int, default=32, help="s3s3bucket --workers (default 32)")
    parser.add_argument("--store", choices=("auto", "seaweedfs", "moto"), default="auto")
    args = parser.parse_args(argv)
    args.small = args.small or max(args.keys // 10, 1)
    if not 0 < args.small <= args.keys:
        parser.error("--small must be between 1 and --keys")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3s3-bucket-scale-") as workdir:
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
    source.client().create_bucket(Bucket="scale-src")
    dest.client().create_bucket(Bucket="scale-dst")
    config = os.path.join(workdir, "s3s3.ini")
    with open(config, "w") as f:
        f.write(endpoint_section("source", source, "scale-src"))
        f.write(endpoint_section("dest1", dest, "scale-dst"))
        f.write(f"[pubsub]\nurl = {redis_url}\nworkers = {args.workers}\n")
    print(f"stores: {kind} x2, redis-server {redis_url}; {args.keys} keys of {len(BODY)} bytes", flush=True)
    print(f"filled the source in {fill(source, 'scale-src', args.keys, args.small):.1f}s", flush=True)

    sync = [S3S3BUCKET, "--config", config, "--json", "--log-level", "warning", "--workers", str(args.workers)]
    rows = []
    for label in ("first run (copies every key)", "second run (nothing to do)"):
        seconds, rss, out = measured(sync)
        summary = json.loads(out)
        rows.append((label, seconds, rss, f"copied {summary['copied']}, skipped {summary['skipped']}"))
        print(f"  {label}: {seconds:.1f}s, peak RSS {rss:.0f} MiB", flush=True)
    diff_only = [sys.executable, "-c", DIFF_ONLY, config]
    for prefix, keys in (("", args.keys), ("a/", args.small)):
        seconds, rss, out = measured([*diff_only, prefix])
        assert int(out) == keys, f"the diff paired {out.strip()} keys, expected {keys}"
        rows.append((f"diff alone, {keys} keys", seconds, rss, f"{keys} pairs"))

    print(f"\ns3s3bucket on {kind}, {args.keys} keys, --workers {args.workers}")
    print(f"{'':32} {'wall':>8} {'peak RSS':>10}  result")
    for label, seconds, rss, result in rows:
        print(f"{label:32} {seconds:7.1f}s {rss:7.0f} MiB  {result}")
    big, small = rows[2][2], rows[3][2]
    print(f"diff memory, {args.keys} vs {args.small} keys: {big:.0f} vs {small:.0f} MiB ({big - small:+.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
