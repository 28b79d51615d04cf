"""One runner per copier, each run as a subprocess whose wall time and peak RSS are measured.

Peak RSS is sampled every 10 ms over the tool's whole process tree (psutil
finds the helpers it forks): the larger of the highest summed current RSS and
the highest sum of each process's VmHWM, the kernel's own high-water mark, which
also catches a spike between two samples. The servers are not counted: they are
not the tool's children. wait4's ru_maxrss is NOT used: Linux carries a process's
high-water mark across fork+exec, so every child would report at least the
harness's own ~90 MiB.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from bench.data import SOURCE_BUCKET, Workload
from bench.stores import Stores
from tests.servers.base import Server, binary_path
from tests.servers.rclone import ensure_rclone_installed, rclone_env

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TRANSFERS = 16  # parallel transfers for every tool, as `rclone copy --transfers 16 --checkers 16`


@dataclass
class Measured:
    """How one run of a tool went."""

    returncode: int
    seconds: float
    peak_rss: int  # bytes
    log_path: str
    cpu: float = 0.0  # user and system seconds of the tool and the children it waited for (wait4)

    def failure(self) -> str | None:
        """None when the tool succeeded, else `failed: <last line it logged>`."""
        if self.returncode == 0:
            return None
        return f"failed: exit {self.returncode}: {last_line(self.log_path)}"


@dataclass(frozen=True)
class Job:
    """One copy to time: a workload from the source bucket into dest_bucket on the destination server."""

    stores: Stores
    workload: Workload
    dest_bucket: str
    workdir: str  # for the tool's config and log files
    label: str  # names those files
    timeout: float = 600.0


def last_line(path: str) -> str:
    """The last non-blank line of a log file, shortened to fit a table cell."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError as e:
        return f"(no log: {e})"
    return (lines[-1] if lines else "(no output)")[:160]


def _high_water(pid: int) -> int:
    """VmHWM of one process in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants until stopped; `peak` is in bytes."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                return
            current = 0
            for member in tree:
                with contextlib.suppress(psutil.Error):
                    current += member.memory_info().rss
            self.peak = max(self.peak, current, sum(_high_water(member.pid) for member in tree))
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling and return the peak in bytes."""
        self._stop_event.set()
        self.join()
        return self.peak


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def measure(cmd: list[str], *, log_path: str, env: dict[str, str] | None = None, timeout: float = 600.0) -> Measured:
    """Run cmd to the end (killed after timeout) and return its exit code, wall time and peak RSS."""
    with open(log_path, "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    sampler = RssSampler(proc.pid)
    sampler.start()
    timer = threading.Timer(timeout, _kill_group, (proc,))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - start
    _kill_group(proc)  # anything the tool left behind in its session
    return Measured(proc.returncode, seconds, sampler.stop(), log_path, usage.ru_utime + usage.ru_stime)


def _files(job: Job, suffix: str) -> str:
    return os.path.join(job.workdir, f"{job.label}.{suffix}")


# -- rclone -----------------------------------------------------------------


def _rclone_remote(name: str, server: Server) -> str:
    return (
        f"[{name}]\ntype = s3\nprovider = SeaweedFS\nendpoint = {server.endpoint_url}\n"
        f"access_key_id = {server.access_key}\nsecret_access_key = {server.secret_key}\n"
        "region = us-east-1\nforce_path_style = true\nno_check_bucket = true\n\n"
    )


def run_rclone(job: Job) -> Measured:
    """`rclone copy src:bucket/prefix dst:bucket/prefix --transfers 16 --checkers 16` with its other defaults."""
    rclone = ensure_rclone_installed()
    conf = _files(job, "rclone.conf")
    with open(conf, "w") as f:
        f.write(_rclone_remote("src", job.stores.source) + _rclone_remote("dst", job.stores.dest))
    prefix = job.workload.prefix.rstrip("/")
    cmd = [rclone, "copy", f"src:{SOURCE_BUCKET}/{prefix}", f"dst:{job.dest_bucket}/{prefix}",
           "--transfers", str(TRANSFERS), "--checkers", str(TRANSFERS), "--log-level", "NOTICE"]
    return measure(cmd, log_path=_files(job, "log"), env=rclone_env(conf), timeout=job.timeout)


# -- raw floor --------------------------------------------------------------


def _raw_endpoint(server: Server, bucket: str, prefix: str) -> dict[str, str]:
    return {"endpoint_url": server.endpoint_url, "access_key": server.access_key, "secret_key": server.secret_key,
            "bucket": bucket, "prefix": prefix}


def run_raw(job: Job) -> Measured:
    """bench/rawcopy.py: keep-alive http.client threads, botocore SigV4, streamed GET -> PUT, no checks."""
    spec = _files(job, "raw.json")
    with open(spec, "w") as f:
        json.dump({
            "source": _raw_endpoint(job.stores.source, SOURCE_BUCKET, job.workload.prefix),
            "dest": _raw_endpoint(job.stores.dest, job.dest_bucket, job.workload.prefix),
            "workers": TRANSFERS,
            "part_workers": 4,
            "part_size": 64 * 1024 * 1024,
        }, f)
    cmd = [sys.executable, os.path.join(BENCH_DIR, "rawcopy.py"), spec]
    return measure(cmd, log_path=_files(job, "log"), timeout=job.timeout)


# -- s3s3 -------------------------------------------------------------------


def _ini_section(name: str, server: Server, bucket: str, prefix: str = "") -> str:
    lines = [f"[{name}]", f"endpoint_url = {server.endpoint_url}", f"aws_access_key_id = {server.access_key}",
             f"aws_secret_access_key = {server.secret_key}", f"bucket_name = {bucket}"]
    if prefix:
        lines.append(f"prefix = {prefix}")
    lines.append("addressing_style = path")
    return "\n".join(lines) + "\n\n"


def write_s3s3_ini(path: str, stores: Stores, dest_bucket: str, source_prefix: str = "",
                   workers: int | None = None) -> None:
    """An s3s3.ini from the source bucket (under source_prefix) to the same keys in dest_bucket, with Redis.

    Without workers, s3s3 runs with its shipped default: the figures are what a new user gets.
    """
    redis_url = stores.redis.url if stores.redis is not None else "redis://127.0.0.1:1/0"
    with open(path, "w") as f:
        f.write(_ini_section("source", stores.source, SOURCE_BUCKET, source_prefix))
        # s3s3 swaps the source prefix for the destination's: the same prefix keeps keys identical.
        f.write(_ini_section("dest1", stores.dest, dest_bucket, source_prefix))
        f.write(f"[pubsub]\nurl = {redis_url}\nchannel = backup\n")
        if workers is not None:
            f.write(f"workers = {workers}\n")


def tuned_workers(tool: str) -> int | None:
    """The worker count of a tuned s3s3 row, `s3s3-wN`; None for anything else."""
    prefix = "s3s3-w"
    if tool.startswith(prefix) and tool[len(prefix):].isdigit() and int(tool[len(prefix):]) > 0:
        return int(tool[len(prefix):])
    return None


def run_s3s3(job: Job, workers: int | None = None) -> Measured:
    """`s3s3bucket --config FILE`: a whole-bucket pass from the source prefix to the destination bucket."""
    ini = _files(job, "s3s3.ini")
    write_s3s3_ini(ini, job.stores, job.dest_bucket, job.workload.prefix, workers)
    script = binary_path("s3s3bucket")
    log_path = _files(job, "log")
    if script is None:
        with open(log_path, "w") as f:
            f.write("s3s3bucket is not installed: pip install -e .\n")
        return Measured(127, 0.0, 0, log_path)
    return measure([script, "--config", ini], log_path=log_path, timeout=job.timeout)


RUNNERS: dict[str, Callable[[Job], Measured]] = {"s3s3": run_s3s3, "rclone": run_rclone, "raw": run_raw}


def runner(tool: str) -> Callable[[Job], Measured] | None:
    """The runner of a tool name: s3s3 (shipped defaults), s3s3-wN (tuned: N workers), rclone or raw."""
    workers = tuned_workers(tool)
    if workers is not None:
        return lambda job: run_s3s3(job, workers)
    return RUNNERS.get(tool)
