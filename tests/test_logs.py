"""What the commands log: text or JSON lines, the level, and never a secret.

Every test runs the real console scripts as processes against a real
redis-server and moto S3 servers, and reads their stderr as an operator's log
shipper would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from s3s3.config import Config
from s3s3.logs import FIELDS
from tests.helpers import endpoint_section, new_bucket, wait_until
from tests.servers.base import Server, free_port
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

BIN = Path(sys.executable).parent
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: .+")
COPY_FIELDS = ("key", "dest", "outcome", "bytes", "duration")
THIRD_PARTY = re.compile(r"\b(botocore|boto3|s3transfer|urllib3|redis)\b")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a console script of this venv; `args[0]` names it."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def json_lines(stderr: str) -> list[dict]:
    """Every stderr line as a JSON object (fails on a line that is not one)."""
    entries = []
    for line in stderr.splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), line
        entries.append(entry)
    return entries


def with_section(config: Config, text: str) -> str:
    """Add sections to a config file; return its path."""
    path = Path(config.path)
    path.write_text(path.read_text() + text)
    return str(path)


def put(server: Server, bucket: str, key: str, body: bytes) -> None:
    server.client().put_object(Bucket=bucket, Key=key, Body=body)


def test_given_log_format_json_when_s3s3bucket_copies_then_every_stderr_line_is_json_with_the_copy_fields(
    s3_source: Server, s3_dest: Server, redis_server: RedisServer, make_config: Callable[..., Config]
) -> None:
    # Given two objects at the source, none at the destination
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    put(s3_source, src, "a.txt", b"a" * 10)
    put(s3_source, src, "dir/b é.txt", b"b" * 20)

    # When s3s3bucket runs with --log-format json
    done = run("s3s3bucket", "--config", config.path, "--log-format", "json")

    # Then every stderr line is a JSON object, and each copy's carries key, dest, outcome, bytes, duration
    assert done.returncode == 0, done.stderr
    entries = json_lines(done.stderr)
    copies = {e["key"]: e for e in entries if e["logger"] == "s3s3.copy"}
    assert copies.keys() == {"a.txt", "dir/b é.txt"}
    for key, size in (("a.txt", 10), ("dir/b é.txt", 20)):
        entry = copies[key]
        assert {name: entry[name] for name in COPY_FIELDS[:4]} == {
            "key": key, "dest": f"dest1:{dst}", "outcome": "copied", "bytes": size,
        }  # fmt: skip
        assert isinstance(entry["duration"], float) and entry["duration"] >= 0
        assert entry["level"] == "INFO"
        assert entry["message"].startswith(f"Copied {key!r} to dest1:{dst}: {size} bytes in ")
        assert set(entry) <= {"time", "level", "logger", "message", *FIELDS}
    # The summary is the command's output, not a log line
    assert done.stdout.startswith("checked 2 keys: copied 2,")


def test_given_a_failing_copy_with_log_format_json_then_its_line_is_an_error_carrying_the_error(
    s3_source: Server, s3_dest: Server, redis_server: RedisServer, make_config: Callable[..., Config]
) -> None:
    # Given a destination bucket that does not exist
    src = new_bucket(s3_source)
    config = make_config((s3_source, src), [(s3_dest, f"no-such-bucket-{uuid.uuid4().hex[:8]}")],
                         redis_url=redis_server.url, pubsub_extra={"max_attempts": 1})  # fmt: skip
    put(s3_source, src, "a.txt", b"a")

    # When s3s3bucket runs with --log-format json and --log-level warning
    done = run("s3s3bucket", "--config", config.path, "--log-format", "json", "--log-level", "warning")

    # Then it fails, and its one copy line is an ERROR carrying the outcome and the error
    assert done.returncode == 1
    failed = [e for e in json_lines(done.stderr) if e.get("outcome") == "failed"]
    assert len(failed) == 1
    assert failed[0]["level"] == "ERROR" and failed[0]["key"] == "a.txt" and failed[0]["error"]
    assert all(e["level"] != "INFO" for e in json_lines(done.stderr))


def test_given_logging_format_json_in_the_config_when_s3s3listen_copies_then_every_line_is_json(
    s3_source: Server,
    s3_dest: Server,
    redis_server: RedisServer,
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    # Given a configuration whose [logging] says json
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    path = with_section(config, "[logging]\nformat = json\nlevel = info\n")
    put(s3_source, src, "k.txt", b"hello")
    log = tmp_path / "listen.log"
    client = redis.Redis.from_url(redis_server.url)

    # When the listener copies an announced key and is stopped
    with open(log, "wb") as stderr:
        proc = subprocess.Popen([str(BIN / "s3s3listen"), "--config", path], stderr=stderr, start_new_session=True)
    try:
        wait_until(lambda: client.pubsub_numsub(config.pubsub.channel)[0][1] == 1, timeout=15)
        client.publish(config.pubsub.channel, b"k.txt")
        wait_until(lambda: '"outcome": "copied"' in log.read_text(), timeout=15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        client.close()

    # Then every line it wrote is a JSON object; the copy line has its fields; the last says it stopped
    entries = json_lines(log.read_text())
    (copy,) = [e for e in entries if e["logger"] == "s3s3.copy"]
    assert (copy["key"], copy["dest"], copy["outcome"], copy["bytes"]) == ("k.txt", f"dest1:{dst}", "copied", 5)
    assert isinstance(copy["duration"], float)
    assert entries[-1]["message"] == "Stopped"


def test_given_log_level_warning_when_everything_copies_then_no_info_line_is_written(
    s3_source: Server, s3_dest: Server, redis_server: RedisServer, make_config: Callable[..., Config]
) -> None:
    # Given an object to copy
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    put(s3_source, src, "a.txt", b"a")

    # When s3s3bucket runs with --log-level warning
    done = run("s3s3bucket", "--config", config.path, "--log-level", "warning")

    # Then it copies and logs nothing (the summary is on stdout)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("checked 1 keys: copied 1,")

    # And [logging] level = warning does the same, while --log-level info on the command line wins over it
    with_section(config, "[logging]\nlevel = warning\n")
    put(s3_source, src, "b.txt", b"b")
    assert run("s3s3bucket", "--config", config.path).stderr == ""
    put(s3_source, src, "c.txt", b"c")
    louder = run("s3s3bucket", "--config", config.path, "--log-level", "info")
    assert re.search(r" INFO s3s3\.copy: Copied 'c\.txt' to ", louder.stderr), louder.stderr


def test_given_no_logging_options_then_each_line_is_one_text_line_with_time_level_and_logger(
    s3_source: Server, s3_dest: Server, redis_server: RedisServer, make_config: Callable[..., Config]
) -> None:
    # Given an object to copy and no [logging] section
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=redis_server.url)
    put(s3_source, src, "a b.txt", b"abc")

    # When s3s3bucket runs
    done = run("s3s3bucket", "--config", config.path)

    # Then it logs one text line per copy: time, level, logger, a sentence
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(TEXT_LINE.fullmatch(line) for line in lines), lines
    copies = [line for line in lines if " s3s3.copy: " in line]
    assert len(copies) == 1
    assert re.fullmatch(rf"\S+ \S+ INFO s3s3\.copy: Copied 'a b\.txt' to dest1:{dst}: 3 bytes in \d+\.\d\ds",
                        copies[0])  # fmt: skip


# --- secrets never appear --------------------------------------------------------------------------


@dataclass
class Secrets:
    """The sentinels: the S3 secret keys and webhook token hold `s3`, the Redis password is `redis`."""

    s3: str = field(default_factory=lambda: f"s3-sentinel-{uuid.uuid4().hex}")
    redis: str = field(default_factory=lambda: f"redis-sentinel-{uuid.uuid4().hex}")

    def leaked(self, output: str) -> bool:
        return self.s3 in output or self.redis in output


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture
def secret_redis(tmp_path: Path, secrets: Secrets) -> Iterator[RedisServer]:
    """A redis-server that wants the sentinel password."""
    workdir = tmp_path / "secret-redis"
    workdir.mkdir()
    server = RedisServer(str(workdir), extra_args=("--requirepass", secrets.redis)).start()
    yield server
    server.stop()


@dataclass
class SecretConfigs:
    """Config files holding the sentinels: one that works, and ways to fail."""

    tmp_path: Path
    secrets: Secrets
    source: tuple[Server, str]
    dest: tuple[Server, str]
    redis_port: int
    hook_port: int = field(default_factory=free_port)
    channel: str = field(default_factory=lambda: f"ch-{uuid.uuid4().hex[:8]}")

    def write(self, name: str, *, redis_url: str | None = None, extra: str = "", source_url: str | None = None) -> str:
        server, bucket = self.source
        text = endpoint_section("source", *self.source).replace(server.secret_key, self.secrets.s3)
        if source_url:
            text = text.replace(server.endpoint_url, source_url)
        text += endpoint_section("dest1", *self.dest).replace(self.dest[0].secret_key, self.secrets.s3)
        text += f"[pubsub]\nurl = {redis_url or self.redis_url}\nchannel = {self.channel}\nmax_attempts = 1\n"
        text += f"[webhook]\nbind = 127.0.0.1\nport = {self.hook_port}\ntoken = {self.secrets.s3}-token\n"
        text += "[logging]\nlevel = debug\n" + extra
        path = self.tmp_path / f"{name}.ini"
        path.write_text(text)
        return str(path)

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.secrets.redis}@127.0.0.1:{self.redis_port}/0"


def every_command(label: str, config: str, s3_ok: bool, redis_ok: bool) -> dict[str, str]:
    """Run each short-lived command with -v; return each one's stdout and stderr."""
    commands = {
        "check-config": (["s3s3", "-v", "check-config"], 0 if s3_ok and redis_ok else 1),
        "publish": (["s3s3", "-v", "publish", "a.txt"], 3 if redis_ok else 1),  # pubsub, nobody subscribed: lost
        "bucket --json": (["s3s3bucket", "-v", "--json"], 0 if s3_ok else None),
        "bucket json logs": (["s3s3bucket", "--verbose", "--log-format", "json"], None),
        "status": (["s3s3", "-v", "status", "a.txt"], None),
        "failed": (["s3s3", "-v", "failed"], 0 if redis_ok else 1),
        "retry-failed": (["s3s3", "-v", "retry-failed"], None),
        "doctor": (["s3s3", "-v", "doctor"], None),
        "audit": (["s3s3", "-v", "audit", "--json", "--read-all"], None),
    }
    outputs = {}
    for name, (command, expected) in commands.items():
        done = run(*command, "--config", config, timeout=90)
        outputs[f"{label}: {name}"] = done.stdout + done.stderr
        if expected is not None:
            assert done.returncode == expected, f"{label}: {name}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return outputs


def config_errors(configs: list[str]) -> dict[str, str]:
    """Run the commands on configurations they must refuse (exit 2); return what each printed."""
    outputs = {}
    for i, path in enumerate(configs):
        for command in (["s3s3", "-v", "check-config"], ["s3s3listen", "-v"]):  # every command loads alike
            done = run(*command, "--config", path)
            outputs[f"broken-{i}: {command[0]}"] = done.stdout + done.stderr
            assert done.returncode == 2, outputs[f"broken-{i}: {command[0]}"]
    return outputs


def run_briefly(args: list[str], until: Callable[[str], bool], tmp_path: Path,
                poke: Callable[[], None] = lambda: None) -> str:  # fmt: skip
    """Start a daemon command; once `until(its output)` holds, `poke` it, then SIGTERM it; return its output."""
    out = tmp_path / f"run-{uuid.uuid4().hex[:8]}.log"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        wait_until(lambda: until(out.read_text(errors="replace")), timeout=20)
        poke()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return out.read_text(errors="replace")


def post_with_tokens(port: int, *tokens: str) -> None:
    """POST an announcement to the webhook once with each token."""
    for token in tokens:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/?token={token}", data=b'{"key": "a.txt"}', method="POST"
        )
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError as e:
            e.close()


@pytest.mark.timeout(240)
def test_given_secrets_in_the_config_when_every_command_runs_with_debug_logging_then_no_secret_is_ever_printed(
    s3_source: Server,
    s3_dest: Server,
    secret_redis: RedisServer,
    secrets: Secrets,
    tmp_path: Path,
) -> None:
    # Given configs whose S3 secret keys, Redis password and webhook token are sentinels:
    # one that works, one with a wrong Redis password, one whose S3 is unreachable, and broken ones
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    put(s3_source, src, "a.txt", b"a")
    configs = SecretConfigs(tmp_path, secrets, (s3_source, src), (s3_dest, dst), secret_redis.port)
    good = configs.write("good")
    wrong_password = configs.write("wrong-password", redis_url=configs.redis_url.replace("@", "-wrong@"))
    no_s3 = configs.write("no-s3", source_url=f"http://127.0.0.1:{free_port()}")
    broken = [
        configs.write("duplicate-section", extra="[source]\nbogus = 1\n"),
        configs.write("no-equals", extra=f"[dest2]\nbucket_name = x\naws_secret_access_key {secrets.s3}\n"),
        configs.write("bad-port", extra="[metrics]\nport = not-a-port\n"),
        configs.write("no-key-id", extra=f"[dest2]\nbucket_name = x\naws_secret_access_key = {secrets.s3}\n"),
        configs.write("bad-scheme", redis_url=configs.redis_url.replace("redis://", "http://")),
    ]

    # When every command runs with -v, working and failing (a thread per config: each command is a process)
    with ThreadPoolExecutor(4) as pool:
        runs = [
            pool.submit(every_command, "good", good, True, True),
            pool.submit(every_command, "wrong-password", wrong_password, True, False),
            pool.submit(every_command, "no-s3", no_s3, False, True),
            pool.submit(config_errors, broken),
        ]
        outputs = {label: text for done in runs for label, text in done.result().items()}

    # ... and the daemons run briefly: the listener copies a key; the webhook gets a wrong and a right token
    client = redis.Redis.from_url(configs.redis_url)
    put(s3_source, src, "c.txt", b"c")
    outputs["good: listen"] = run_briefly(
        ["s3s3listen", "-v", "--config", good],
        lambda _: client.pubsub_numsub(configs.channel)[0][1] == 1,
        tmp_path,
        lambda: client.publish(configs.channel, b"c.txt"),
    )
    client.close()
    outputs["wrong-password: listen"] = run_briefly(
        ["s3s3listen", "-v", "--config", wrong_password], lambda out: "Cannot reach Redis" in out, tmp_path
    )
    outputs["good: webhook"] = run_briefly(
        ["s3s3", "-v", "webhook", "--config", good],
        lambda out: "Webhook listening" in out,
        tmp_path,
        lambda: post_with_tokens(configs.hook_port, "wrong", f"{secrets.s3}-token"),
    )

    # Then no output of any of them holds a secret, and no third-party library logged below WARNING
    assert len(outputs) == 3 * 9 + 5 * 2 + 3
    for label, output in outputs.items():
        assert not secrets.leaked(output), f"{label} printed a secret:\n{output}"
        for line in output.splitlines():
            assert not re.search(rf" (DEBUG|INFO) {THIRD_PARTY.pattern}", line), f"{label}: {line}"
            assert not re.search(rf'"logger": "{THIRD_PARTY.pattern}', line), f"{label}: {line}"
    # And the commands did what they say (the checks above are not vacuous)
    assert "configuration is valid" in outputs["good: check-config"]
    assert "redis://:***@127.0.0.1" in outputs["wrong-password: check-config"]
    assert "Copied 'c.txt'" in outputs["good: listen"], outputs["good: listen"]
    assert '"verdicts": {"differs": 0, "equal": 1' in outputs["good: audit"], outputs["good: audit"]
    lineno = Path(broken[1]).read_text().splitlines().index(f"aws_secret_access_key {secrets.s3}") + 1
    assert f"no-equals.ini: line {lineno}: not a [section]" in outputs["broken-1: s3s3"], outputs["broken-1: s3s3"]
