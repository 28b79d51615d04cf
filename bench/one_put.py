"""Where one proven PUT stops paying: an object written with one PUT, copied in one PUT or in parts, by size.

    python bench/one_put.py [--sizes 128,256,512,1024] [--repeat 2]

Two SeaweedFS servers and a private redis-server; the source holds one
object of each size (MiB) written with one PUT, so its ETag is its MD5. Each
is copied into a fresh bucket by `s3s3bucket` twice: as shipped (one
streamed PUT the store proves up to 1 GiB, s3s3.copy.plan.PROVEN_PUT_MAX, parts
read in order and hashed above it), and with `multipart = False` at the destination (one proven PUT
at every size). For each, the best of --repeat runs: wall and CPU seconds of
s3s3bucket (from wait4) and its peak RSS; every copy is read back and its MD5
checked.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.data import MiB, Workload, fill_source, verify  # noqa: E402
from bench.stores import drop_bucket, start_stores  # noqa: E402
from bench.tools import measure, write_s3s3_ini  # noqa: E402
from tests.servers.base import binary_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="128,256,512,1024", help="object sizes in MiB")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    script = binary_path("s3s3bucket")
    assert script is not None, "pip install -e . first"
    with tempfile.TemporaryDirectory(prefix="s3s3-one-put-") as workdir:
        stores = start_stores(workdir, with_redis=True)
        try:
            workloads = {size: Workload(f"one-put-{size}", 1, size * MiB, single_put=True) for size in sizes}
            manifest = fill_source(stores.source, list(workloads.values()))
            print(f"{'MiB':>5} {'copy':<24} {'seconds':>8} {'CPU s':>6} {'MB/s':>6} {'RSS MiB':>8}")
            for size in sizes:
                for label, one_put in (("as shipped", False), ("one PUT (multipart off)", True)):
                    best = None
                    for attempt in range(args.repeat):
                        bucket = f"one-put-{size}-{int(one_put)}-{attempt}"
                        stores.dest.client().create_bucket(Bucket=bucket)
                        ini = os.path.join(workdir, f"{bucket}.ini")
                        write_s3s3_ini(ini, stores, bucket, workloads[size].prefix)
                        if one_put:
                            _turn_multipart_off(ini)
                        run = measure([script, "--config", ini], log_path=os.path.join(workdir, f"{bucket}.log"))
                        assert run.returncode == 0, run.failure()
                        verify(stores.dest, bucket, workloads[size], manifest)  # its key, size and MD5
                        drop_bucket(stores.dest, bucket)
                        if best is None or run.seconds < best.seconds:
                            best = run
                    assert best is not None
                    rate = size * MiB / 1e6 / best.seconds
                    print(f"{size:>5} {label:<24} {best.seconds:>8.2f} {best.cpu:>6.2f} {rate:>6.1f} "
                          f"{best.peak_rss / MiB:>8.0f}", flush=True)  # fmt: skip
        finally:
            stores.stop()
    return 0


def _turn_multipart_off(ini: str) -> None:
    with open(ini) as f:
        text = f.read()
    with open(ini, "w") as f:
        f.write(text.replace("[dest1]\n", "[dest1]\nmultipart = False\n", 1))


if __name__ == "__main__":
    sys.exit(main())
