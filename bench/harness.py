"""The benchmark itself: start the stores, fill the source, time each tool, report (see bench/README.md)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench import chart, listener
from bench.data import WORKLOADS, Manifest, VerifyError, Workload, fill_source, verify
from bench.stores import Stores, drop_bucket, start_stores
from bench.tools import Job, Measured, runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("s3s3", "rclone", "raw")
MB = 1_000_000


@dataclass
class Outcome:
    """The best of N runs of one tool on one workload in one mode (copy or no-op)."""

    tool: str
    workload: Workload
    mode: str
    measured: Measured | None = None
    error: str | None = None

    def row(self) -> dict[str, Any]:
        seconds = self.measured.seconds if self.measured and not self.error else None
        moved = self.workload.total_bytes if self.mode == "copy" else 0
        return {
            "tool": self.tool, "workload": self.workload.name, "mode": self.mode,
            "objects": self.workload.count, "bytes": self.workload.total_bytes,
            "seconds": seconds,
            "objects_per_s": self.workload.count / seconds if seconds else None,
            "mb_per_s": moved / MB / seconds if seconds and moved else None,
            "peak_rss_mib": self.measured.peak_rss / 2**20 if self.measured and not self.error else None,
            "cpu_seconds": self.measured.cpu if self.measured and not self.error else None,
            "error": self.error,
            "log": self.measured.log_path if self.measured else None,
        }


def _better(old: Outcome | None, new: Outcome) -> Outcome:
    """Keep the fastest successful run; a failure only stands if nothing succeeded."""
    if old is None or (old.error and not new.error):
        return new
    if new.error or old.measured is None or new.measured is None:
        return old
    return new if new.measured.seconds < old.measured.seconds else old


def _one_repeat(stores: Stores, tool: str, workload: Workload, manifest: Manifest, logdir: str, attempt: int,
                timeout: float) -> tuple[Outcome, Outcome]:
    """A copy into a fresh bucket, verified, then the no-op re-run onto the full bucket; the bucket is dropped."""
    bucket = f"dst-{tool}-{workload.name}-{attempt}".lower()
    stores.dest.client().create_bucket(Bucket=bucket)
    copy, noop = Outcome(tool, workload, "copy"), Outcome(tool, workload, "no-op")
    try:
        label = f"{tool}-{workload.name}-{attempt}"
        run_tool = runner(tool)
        assert run_tool is not None  # parse_args checked the name
        copy.measured = run_tool(Job(stores, workload, bucket, logdir, f"{label}-copy", timeout))
        copy.error = copy.measured.failure() or _verified(stores, bucket, workload, manifest, content=True)
        if copy.error:
            noop.error = "skipped: the copy failed"
            return copy, noop
        noop.measured = run_tool(Job(stores, workload, bucket, logdir, f"{label}-noop", timeout))
        noop.error = noop.measured.failure() or _verified(stores, bucket, workload, manifest, content=False)
        return copy, noop
    finally:
        drop_bucket(stores.dest, bucket)


def _verified(stores: Stores, bucket: str, workload: Workload, manifest: Manifest, *, content: bool) -> str | None:
    try:
        verify(stores.dest, bucket, workload, manifest, content=content)
    except VerifyError as e:
        return f"failed: verify: {e}"
    return None


def _fmt(value: float | None, spec: str) -> str:
    """value formatted by spec, or a dash as wide as spec asks."""
    width = int(spec.split(".")[0] or 0)
    return format("-", f">{width}") if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table: one line per tool, workload and mode, with the time ratio to rclone's."""
    rclone = {(r["workload"], r["mode"]): r["seconds"] for r in rows if r["tool"] == "rclone"}
    header = f"{'tool':<8} {'workload':<10} {'seconds':>9} {'CPU s':>7} {'objects/s':>10} {'MB/s':>8} " \
             f"{'peak RSS MiB':>13} {'vs rclone':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        base = rclone.get((r["workload"], r["mode"]))
        ratio = r["seconds"] / base if r["seconds"] and base else None
        name = r["workload"] + (" no-op" if r["mode"] == "no-op" else "")
        if r["error"]:
            print(f"{r['tool']:<8} {name:<10} {r['error']}")
            continue
        rate = r["objects_per_s"]
        print(f"{r['tool']:<8} {name:<10} {_fmt(r['seconds'], '9.2f')} {_fmt(r.get('cpu_seconds'), '7.2f')} "
              f"{_fmt(rate, '10.0f' if rate is None or rate >= 10 else '10.2f')} "
              f"{_fmt(r['mb_per_s'], '8.1f')} {_fmt(r['peak_rss_mib'], '13.0f')} "
              f"{_fmt(ratio, '8.2f') + 'x' if ratio else _fmt(None, '9')}")


def _vs_rclone_a(seconds: float | None, rows: list[dict[str, Any]]) -> str:
    rclone = [r["seconds"] for r in rows if (r["tool"], r["workload"], r["mode"]) == ("rclone", "A", "copy")]
    return f", {seconds / rclone[0]:.2f}x rclone's time for A" if seconds and rclone and rclone[0] else ""


def print_listener(results: list[dict[str, Any]], count: int, rows: list[dict[str, Any]]) -> None:
    """The listener lines, each mode: the burst of A beside the bucket sync's and rclone's, CPU per key, latency."""
    sync = [r for r in rows if (r["tool"], r["workload"], r["mode"]) == ("s3s3", "A", "copy") and not r["error"]]
    sync_cpu = sync[0]["cpu_seconds"] / count * 1000 if sync and sync[0].get("cpu_seconds") else None
    print()
    for result in results:
        name = f"s3s3listen {result['mode']:<6}"
        if result["burst_seconds"] is None:
            print(f"{name}  {result['error']}")
            continue
        cpu = result["cpu_ms_per_key"]
        versus = f" ({cpu / sync_cpu:.2f}x the bucket sync's {sync_cpu:.2f})" if cpu and sync_cpu else ""
        print(f"{name}  burst of {count} keys copied in {result['burst_seconds']:.2f} s "
              f"({count / result['burst_seconds']:.0f} keys/s){_vs_rclone_a(result['burst_seconds'], rows)}, "
              f"CPU {result['burst_cpu_seconds']:.2f} s = {cpu:.2f} ms/key{versus}, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB")
        for p in result["paced"]:
            print(f"{name}  {p['keys']} keys at {p['rate']:.0f}/s: announced->landed p50 {p['p50_ms']:.0f} ms, "
                  f"p99 {p['p99_ms']:.0f} ms, p99.9 {p['p999_ms']:.0f} ms")
        if result["error"]:
            print(f"{name}  {result['error']}")


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def environment() -> dict[str, Any]:
    """What the figures were measured on."""
    from tests.servers.rclone import rclone_path
    from tests.servers.seaweedfs import weed_path

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "weed": _version([weed_path() or "weed", "version"]),
        "rclone": _version([rclone_path() or "rclone", "version"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="s3s3 vs `rclone copy` vs a raw floor, SeaweedFS to SeaweedFS on loopback."
    )
    parser.add_argument("--workloads", default="A,B1,B2,C", help="comma-separated, from A, B1, B2, C (default all)")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help="comma-separated, from s3s3 (shipped defaults), s3s3-wN (tuned: N workers), rclone, raw")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool and workload; the best counts")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "out"), help="where results go")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before one tool run is killed")
    parser.add_argument("--keep", action="store_true", help="keep the servers' temp dir (logs, data)")
    parser.add_argument("--docs", action="store_true", help="also write the chart to docs/bench.png (make bench)")
    args = parser.parse_args(argv)
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [w for w in args.workloads if w not in WORKLOADS] + [t for t in args.tools if runner(t) is None]
    if unknown or args.repeat < 1:
        parser.error(f"unknown workloads or tools {unknown}, or --repeat < 1")
    return args


def run(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """Start the stores, fill the source, time every tool on every workload; return results.json's content."""
    logdir = os.path.join(args.out, "logs")
    os.makedirs(logdir, exist_ok=True)
    workloads = [WORKLOADS[w] for w in args.workloads]
    started = time.perf_counter()
    stores = start_stores(workdir, with_redis="s3s3" in args.tools)
    try:
        print(f"servers up in {time.perf_counter() - started:.1f}s: source {stores.source.endpoint_url}, "
              f"destination {stores.dest.endpoint_url}", flush=True)
        started = time.perf_counter()
        manifest = fill_source(stores.source, workloads)
        print(f"source filled in {time.perf_counter() - started:.1f}s", flush=True)
        rows = []
        for workload in workloads:
            best: dict[tuple[str, str], Outcome | None] = {}
            for attempt in range(1, args.repeat + 1):
                # Repeats interleave, and each starts with the next tool: none always runs
                # first, while the stores are still settling after the fill or another tool.
                turn = (attempt - 1) % len(args.tools)
                for tool in args.tools[turn:] + args.tools[:turn]:
                    for outcome in _one_repeat(stores, tool, workload, manifest, logdir, attempt, args.timeout):
                        best[tool, outcome.mode] = _better(best.get((tool, outcome.mode)), outcome)
                        row = outcome.row()
                        print(f"  {tool} {workload.name} {outcome.mode} #{attempt}: "
                              f"{row['error'] or format(row['seconds'], '.2f') + 's'}", flush=True)
            rows += [o.row() for t in args.tools for m in ("copy", "no-op") if (o := best.get((t, m))) is not None]
        listen: list[dict[str, Any]] | None = None
        if "s3s3" in args.tools and "A" in args.workloads:
            results = listener.run_listener(stores, WORKLOADS["A"], manifest, logdir, repeat=args.repeat)
            listen = [listener.summary(result, WORKLOADS["A"].count) for result in results]
    finally:
        stores.stop()
    return {"environment": environment(), "rows": rows, "listener": listen}


def main(argv: list[str] | None = None) -> int:
    """Run, print, and write results.json and bench.png."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="s3s3-bench-")
    try:
        results = run(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(results["rows"])
    if results["listener"] is not None:
        print_listener(results["listener"], WORKLOADS["A"].count, results["rows"])
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    chart.plot(results["rows"], args.tools, args.workloads, os.path.join(args.out, "bench.png"))
    print(f"\nwrote {os.path.join(args.out, 'results.json')} and {os.path.join(args.out, 'bench.png')}")
    if args.docs:  # the chart the README shows on a fresh clone
        shutil.copyfile(os.path.join(args.out, "bench.png"), os.path.join(ROOT, "docs", "bench.png"))
        print(f"and {os.path.join('docs', 'bench.png')}")
    return 0
