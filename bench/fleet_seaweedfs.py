"""A --split sync worked by a fleet with a worker killed, on real SeaweedFS servers, verified key by key.

    python bench/fleet_seaweedfs.py [--keys 20000] [--split 16] [--workers 4]

Two `weed mini` servers and a private redis-server on loopback; the source
filled with --keys small objects (bench/bucket_scale.py's keys: a tenth under
a/, the rest under b/, numbered in order). `s3s3bucket --split`, then
--workers `s3s3bucket --work` processes as shipped; the first is killed with
SIGKILL once copies land and another is started in its place. Then every
key is read back from the destination and its MD5 compared with what was
written, and the listings of both sides compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.bucket_scale import BODY, fill, start_stores  # noqa: E402
from tests.helpers import endpoint_section  # noqa: E402
from tests.servers.base import Server  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402

BUCKET = os.path.join(os.path.dirname(sys.executable), "s3s3bucket")


def listing(server: Server, bucket: str) -> dict[str, tuple[int, str]]:
    client = server.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["Size"], item["ETag"].strip('"'))
    return found


def run(args: argparse.Namespace, workdir: str, source: Server, dest: Server, redis_url: str) -> dict[str, object]:
    source.client().create_bucket(Bucket="fleet-src")
    dest.client().create_bucket(Bucket="fleet-dst")
    config = os.path.join(workdir, "s3s3.ini")
    with open(config, "w") as f:
        f.write(endpoint_section("source", source, "fleet-src"))
        f.write(endpoint_section("dest1", dest, "fleet-dst"))
        f.write(f"[pubsub]\nurl = {redis_url}\nclaim_idle = 10\n")
    filled = fill(source, "fleet-src", args.keys, args.keys // 10)
    print(f"filled the source with {args.keys} keys in {filled:.1f} s", flush=True)
    started = time.monotonic()
    subprocess.run([BUCKET, "--config", config, "--split", str(args.split)], check=True, stdout=subprocess.DEVNULL)
    procs = [subprocess.Popen([BUCKET, "--config", config, "--work"], stdout=subprocess.PIPE, text=True,
                              stderr=subprocess.DEVNULL) for _ in range(args.workers)]  # fmt: skip
    dest_client = dest.client()
    while dest_client.list_objects_v2(Bucket="fleet-dst", MaxKeys=1000).get("KeyCount", 0) < 1000:
        time.sleep(0.2)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    killed = time.monotonic() - started
    procs.append(subprocess.Popen([BUCKET, "--config", config, "--work"], stdout=subprocess.PIPE, text=True,
                                  stderr=subprocess.DEVNULL))  # fmt: skip
    codes = [p.wait() for p in procs[1:]]
    wall = time.monotonic() - started
    status = subprocess.run([os.path.join(os.path.dirname(BUCKET), "s3s3"), "status", "--sync", "--json", "--config",
                             config], capture_output=True, text=True, check=True)  # fmt: skip
    summary = json.loads(status.stdout)
    src, dst = listing(source, "fleet-src"), listing(dest, "fleet-dst")
    want = hashlib.md5(BODY).hexdigest()

    def read_back(key: str) -> bool:
        return hashlib.md5(dest_client.get_object(Bucket="fleet-dst", Key=key)["Body"].read()).hexdigest() == want

    with ThreadPoolExecutor(16) as pool:
        intact = sum(pool.map(read_back, sorted(src)))
    return {"keys": args.keys, "split": args.split, "workers": args.workers, "killed_after": round(killed, 1),
            "wall": round(wall, 1), "exit_codes": codes, "listed_at_dest": len(dst), "same_listing": src == dst,
            "read_back_intact": intact, "summary": summary}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--split", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3s3-fleet-") as workdir:
        redis_server = RedisServer(workdir).start()
        stores: list[Server] = []
        try:
            stores, kind = start_stores("seaweedfs", workdir)
            result = run(args, workdir, *stores, redis_url=redis_server.url)
        finally:
            for server in stores:
                server.stop()
            redis_server.stop()
    print(json.dumps(result, indent=1))
    codes_ok = result["exit_codes"] == [0] * args.workers
    ok = result["same_listing"] and result["read_back_intact"] == args.keys and codes_ok
    print(f"{kind}: {'every key intact' if ok else 'NOT every key intact'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
