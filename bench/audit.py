"""`s3s3 audit` against `rclone check` between two SeaweedFS servers: a listing audit, and reading back.

    python bench/audit.py [--keys 10000] [--read-objects 16] [--read-mib 64] [--repeat 1] [--keep]

1. --keys objects of 1 KiB (put whole: plain-MD5 ETags) at the source, copied
   to the destination by `s3s3 bucket` (untimed). Timed: `s3s3 audit` (no
   reads) and `rclone check` (no --download), each --checkers/--workers 16:
   wall and CPU seconds, peak RSS, and the requests each made (s3s3's from its
   summary; rclone's counted in one more, untimed, run with --dump headers).
2. --read-objects objects of --read-mib MiB, copied the same way. Timed:
   `s3s3 audit --read-all` and `rclone check --download`, which read every
   byte on both servers: seconds and CPU seconds per GiB audited (each GiB is
   read from both servers), which is also what a --read-sample costs per GiB
   it picks.

Both tools run as subprocesses (bench/tools.py measures them); s3s3 as
shipped, without Redis (it warns, and audits the same). Best of --repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.data import SOURCE_BUCKET, GiB, KiB, MiB, Workload, fill_source  # noqa: E402
from bench.stores import Stores, start_stores  # noqa: E402
from bench.tools import Measured, _rclone_remote, measure, write_s3s3_ini  # noqa: E402
from tests.servers.base import binary_path  # noqa: E402
from tests.servers.rclone import ensure_rclone_installed, rclone_env  # noqa: E402

DEST_BUCKET = "bench-audit"
CHECKERS = 16  # rclone check --checkers, s3s3 audit --workers


@dataclass
class Row:
    """The best run of one tool on one workload."""

    what: str
    workload: Workload
    runs: list[Measured] = field(default_factory=list)
    requests: str = ""
    error: str | None = None

    @property
    def best(self) -> Measured | None:
        ok = [m for m in self.runs if m.returncode == 0]
        return min(ok, key=lambda m: m.seconds) if ok else None


def s3s3_ini(stores: Stores, workdir: str, workload: Workload) -> str:
    path = os.path.join(workdir, f"s3s3-{workload.name}.ini")
    write_s3s3_ini(path, stores, DEST_BUCKET, workload.prefix)
    return path


def rclone_conf(stores: Stores, workdir: str) -> str:
    path = os.path.join(workdir, "rclone.conf")
    with open(path, "w") as f:
        f.write(_rclone_remote("src", stores.source) + _rclone_remote("dst", stores.dest))
    return path


def copy_to_dest(stores: Stores, workdir: str, workload: Workload) -> None:
    """`s3s3 bucket` from the source to the destination bucket, untimed: the pair to audit."""
    done = subprocess.run([binary_path("s3s3") or "s3s3", "bucket", "--config", s3s3_ini(stores, workdir, workload)],
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the copy of {workload.name} failed: {done.stdout[-500:]} {done.stderr[-500:]}")


def run_s3s3(stores: Stores, workdir: str, workload: Workload, label: str, *extra: str) -> tuple[Measured, str]:
    """`s3s3 audit --json`: the measure, and the requests its summary counts."""
    log = os.path.join(workdir, f"{label}.log")
    command = [binary_path("s3s3") or "s3s3", "audit", "--config", s3s3_ini(stores, workdir, workload), "--json",
               "--workers", str(CHECKERS), *extra]  # fmt: skip
    measured = measure(command, log_path=log)
    summaries = [line for line in Path(log).read_text().splitlines() if line.startswith("{")]
    counts = json.loads(summaries[-1])["requests"] if summaries else {}
    return measured, " ".join(f"{counts[kind]} {kind}" for kind in ("list", "head", "get") if counts.get(kind))


def rclone_command(workload: Workload, *extra: str) -> list[str]:
    prefix = workload.prefix.rstrip("/")
    return [ensure_rclone_installed(), "check", f"src:{SOURCE_BUCKET}/{prefix}", f"dst:{DEST_BUCKET}/{prefix}",
            "--checkers", str(CHECKERS), *extra]  # fmt: skip


def run_rclone(stores: Stores, workdir: str, workload: Workload, label: str, *extra: str) -> Measured:
    log = os.path.join(workdir, f"{label}.log")
    conf = rclone_conf(stores, workdir)
    return measure(rclone_command(workload, *extra, "--log-level", "NOTICE"), log_path=log, env=rclone_env(conf))


def rclone_requests(stores: Stores, workdir: str, workload: Workload, *extra: str) -> str:
    """The requests `rclone check` makes, by method, from one more (untimed) run that dumps their headers."""
    conf = rclone_conf(stores, workdir)
    log = os.path.join(workdir, f"rclone-dump-{workload.name}.log")
    subprocess.run([*rclone_command(workload, *extra), "--dump", "headers", "--log-file", log, "--log-level",
                    "DEBUG"], env=rclone_env(conf), capture_output=True, timeout=1800)  # fmt: skip
    text = Path(log).read_text(errors="replace")
    names = {"list": 0, "head": 0, "get": 0}
    for method, path in re.findall(r"\b(GET|HEAD) (/\S*) HTTP/1\.1", text):
        bucket_level = "/" not in path.split("?")[0].strip("/")  # a listing: no key in the path
        names["list" if bucket_level and method == "GET" else method.lower()] += 1
    return " ".join(f"{n} {kind}" for kind, n in names.items() if n)


def measure_rows(stores: Stores, workdir: str, keys: Workload, reads: Workload, repeat: int) -> list[Row]:
    rows = [
        Row("s3s3 audit", keys), Row("rclone check", keys),
        Row("s3s3 audit --read-all", reads), Row("rclone check --download", reads),
    ]  # fmt: skip
    for attempt in range(1, repeat + 1):
        # Each repeat starts with the other tool: neither always runs on stores still busy with the other.
        order = rows if attempt % 2 else [rows[1], rows[0], rows[3], rows[2]]
        for row in order:
            label = f"{row.what.replace(' ', '-')}-{attempt}"
            if row.what.startswith("s3s3"):
                extra = ("--read-all",) if "read-all" in row.what else ()
                measured, row.requests = run_s3s3(stores, workdir, row.workload, label, *extra)
            else:
                extra = ("--download",) if "download" in row.what else ()
                measured = run_rclone(stores, workdir, row.workload, label, *extra)
            row.runs.append(measured)
            print(f"  {row.what} #{attempt}: {measured.failure() or f'{measured.seconds:.2f}s'}", flush=True)
    for row in rows:
        if row.what.startswith("rclone"):
            row.requests = rclone_requests(stores, workdir, row.workload, *(("--download",) if "download" in row.what
                                                                                else ()))  # fmt: skip
        if row.best is None:
            row.error = row.runs[-1].failure() if row.runs else "not run"
    return rows


def print_table(rows: list[Row]) -> None:
    header = f"{'what':<26} {'objects':>8} {'GiB':>6} {'seconds':>8} {'CPU s':>7} {'s/GiB':>7} {'CPU s/GiB':>9} " \
             f"{'RSS MiB':>8}  requests"
    print(header)
    print("-" * (len(header) + 12))
    for row in rows:
        best, load = row.best, row.workload
        gib = load.total_bytes / GiB
        if best is None:
            print(f"{row.what:<26} {load.count:>8} {gib:>6.2f} {row.error}")
            continue
        reads = "read" in row.what or "download" in row.what
        per = f"{best.seconds / gib:>7.2f} {best.cpu / gib:>9.2f}" if reads else f"{'-':>7} {'-':>9}"
        print(f"{row.what:<26} {load.count:>8} {gib:>6.2f} {best.seconds:>8.2f} {best.cpu:>7.2f} {per} "
              f"{best.peak_rss / MiB:>8.0f}  {row.requests}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/audit.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000, help="identical 1 KiB keys for the listing audit")
    parser.add_argument("--read-objects", type=int, default=16, help="objects read back on both sides")
    parser.add_argument("--read-mib", type=int, default=64, help="their size in MiB")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    parser.add_argument("--keep", action="store_true", help="keep the servers' temp dir (logs, data)")
    args = parser.parse_args(argv)
    keys = Workload("AUDIT", args.keys, 1 * KiB, single_put=True)
    reads = Workload("READ", args.read_objects, args.read_mib * MiB, single_put=True)
    workdir = tempfile.mkdtemp(prefix="s3s3-bench-audit-")
    started = time.perf_counter()
    stores = start_stores(workdir, with_redis=False)
    try:
        fill_source(stores.source, [keys, reads])
        stores.dest.client().create_bucket(Bucket=DEST_BUCKET)
        for workload in (keys, reads):
            copy_to_dest(stores, workdir, workload)
        print(f"servers up, {args.keys} + {args.read_objects} objects at both in {time.perf_counter() - started:.1f}s",
              flush=True)  # fmt: skip
        rows = measure_rows(stores, workdir, keys, reads, args.repeat)
    finally:
        stores.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(rows)
    return 0 if all(row.best is not None for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
