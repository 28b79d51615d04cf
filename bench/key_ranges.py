"""The bucket sync split by key range, at scale, against synthetic listing servers (bench/listing_server.py).

    python bench/key_ranges.py [--keys 10000000] [--shards 4] [--fleet-keys 2000000] [--differ 0.01]
                               [--split 16] [--workers 4] [--skip-noop] [--skip-fleet]

1. No-op: `s3s3bucket` over --keys keys that are the same on both sides, then
   `s3s3bucket --shard I/N` for each I: wall and CPU seconds, peak RSS, list
   requests at each server, keys checked. Each shard's list requests and keys
   are compared with 1/N of the unsharded run's.
2. Fleet: --fleet-keys keys of which a fraction --differ hold other bytes at the
   destination. `s3s3bucket --split S`, then --workers `s3s3bucket --work`
   processes; the first is killed (SIGKILL) once copies are landing, and one more
   is started in its place. Then: every differing key PUT exactly once (but
   one the killed worker may have been sending), none missed, and the fleet's
   list requests against an unsharded sync's of the same buckets.

Every s3s3 process runs as shipped (its default options) beside a private
redis-server; `claim_idle = 10` so that the killed worker's range is taken over
within the run. Prints a table and one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.listing_server import KeySpace  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402

BIN = os.path.dirname(sys.executable)
LISTS = ("list_v2", "list_v1", "list_v2_delimited", "list_v1_delimited")


class Synthetic:
    """A listing server as a child process."""

    def __init__(self, keys: int, differ: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "bench", "listing_server.py"), "--keys", str(keys),
             "--differ", str(differ)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=30) as answer:
            found: dict[str, int] = json.loads(answer.read())
        found["lists"] = sum(found.get(name, 0) for name in LISTS)
        return found

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def write_config(workdir: str, source: Synthetic, dest: Synthetic, redis_url: str) -> str:
    text = ""
    for name, server in (("source", source), ("dest1", dest)):
        text += (f"[{name}]\nendpoint_url = {server.url}\naws_access_key_id = bench\n"
                 "aws_secret_access_key = bench-secret\nbucket_name = bench\naddressing_style = path\n\n")  # fmt: skip
    text += f"[pubsub]\nurl = {redis_url}\nclaim_idle = 10\n"
    path = os.path.join(workdir, f"s3s3-{time.monotonic_ns()}.ini")
    with open(path, "w") as f:
        f.write(text)
    return path


def measured(argv: list[str]) -> dict[str, Any]:
    """Run a child: wall and CPU seconds, peak RSS (MiB) and its --json summary."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} exited {code}:\n{stderr[-2000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
            "checked": summary["checked"], "copied": summary["copied"]}  # fmt: skip


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def noop(keys: int, shards: int, workdir: str, redis: RedisServer) -> dict[str, Any]:
    source, dest = Synthetic(keys), Synthetic(keys)
    try:
        config = write_config(workdir, source, dest, redis.url)
        rows = []
        for shard in [None, *range(shards)]:
            before = source.stats(), dest.stats()
            extra = [] if shard is None else ["--shard", f"{shard}/{shards}"]
            row = measured([os.path.join(BIN, "s3s3bucket"), "--config", config, "--json", *extra])
            src, dst = delta(source.stats(), before[0]), delta(dest.stats(), before[1])
            row |= {"shard": "all" if shard is None else f"{shard}/{shards}", "source_lists": src["lists"],
                    "dest_lists": dst["lists"], "gets": src.get("get", 0), "puts": dst.get("put", 0)}  # fmt: skip
            rows.append(row)
            print(_row(row), flush=True)
        return {"keys": keys, "rows": rows}
    finally:
        source.stop()
        dest.stop()


def fleet(keys: int, differ: float, split: int, workers: int, workdir: str, redis: RedisServer) -> dict[str, Any]:
    space = KeySpace(keys, differ=differ)
    differing = sum(1 for t, c in enumerate(space.counts) for j in range(c) if space.differs(space.key(t, j)))
    source, dest = Synthetic(keys), Synthetic(keys, differ)
    result: dict[str, Any] = {"keys": keys, "differing": differing, "split": split, "workers": workers}
    try:
        config = write_config(workdir, source, dest, redis.url)
        bucket = os.path.join(BIN, "s3s3bucket")
        started = time.monotonic()
        subprocess.run([bucket, "--config", config, "--split", str(split), "--force"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        procs = [subprocess.Popen([bucket, "--config", config, "--work"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) for _ in range(workers)]  # fmt: skip
        while dest.stats().get("put", 0) < differing // 10:
            time.sleep(0.2)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        killed_at = time.monotonic() - started
        procs.append(subprocess.Popen([bucket, "--config", config, "--work"], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True))  # fmt: skip
        codes = [p.wait() for p in procs[1:]]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic() - started
        src, dst = source.stats(), dest.stats()
        result |= {"wall": wall, "cpu_children": usage.ru_utime + usage.ru_stime, "killed_after": killed_at,
                   "exit_codes": codes, "keys_put": dst["keys_put"], "keys_put_twice": dst["keys_put_twice"],
                   "puts": dst.get("put", 0), "source_lists": src["lists"], "dest_lists": dst["lists"]}  # fmt: skip
    finally:
        source.stop()
        dest.stop()
    # The same buckets, synced whole by one process, for its list requests
    source, dest = Synthetic(keys), Synthetic(keys, differ)
    try:
        config = write_config(workdir, source, dest, redis.url)
        whole = measured([os.path.join(BIN, "s3s3bucket"), "--config", config, "--json"])
        src, dst = source.stats(), dest.stats()
        result["unsharded"] = whole | {"source_lists": src["lists"], "dest_lists": dst["lists"],
                                       "puts": dst.get("put", 0)}  # fmt: skip
    finally:
        source.stop()
        dest.stop()
    return result


def _row(row: dict[str, Any]) -> str:
    return (f"  {row['shard']:>5}  wall {row['wall']:7.1f} s  cpu {row['cpu']:7.1f} s  rss {row['rss_mib']:6.1f} MiB"
            f"  lists src {row['source_lists']:6d} dst {row['dest_lists']:6d}  keys {row['checked']:9d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--fleet-keys", type=int, default=2_000_000)
    parser.add_argument("--differ", type=float, default=0.01)
    parser.add_argument("--split", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skip-noop", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="s3s3-ranges-") as workdir:
        redis = RedisServer(workdir).start()
        try:
            if not args.skip_noop:
                print(f"no-op sync of {args.keys:,} keys, then each of {args.shards} shards:", flush=True)
                report["noop"] = found = noop(args.keys, args.shards, workdir, redis)
                whole = found["rows"][0]
                for row in found["rows"][1:]:
                    row["lists_vs_quarter"] = (row["source_lists"] + row["dest_lists"]) / (
                        (whole["source_lists"] + whole["dest_lists"]) / args.shards)
                    row["keys_vs_quarter"] = row["checked"] / (whole["checked"] / args.shards)
                    print(f"  shard {row['shard']}: list requests {row['lists_vs_quarter']:.3f}x and keys "
                          f"{row['keys_vs_quarter']:.3f}x of 1/{args.shards} of the unsharded run's")  # fmt: skip
            if not args.skip_fleet:
                print(f"fleet: --split {args.split}, {args.workers} --work processes (one killed), "
                      f"{args.fleet_keys:,} keys, {args.differ:.0%} differ:", flush=True)  # fmt: skip
                report["fleet"] = f = fleet(args.fleet_keys, args.differ, args.split, args.workers, workdir, redis)
                lists = f["source_lists"] + f["dest_lists"]
                whole_lists = f["unsharded"]["source_lists"] + f["unsharded"]["dest_lists"]
                f["lists_vs_unsharded"] = lists / whole_lists
                print(f"  {f['differing']} keys differ; {f['keys_put']} were PUT ({f['keys_put_twice']} twice), "
                      f"{f['puts']} PUTs; workers exited {f['exit_codes']}; worker 1 killed after "
                      f"{f['killed_after']:.1f} s; {f['wall']:.1f} s in all")  # fmt: skip
                print(f"  list requests: fleet {lists}, unsharded {whole_lists} ({f['lists_vs_unsharded']:.3f}x); "
                      f"unsharded sync {f['unsharded']['wall']:.1f} s, copied {f['unsharded']['copied']}")  # fmt: skip
        finally:
            redis.stop()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
