"""The shipped deploy files, run for real: supervisord, the cron line, the systemd units.

Each file under deploy/ is read as shipped; only its documented paths
(`/opt/env/s3s3/bin/`, `/usr/local/etc/s3s3.ini`, `/var/log/s3s3/`, the lock
file) are rewritten to this virtualenv and a temp dir, so what runs here is
what an operator installs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from s3s3.config import Config
from tests.helpers import new_bucket, wait_until
from tests.servers.base import Server
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(90)

BIN = Path(sys.executable).parent
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MiB = 1024 * 1024

# The paths the shipped files document, and what an operator would change them to.
VENV_BIN = "/opt/env/s3s3/bin/"
CONFIG = "/usr/local/etc/s3s3.ini"
LOG_DIR = "/var/log/s3s3/"


def rewrite(text: str, config: str, log_dir: Path | None, **more: str) -> str:
    """The shipped text with its documented paths pointed at this venv, `config` and `log_dir`."""
    replacements = {VENV_BIN: f"{BIN}/", CONFIG: config, **more}
    if log_dir is not None:
        replacements[LOG_DIR] = f"{log_dir}/"
    for old, new in replacements.items():
        assert old in text, f"the shipped file no longer mentions {old!r}"
        text = text.replace(old, new)
    return text


def put(server: Server, bucket: str, key: str, body: bytes) -> str:
    server.client().put_object(Bucket=bucket, Key=key, Body=body)
    return hashlib.md5(body).hexdigest()


def dest_md5(server: Server, bucket: str, key: str) -> str | None:
    """The MD5 of the object's bytes at the destination, None while it is not there."""
    try:
        body = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except server.client().exceptions.NoSuchKey:
        return None
    return hashlib.md5(body).hexdigest()


def subscribers(client: redis.Redis, channel: str) -> int:
    return int(client.pubsub_numsub(channel)[0][1])


# --- supervisord ---------------------------------------------------------------------------------

SUPERVISORD_CONF = """\
[unix_http_server]
file = {d}/sv.sock

[supervisord]
nodaemon = true
logfile = {d}/supervisord.log
pidfile = {d}/supervisord.pid
childlogdir = {d}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{d}/sv.sock

[include]
files = {d}/programs/*.conf
"""


@dataclass
class Supervisor:
    """A private supervisord (its socket in a short temp dir: unix socket paths are short)."""

    workdir: Path
    log_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.workdir / "supervisord.conf"

    def add_program(self, shipped: Path, config: Config, **more: str) -> None:
        text = rewrite(shipped.read_text(), config.path, self.log_dir, **more)
        (self.workdir / "programs" / shipped.name).write_text(text)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.conf), *args],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def state(self, program: str) -> str:
        """RUNNING, STARTING, STOPPED, EXITED, FATAL... ('' while supervisord is not up yet)."""
        words = self.ctl("status", program).stdout.split()
        return words[1] if len(words) > 1 and words[0] == program else ""

    def pid(self, program: str) -> int:
        out = self.ctl("pid", program).stdout.strip()
        return int(out) if out.isdigit() else 0

    def log(self, program: str) -> str:
        path = self.log_dir / f"{program}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        """Shut supervisord down; kill whatever survives, its programs included."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pids = [int(line) for line in self.ctl("pid", "all").stdout.split() if line.isdigit()]
        self.ctl("shutdown", timeout=30)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in pids:  # supervisord puts each program in a process group of its own
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    workdir = Path(tempfile.mkdtemp(prefix="s3s3-sv-"))
    (workdir / "programs").mkdir()
    (workdir / "log").mkdir()
    (workdir / "supervisord.conf").write_text(SUPERVISORD_CONF.format(d=workdir))
    sv = Supervisor(workdir, workdir / "log")
    try:
        yield sv
    finally:
        sv.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow
def test_given_the_shipped_supervisord_program_then_it_runs_the_listener_restarts_it_and_stops_it_after_its_copy(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    make_config: Callable[..., Config],
    supervisor: Supervisor,
) -> None:
    # Given supervisord with the shipped program file, pointed at this venv, a config and a log dir
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config(
        (s3_source, src),
        [(s3_dest, dst)],
        redis_url=redis_server.url,
        dest_extra={"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"},
    )
    channel = config.pubsub.channel
    supervisor.add_program(DEPLOY / "supervisord" / "s3s3.conf", config)
    client = redis.Redis.from_url(redis_server.url)
    small = {f"small-{i}.txt": put(s3_source, src, f"small-{i}.txt", f"small {i}".encode()) for i in (1, 2)}
    big = put(s3_source, src, "big.bin", os.urandom(40 * MiB))

    # When supervisord starts
    supervisor.start()

    # Then it starts the listener, which copies a published key
    wait_until(lambda: subscribers(client, channel) == 1, timeout=20)
    first_pid = supervisor.pid("s3s3listen")
    assert first_pid > 0
    client.publish(channel, b"small-1.txt")
    wait_until(lambda: dest_md5(s3_dest, dst, "small-1.txt") == small["small-1.txt"], timeout=15)

    # When the listener is SIGKILLed
    os.kill(first_pid, signal.SIGKILL)

    # Then supervisord starts a new one, which goes on copying
    wait_until(lambda: supervisor.pid("s3s3listen") not in (0, first_pid), timeout=20)
    wait_until(lambda: subscribers(client, channel) == 1, timeout=20)
    client.publish(channel, b"small-2.txt")
    wait_until(lambda: dest_md5(s3_dest, dst, "small-2.txt") == small["small-2.txt"], timeout=15)

    # When `supervisorctl stop` comes while a 40 MiB object is being copied in parts
    client.publish(channel, b"big.bin")
    dest = s3_dest.client()
    wait_until(lambda: dest.list_multipart_uploads(Bucket=dst).get("Uploads"), timeout=15, interval=0.01)
    stopped = supervisor.ctl("stop", "s3s3listen")

    # Then the copy finishes before the listener exits: the object lands whole, no upload is left open
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert supervisor.state("s3s3listen") == "STOPPED"
    assert dest_md5(s3_dest, dst, "big.bin") == big
    assert dest.list_multipart_uploads(Bucket=dst).get("Uploads", []) == []
    log = supervisor.log("s3s3listen")
    assert re.search(rf"INFO s3s3\.copy: Copied 'big\.bin' to dest1:{dst}: {40 * MiB} bytes", log), log
    assert log.rstrip().endswith("INFO s3s3.listen: Stopped"), log
    client.close()


@pytest.mark.slow
def test_given_the_shipped_supervisord_bucket_program_then_it_syncs_again_and_again_and_stops_at_once_while_idle(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    make_config: Callable[..., Config],
    supervisor: Supervisor,
) -> None:
    # Given the shipped s3s3bucket program, its hour shortened to four seconds
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    supervisor.add_program(DEPLOY / "supervisord" / "s3s3bucket.conf", config, **{"--every 3600": "--every 4"})
    first = put(s3_source, src, "unannounced-1.txt", b"nobody published me")

    def summaries() -> int:
        return len(re.findall(r"^checked \d+ keys: ", supervisor.log("s3s3bucket"), re.MULTILINE))

    # When supervisord starts
    supervisor.start()

    # Then the first sync copies an object nobody announced
    wait_until(lambda: dest_md5(s3_dest, dst, "unannounced-1.txt") == first, timeout=20)
    pid = supervisor.pid("s3s3bucket")
    assert pid > 0

    # And a later sync, by the same process, copies one put after it
    second = put(s3_source, src, "unannounced-2.txt", b"nor me")
    wait_until(lambda: dest_md5(s3_dest, dst, "unannounced-2.txt") == second, timeout=20)
    assert supervisor.pid("s3s3bucket") == pid

    # When supervisorctl stops it while it sleeps (just after a sync printed its summary)
    done = summaries()
    wait_until(lambda: summaries() > done, timeout=20, interval=0.02)
    started = time.monotonic()
    stopped = supervisor.ctl("stop", "s3s3bucket")

    # Then it stops at once with exit status 0, and was never restarted
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert time.monotonic() - started < 10
    assert supervisor.state("s3s3bucket") == "STOPPED"
    log = supervisor.log("s3s3bucket")
    assert "Traceback" not in log and len(re.findall(r"^checked \d+ keys: copied 1,", log, re.MULTILINE)) == 2, log
    supervisord_log = (supervisor.workdir / "supervisord.log").read_text()
    assert len(re.findall(r"spawned: 's3s3bucket'", supervisord_log)) == 1, supervisord_log
    assert re.search(r"stopped: s3s3bucket \(exit status 0\)", supervisord_log), supervisord_log


@pytest.mark.slow
def test_given_the_shipped_numprocs_program_then_each_listener_joins_the_stream_group_and_they_share_the_keys(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    make_config: Callable[..., Config],
    supervisor: Supervisor,
) -> None:
    # Given supervisord with the shipped numprocs program (two processes), in stream mode
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    stream, group = f"st-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url,
                         pubsub_extra={"mode": "stream", "stream": stream, "group": group})  # fmt: skip
    shipped = DEPLOY / "supervisord" / "s3s3listen-numprocs.conf"
    supervisor.add_program(shipped, config, **{"numprocs = 4": "numprocs = 2"})
    client = redis.Redis.from_url(redis_server.url)
    md5s = {f"key-{i}.txt": put(s3_source, src, f"key-{i}.txt", f"body {i}".encode()) for i in range(20)}

    # When supervisord starts
    supervisor.start()

    # Then two listeners run, each joined to the group under the consumer name its command line gives it:
    # the host's, the program's and its process number
    names = ("s3s3listen:s3s3listen_00", "s3s3listen:s3s3listen_01")
    wait_until(lambda: all(supervisor.state(name) == "RUNNING" for name in names), timeout=30)
    consumers = {f"{platform.node()}-s3s3listen-00".encode(), f"{platform.node()}-s3s3listen-01".encode()}

    def joined() -> set[bytes]:
        return {c["name"] for c in client.xinfo_consumers(stream, group)} if client.exists(stream) else set()

    wait_until(lambda: joined() == consumers, timeout=20)

    # When one of them is killed, and supervisord starts it again
    first = supervisor.pid(names[1])
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: supervisor.pid(names[1]) not in (0, first), timeout=20)
    wait_until(lambda: supervisor.log("s3s3listen_01").count("INFO s3s3.listen: Connected to") == 2, timeout=20)

    # Then it comes back under the same name: the group still has those two consumers, no third
    assert joined() == consumers

    # And the keys appended to the stream are all copied, each process writing its own log
    for key in md5s:
        client.xadd(stream, {"message": key})
    for key, md5 in md5s.items():
        wait_until(lambda k=key, m=md5: dest_md5(s3_dest, dst, k) == m, timeout=20)  # type: ignore[misc]
    logs = [supervisor.log(f"s3s3listen_0{i}") for i in (0, 1)]
    assert all("Listening on stream" in log for log in logs), logs
    assert sum(log.count("Copied 'key-") for log in logs) == len(md5s), logs
    client.close()


# --- cron ----------------------------------------------------------------------------------------

CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # minute, hour, day, month, weekday


@dataclass
class CronLine:
    fields: list[str]
    user: str
    command: str


def parse_cron(text: str) -> tuple[dict[str, str], list[CronLine]]:
    """The variables and job lines of an /etc/cron.d file."""
    env: dict[str, str] = {}
    jobs: list[CronLine] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            name, value = line.split("=", 1)
            env[name] = value
            continue
        parts = line.split(None, 6)
        assert len(parts) == 7, f"not 5 time fields, a user and a command: {line!r}"
        jobs.append(CronLine(parts[:5], parts[5], parts[6]))
    return env, jobs


def test_the_cron_file_has_one_job_of_five_time_fields_a_user_and_a_locked_logged_command() -> None:
    env, jobs = parse_cron((DEPLOY / "cron" / "s3s3bucket").read_text())
    assert env["SHELL"] == "/bin/sh" and "/usr/bin" in env["PATH"].split(":")
    assert len(jobs) == 1
    job = jobs[0]
    for value, (low, high) in zip(job.fields, CRON_RANGES, strict=True):
        assert CRON_FIELD.match(value), value
        assert all(low <= int(n) <= high for n in re.findall(r"\d+", value.split("/")[0])), value
    assert job.user == "root"
    assert re.match(rf"flock -n \S+ {re.escape(VENV_BIN)}s3s3bucket --config {re.escape(CONFIG)} ", job.command)
    assert job.command.endswith(f">>{LOG_DIR}s3s3bucket.log 2>&1")


@pytest.mark.slow
def test_given_the_cron_command_when_run_by_sh_then_it_syncs_and_logs_and_a_concurrent_run_is_skipped(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    # Given the cron job's command line, pointed at this venv, a config, a log dir and a lock file
    env, (job,) = parse_cron((DEPLOY / "cron" / "s3s3bucket").read_text())
    lock_file = re.match(r"flock -n (\S+) ", job.command).group(1)  # type: ignore[union-attr]
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    (tmp_path / "log").mkdir()
    command = rewrite(job.command, config.path, tmp_path / "log", **{lock_file: str(tmp_path / "s3s3bucket.lock")})
    log = tmp_path / "log" / "s3s3bucket.log"
    cron_env = {"SHELL": env["SHELL"], "PATH": env["PATH"], "HOME": str(tmp_path), "LOGNAME": "root"}
    md5 = put(s3_source, src, "missed.txt", b"the listener never heard of me")

    # When cron's shell runs it
    run = subprocess.run([env["SHELL"], "-c", command], env=cron_env, capture_output=True, text=True, timeout=60)

    # Then it syncs, prints nothing to cron's mail, and logs its summary to the file
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert dest_md5(s3_dest, dst, "missed.txt") == md5
    assert re.search(r"checked 1 keys?: copied 1, .*failed 0; 30 bytes", log.read_text()), log.read_text()

    # When another run holds the lock (as a run still working would) and cron starts the next
    put(s3_source, src, "later.txt", b"later")
    before = log.read_text()
    with open(tmp_path / "s3s3bucket.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        skipped = subprocess.run([env["SHELL"], "-c", command], env=cron_env, capture_output=True, timeout=60)

    # Then that run is skipped at once: flock exits 1, s3s3bucket never ran
    assert skipped.returncode == 1 and time.monotonic() - started < 5
    assert log.read_text() == before
    assert dest_md5(s3_dest, dst, "later.txt") is None


AUDIT_METRICS = "/var/lib/prometheus/node-exporter/"  # node_exporter's textfile collector, on Debian


def test_the_audit_cron_file_runs_one_daily_locked_audit_keeping_a_report_a_day_and_the_textfile() -> None:
    env, jobs = parse_cron((DEPLOY / "cron" / "s3s3audit").read_text())
    assert env["SHELL"] == "/bin/sh" and "/usr/bin" in env["PATH"].split(":")
    (job,) = jobs
    minute, hour, *every_day = job.fields
    assert minute.isdigit() and hour.isdigit() and every_day == ["*", "*", "*"]
    assert job.user == "root"
    assert re.match(rf"flock -n \S+ {re.escape(VENV_BIN)}s3s3 audit --config {re.escape(CONFIG)} ", job.command)
    # cron turns a bare % into a new line: the date's must be escaped
    assert f"--report {LOG_DIR}audit-$(date +\\%F).jsonl" in job.command and "%" not in job.command.replace("\\%", "")
    assert f"--metrics-file {AUDIT_METRICS}s3s3-audit.prom" in job.command and "--read-sample 0.01" in job.command
    assert job.command.endswith(f">>{LOG_DIR}s3s3audit.log 2>&1")


@pytest.mark.slow
def test_given_the_audit_cron_command_when_run_by_sh_then_it_proves_the_backup_and_keeps_the_days_report(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    # Given a destination holding the source's one object, and the cron job's command pointed at this venv,
    # a config, a log dir, a lock file and a textfile dir
    env, (job,) = parse_cron((DEPLOY / "cron" / "s3s3audit").read_text())
    lock_file = re.match(r"flock -n (\S+) ", job.command).group(1)  # type: ignore[union-attr]
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    md5 = put(s3_source, src, "kept.txt", b"proven every day")
    put(s3_dest, dst, "kept.txt", b"proven every day")
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    for name in ("log", "textfile"):
        (tmp_path / name).mkdir()
    moved = {lock_file: str(tmp_path / "s3s3audit.lock"), AUDIT_METRICS: f"{tmp_path}/textfile/"}
    command = rewrite(job.command, config.path, tmp_path / "log", **moved)
    cron_env = {"SHELL": env["SHELL"], "PATH": env["PATH"], "HOME": str(tmp_path), "LOGNAME": "root"}

    # When cron's shell runs it
    run = subprocess.run([env["SHELL"], "-c", command], env=cron_env, capture_output=True, text=True, timeout=60)

    # Then it exits 0, prints nothing to cron's mail, logs its summary, and keeps the day's report
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    log = (tmp_path / "log" / "s3s3audit.log").read_text()
    assert re.search(r"audited 1 keys: 1 equal, .*; read back 1\.00% of keys \(seed \d+\)", log), log
    (report,) = (tmp_path / "log").glob("audit-*.jsonl")
    assert re.fullmatch(r"audit-\d{4}-\d{2}-\d{2}\.jsonl", report.name)
    first, summary = (json.loads(line) for line in report.read_text().splitlines())
    assert (first["key"], first["verdict"], first["source_etag"]) == ("kept.txt", "equal", md5)
    assert summary["digest"].startswith("sha256:")
    assert "s3s3_audit_ok 1.0" in (tmp_path / "textfile" / "s3s3-audit.prom").read_text()


# --- systemd -------------------------------------------------------------------------------------

UNITS = ("s3s3listen.service", "s3s3bucket.service", "s3s3bucket.timer", "s3s3audit.service", "s3s3audit.timer")
TEMPLATE = "s3s3listen@.service"  # verified as an instance of it
INSTANCE = "s3s3listen@backup-1.service"


def unit_settings(text: str) -> dict[str, dict[str, str]]:
    """A unit file's settings by section (the last value of a repeated one)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            name, value = line.split("=", 1)
            current[name.strip()] = value.strip()
    return sections


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # Given the units, their ExecStart pointed at this venv and run as root (no s3s3 user here)
    config = tmp_path / "s3s3.ini"
    config.write_text("")
    for name, shipped in (*((u, u) for u in UNITS), (INSTANCE, TEMPLATE)):
        text = (DEPLOY / "systemd" / shipped).read_text()
        if name.endswith(".service"):
            text = rewrite(text, str(config), None, **{"User=s3s3": "User=root", "Group=s3s3": "Group=root"})
        (tmp_path / name).write_text(text)

    # When systemd-analyze verifies them
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / name) for name in (*UNITS, INSTANCE))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    # Then it has nothing to say
    assert (verify.returncode, verify.stderr) == (0, "")


def test_the_listener_unit_restarts_on_failure_is_sandboxed_and_waits_for_copies_in_flight() -> None:
    service = unit_settings((DEPLOY / "systemd" / "s3s3listen.service").read_text())["Service"]
    assert service["ExecStart"] == f"{VENV_BIN}s3s3listen --config {CONFIG}"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 600
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] in ("strict", "full")
    assert service["User"] != "root"


def test_the_listener_template_unit_runs_what_the_listener_unit_runs_one_instance_each() -> None:
    plain = unit_settings((DEPLOY / "systemd" / "s3s3listen.service").read_text())
    template = unit_settings((DEPLOY / "systemd" / TEMPLATE).read_text())
    assert "%i" in template["Unit"]["Description"] and "%i" in template["Service"]["SyslogIdentifier"]
    # its ExecStart adds the consumer name, made of the host's and the instance's (distinct, and stable across
    # the instance's restarts) to the listener's
    assert template["Service"]["ExecStart"] == plain["Service"]["ExecStart"] + " --consumer %H-%i"
    different = {"SyslogIdentifier", "ExecStart"}
    assert {k: v for k, v in template["Service"].items() if k not in different} == {
        k: v for k, v in plain["Service"].items() if k not in different
    }
    assert template["Install"] == plain["Install"]


def test_the_bucket_timer_runs_the_oneshot_bucket_service_hourly() -> None:
    service = unit_settings((DEPLOY / "systemd" / "s3s3bucket.service").read_text())["Service"]
    timer = unit_settings((DEPLOY / "systemd" / "s3s3bucket.timer").read_text())
    assert service["Type"] == "oneshot"
    assert service["ExecStart"] == f"{VENV_BIN}s3s3bucket --config {CONFIG}"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] in ("strict", "full")
    assert int(service["TimeoutStopSec"]) >= 600 and service["KillMode"] == "mixed"
    assert timer["Timer"]["OnCalendar"] == "hourly"
    assert timer["Timer"]["Unit"] == "s3s3bucket.service"
    assert (DEPLOY / "systemd" / timer["Timer"]["Unit"]).is_file()
    assert timer["Install"]["WantedBy"] == "timers.target"
    if shutil.which("systemd-analyze"):
        calendar = subprocess.run(
            ["systemd-analyze", "calendar", timer["Timer"]["OnCalendar"]], capture_output=True, text=True, timeout=30
        )
        assert calendar.returncode == 0 and "*-*-* *:00:00" in calendar.stdout


def test_the_audit_timer_runs_the_sandboxed_oneshot_audit_daily_keeping_its_report_and_textfile() -> None:
    service = unit_settings((DEPLOY / "systemd" / "s3s3audit.service").read_text())["Service"]
    timer = unit_settings((DEPLOY / "systemd" / "s3s3audit.timer").read_text())
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].startswith(f"{VENV_BIN}s3s3 audit --config {CONFIG} --read-sample 0.01 ")
    assert "--report /var/lib/s3s3/audit.jsonl" in service["ExecStart"] and service["StateDirectory"] == "s3s3"
    assert f"--metrics-file {AUDIT_METRICS}s3s3-audit.prom" in service["ExecStart"]
    assert service["ReadWritePaths"] == "-" + AUDIT_METRICS.rstrip("/")  # "-": no textfile collector, no failure
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict" and service["User"] != "root"
    assert service["KillMode"] == "mixed"
    assert timer["Timer"]["OnCalendar"] == "daily" and timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "s3s3audit.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
