"""The bandwidth cap: what `s3s3bucket --bwlimit` sends per second, and what the cap costs in CPU.

    python bench/bwlimit.py [--mib 60] [--rate 20MiB] [--repeat 3]

Two SeaweedFS servers (moto if they do not start) and a private
redis-server; the source holds one --mib MiB object written with one PUT and
the same uploaded in 16 MiB parts. Each is copied into a fresh bucket by
`s3s3bucket` as shipped, then with `--bwlimit RATE`; for each, the best of
--repeat runs: wall and CPU seconds (the child's, from wait4) and the rate
achieved against the cap.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.bucket_scale import start_stores  # noqa: E402
from s3s3.config import parse_size  # noqa: E402
from tests.helpers import endpoint_section  # noqa: E402
from tests.servers.base import Server  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402

BUCKET = os.path.join(os.path.dirname(sys.executable), "s3s3bucket")
MiB = 1024 * 1024


def copy_once(
    workdir: str, source: Server, dest: Server, prefix: str, redis_url: str, cap: str | None
) -> tuple[float, float]:
    """One copy of the object under `prefix` into a fresh bucket: (wall, CPU) seconds."""
    bucket = f"bw-{uuid.uuid4().hex[:8]}"
    dest.client().create_bucket(Bucket=bucket)
    config = os.path.join(workdir, f"{bucket}.ini")
    with open(config, "w") as f:
        f.write(endpoint_section("source", source, "bw-src", prefix=prefix))
        f.write(endpoint_section("dest1", dest, bucket, prefix=prefix))
        f.write(f"[pubsub]\nurl = {redis_url}\n")
    argv = [BUCKET, "--config", config, *(["--bwlimit", cap] if cap else [])]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"s3s3bucket {' '.join(argv[3:])} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=60)
    parser.add_argument("--rate", default="20MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rate = parse_size(args.rate)
    size = args.mib * MiB
    with tempfile.TemporaryDirectory(prefix="s3s3-bwlimit-") as workdir:
        redis_server = RedisServer(workdir).start()
        stores: list[Server] = []
        try:
            stores, kind = start_stores("auto", workdir)
            source, dest = stores
            client = source.client()
            client.create_bucket(Bucket="bw-src")
            body = os.urandom(size)
            client.put_object(Bucket="bw-src", Key="single/object.bin", Body=body)
            upload = client.create_multipart_upload(Bucket="bw-src", Key="parts/object.bin")["UploadId"]
            parts = []
            for number, start in enumerate(range(0, size, 16 * MiB), start=1):
                answer = client.upload_part(Bucket="bw-src", Key="parts/object.bin", UploadId=upload,
                                            PartNumber=number, Body=body[start : start + 16 * MiB])  # fmt: skip
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            client.complete_multipart_upload(Bucket="bw-src", Key="parts/object.bin", UploadId=upload,
                                             MultipartUpload={"Parts": parts})  # fmt: skip
            print(f"{kind}: one {args.mib} MiB object, best of {args.repeat}; cap {args.rate} = {rate / MiB:.1f} MiB/s")
            print(f"{'object':14} {'cap':>8} {'wall s':>8} {'CPU s':>7} {'MiB/s':>7}  vs cap")
            for prefix, label in (("single/", "one PUT"), ("parts/", "16 MiB parts")):
                for cap in (None, args.rate):
                    runs = [copy_once(workdir, source, dest, prefix, redis_server.url, cap) for _ in range(args.repeat)]
                    wall, cpu = min(runs)
                    achieved = size / wall / MiB
                    versus = f"{achieved / (rate / MiB):.3f}x" if cap else "-"
                    print(f"{label:14} {cap or 'none':>8} {wall:8.2f} {cpu:7.2f} {achieved:7.1f}  {versus}", flush=True)
        finally:
            for server in stores:
                server.stop()
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
