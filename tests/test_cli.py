"""The command line: help and version, where the configuration is found, exit codes, check-config, publish."""

from __future__ import annotations

import configparser
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from s3s3 import __version__
from s3s3.cli import main, script_parser
from s3s3.config import Config
from tests.helpers import endpoint_section, new_bucket
from tests.servers.base import Server, free_port, silent_port
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

BIN = Path(sys.executable).parent
SCRIPTS = ("s3s3", "s3s3listen", "s3s3bucket", "echo_s3s3_ini_template", "echo_s3s3_supervisord_conf")
SUBCOMMANDS = ("listen", "bucket", "audit", "publish", "check-config")
ALL_SUBCOMMANDS = (*SUBCOMMANDS, "doctor", "failed", "retry-failed", "status", "webhook")
ROOT = Path(__file__).resolve().parent.parent
SECRET = "SENTINEL-secret-9f8e7d"  # must never be printed
PASSWORD = "SENTINEL-redis-pw-4c3b2a"  # likewise, inside a Redis URL
NOT_FOUND = "no configuration file found (looked at --config, $S3S3_CONFIG, ./s3s3.ini, /usr/local/etc/s3s3.ini)"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() sets up logging on the root logger; give the next test what it had."""
    root = logging.getLogger()
    handlers, level, s3s3_level = root.handlers[:], root.level, logging.getLogger("s3s3").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("s3s3").setLevel(s3s3_level)


def run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run an installed console script (argv[0] is its name) and return what it did."""
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )


def write_config(path: Path, source: tuple[Server, str], dest: tuple[Server, str], pubsub: str) -> Path:
    path.write_text(endpoint_section("source", *source) + endpoint_section("dest1", *dest) + pubsub)
    return path


def missing_source(path: Path) -> Path:
    """A configuration that fails at once, naming its own path."""
    path.write_text("[dest]\nbucket_name = d\n")
    return path


def test_every_console_script_answers_help_and_version_with_exit_0() -> None:
    # Given every installed script, started at once to keep this fast
    procs = {
        (script, flag): subprocess.Popen(
            [str(BIN / script), flag], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for script in SCRIPTS
        for flag in ("--help", "--version")
    }

    # When each finishes
    results = {name: (proc.wait(30), *proc.communicate()) for name, proc in procs.items()}

    # Then each exits 0, --version prints the version and --help a usage line, never the files
    for (script, flag), (code, out, err) in results.items():
        assert (script, flag, code, err) == (script, flag, 0, "")
        if flag == "--version":
            assert out == f"s3s3 {__version__}\n"
        else:
            assert out.startswith(f"usage: {script} "), (script, out)
            assert "[source]" not in out and "[program:" not in out


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_console_script_shows_its_own_name_in_its_usage_and_its_errors(
    script: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the parser a console script reads its arguments with
    parser = script_parser(script)

    # When it is given an option nobody has
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--no-such-option"])

    # Then its usage line and its error name the script itself, not `s3s3 listen`
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {script} [-h]"), err
    assert f"\n{script}: error: unrecognized arguments: --no-such-option\n" in err


@pytest.mark.parametrize("command", [*ALL_SUBCOMMANDS, *SCRIPTS[1:]])
def test_every_command_help_says_what_it_does_its_exit_codes_and_its_docs_page(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # When a subcommand (or a console script of its own) is asked for --help
    with pytest.raises(SystemExit) as exited:
        if command in ALL_SUBCOMMANDS:
            main([command, "--help"])
        else:
            script_parser(command).parse_args(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out

    # Then a description of a few lines comes after the usage, then its exit codes and the page to read
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 10 and not description.startswith(("options:", "positional")), out
    codes = re.search(r"\nexit codes:\n((?:  \d  .+\n)+)\ndocumentation: (docs/\S+\.md)\n$", out)
    assert codes, out
    assert {int(line.split()[0]) for line in codes[1].splitlines()} >= {0, 2}
    assert (ROOT / codes[2]).is_file()


@pytest.mark.parametrize("subcommand", ALL_SUBCOMMANDS)
def test_every_subcommand_answers_help_and_version_with_exit_0(
    subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([subcommand, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: s3s3 {subcommand} [-h] [--config FILE]")

    with pytest.raises(SystemExit) as exited:
        main([subcommand, "--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"s3s3 {__version__}\n"


def test_no_subcommand_prints_help_on_stderr_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: s3s3 ")
    assert "check-config" in captured.err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["publish"], "the following arguments are required: KEY"),
        (["bucket", "--workers", "0"], "argument --workers: '0' is not a positive whole number"),
        (["listen", "--workers", "many"], "argument --workers: 'many' is not a positive whole number"),
        (["check-config", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_wrong(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_usage_error_of_an_installed_script_exits_2() -> None:
    result = run("s3s3bucket", "--workers", "-1")
    assert result.returncode == 2
    assert "argument --workers: '-1' is not a positive whole number" in result.stderr


def test_config_is_looked_for_in_option_then_environment_then_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a (broken, so nothing connects) configuration in each of the places, and we stand in tmp_path
    explicit = missing_source(tmp_path / "explicit.ini")
    from_env = missing_source(tmp_path / "from-env.ini")
    missing_source(tmp_path / "s3s3.ini")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("S3S3_CONFIG", str(from_env))

    def chosen(*argv: str) -> str:
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.endswith(": [source]: section is missing\n")
        return err.removeprefix("s3s3: error: ").removesuffix(": [source]: section is missing\n")

    # Then --config wins, wherever it is on the line, and in its short form
    assert chosen("check-config", "--config", str(explicit)) == str(explicit)
    assert chosen("--config", str(explicit), "check-config") == str(explicit)
    assert chosen("publish", "-c", str(explicit), "k") == str(explicit)
    # then $S3S3_CONFIG
    assert chosen("check-config") == str(from_env)
    # then ./s3s3.ini
    monkeypatch.delenv("S3S3_CONFIG")
    assert chosen("check-config") == "./s3s3.ini"


def test_no_config_anywhere_lists_every_place_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if Path("/usr/local/etc/s3s3.ini").exists():
        pytest.skip("this machine has a /usr/local/etc/s3s3.ini")
    # Given no --config, no $S3S3_CONFIG and no ./s3s3.ini
    monkeypatch.chdir(tmp_path)

    # When a command needs the configuration
    code = main(["publish", "some-key"])

    # Then it exits 2 with one line naming the four places
    assert code == 2
    assert capsys.readouterr() == ("", f"s3s3: error: {NOT_FOUND}\n")


def test_installed_script_finds_config_in_the_environment_and_the_current_directory(tmp_path: Path) -> None:
    # Given a broken configuration as ./s3s3.ini and another one in $S3S3_CONFIG
    missing_source(tmp_path / "s3s3.ini")
    from_env = missing_source(tmp_path / "env.ini")

    # When the listener script starts / Then it reads the one it should and exits 2
    result = run("s3s3listen", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "s3s3: error: ./s3s3.ini: [source]: section is missing\n"

    result = run("s3s3bucket", cwd=tmp_path, env={"S3S3_CONFIG": str(from_env)})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"s3s3: error: {from_env}: [source]: section is missing\n"


FAILING_CONFIGS = [
    pytest.param(
        f"[source]\nbucket_name = s\naws_access_key_id = AK\naws_secret_access_key = {SECRET}\nverify_md5 = maybe\n"
        "[dest]\nbucket_name = d\n",
        "[source] verify_md5: 'maybe' is not true or false",
        id="bad-boolean-next-to-the-secret",
    ),
    pytest.param(
        f"[source]\nbucket_name = s\naws_secret_access_key = {SECRET}\n[dest]\nbucket_name = d\n",
        "[source] aws_access_key_id: is required when the other key is given",
        id="secret-without-access-key",
    ),
    pytest.param(
        f"aws_secret_access_key = {SECRET}\n[source]\nbucket_name = s\n",
        "line 1: an option before the first [section]",
        id="secret-before-any-section",
    ),
    pytest.param(
        f"[source]\nbucket_name = s\naws_secret_access_key {SECRET}\n",
        "line 3: not a [section] or an 'option = value' line",
        id="secret-without-equals-sign",
    ),
    pytest.param(
        f"[source]\nbucket_name = s\naws_access_key_id = AK\naws_secret_access_key = {SECRET}\n"
        f"[dest]\nbucket_name = d\n[pubsub]\nurl = http://:{PASSWORD}@127.0.0.1:6379/0\n",
        "[pubsub] url: 'http://:***@127.0.0.1:6379/0' is not a redis://, rediss:// or unix:// URL",
        id="password-in-bad-url",
    ),
    pytest.param(
        f"[source]\nbucket_name = s\n[dest]\nbucket_name = d\n[pubsub]\nurl = redis://:{PASSWORD}@h:63x9/0\n",
        "[pubsub] url: is not a valid URL: Port could not be cast to integer value as '63x9'",
        id="password-in-url-with-bad-port",
    ),
    pytest.param(
        f"[source]\nbucket_name = s\naws_access_key_id = AK\naws_secret_access_key = {SECRET}\n"
        "[dest]\nbucket_name = d\n[pubsub]\nsns = True\n",
        "[pubsub] sns: SNS is not supported; use redis",
        id="sns",
    ),
]


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
@pytest.mark.parametrize(("text", "problem"), FAILING_CONFIGS)
def test_config_error_exits_2_with_one_line_on_stderr_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], subcommand: str, text: str, problem: str
) -> None:
    # Given a broken configuration that holds the secret key or the Redis password
    path = tmp_path / "s3s3.ini"
    path.write_text(text)
    argv = [subcommand, "--config", str(path)] + (["some-key"] if subcommand == "publish" else [])

    # When a command is run with it
    code = main(argv)

    # Then it exits 2, prints one line on stderr and nothing on stdout, and never the secrets
    captured = capsys.readouterr()
    assert code == 2
    assert captured == ("", f"s3s3: error: {path}: {problem}\n")
    assert SECRET not in captured.err and PASSWORD not in captured.err


@pytest.mark.parametrize(
    "script",
    # (the original's service names, `python -m s3s3.scripts.listen|bucket`, are the same code)
    [("s3s3listen",), ("s3s3bucket",),
     ("python", "-m", "s3s3.scripts.listen"), ("python", "-m", "s3s3.scripts.bucket")],  # fmt: skip
)
def test_installed_scripts_exit_2_on_a_config_error_without_showing_the_secret(
    tmp_path: Path, script: tuple[str, ...]
) -> None:
    path = tmp_path / "s3s3.ini"
    path.write_text(f"[source]\nbucket_name = s\naws_secret_access_key = {SECRET}\n[dest]\nbucket_name = d\n")

    result = run(*script, "-c", str(path))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"s3s3: error: {path}: [source] aws_access_key_id: is required when the other key is given\n"
    )


def test_check_config_says_ok_for_every_section_when_all_can_be_reached(
    tmp_path: Path, s3_source: Server, s3_dest: Server, redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given two buckets on two moto servers and the real Redis
    source, dest = new_bucket(s3_source), new_bucket(s3_dest)
    pubsub = f"[pubsub]\nurl = {redis_server.url}\n"
    path = write_config(tmp_path / "s3s3.ini", (s3_source, source), (s3_dest, dest), pubsub)

    # When the configuration is checked
    code = main(["check-config", "-c", str(path)])

    # Then every section says ok and the exit code is 0
    assert capsys.readouterr().out == (
        f"{path}: configuration is valid\n"
        f"[source] bucket {source!r} at {s3_source.endpoint_url}: ok\n"
        f"[dest1] bucket {dest!r} at {s3_dest.endpoint_url}: ok\n"
        f"[pubsub] {redis_server.url}: ok\n"
    )
    assert code == 0


def test_check_config_reports_a_missing_bucket_and_exits_1(
    tmp_path: Path, s3_source: Server, s3_dest: Server, redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given a destination bucket that does not exist
    source = new_bucket(s3_source)
    path = write_config(
        tmp_path / "s3s3.ini", (s3_source, source), (s3_dest, "no-such-bucket"), f"[pubsub]\nurl = {redis_server.url}\n"
    )

    # When the configuration is checked
    code = main(["check-config", "-c", str(path)])

    # Then that one line has the store's error, the others say ok, and the exit code is 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: configuration is valid",
        f"[source] bucket {source!r} at {s3_source.endpoint_url}: ok",
        f"[dest1] bucket 'no-such-bucket' at {s3_dest.endpoint_url}: An error occurred (NoSuchBucket) when calling "
        "the ListObjectsV2 operation: The specified bucket does not exist",
        f"[pubsub] {redis_server.url}: ok",
    ]
    assert code == 1


def test_check_config_reports_a_dead_redis_and_exits_1_without_showing_its_password(
    tmp_path: Path, s3_source: Server, s3_dest: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a Redis URL, with a password, on a port nothing listens on
    source, dest = new_bucket(s3_source), new_bucket(s3_dest)
    port = free_port()
    pubsub = f"[pubsub]\nurl = redis://:{PASSWORD}@127.0.0.1:{port}/0\n"
    path = write_config(tmp_path / "s3s3.ini", (s3_source, source), (s3_dest, dest), pubsub)

    # When the configuration is checked
    code = main(["check-config", "-c", str(path)])

    # Then the buckets are ok, the Redis line has the error and the password is not shown
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{path}: configuration is valid",
        f"[source] bucket {source!r} at {s3_source.endpoint_url}: ok",
        f"[dest1] bucket {dest!r} at {s3_dest.endpoint_url}: ok",
        f"[pubsub] redis://:***@127.0.0.1:{port}/0: Error 111 connecting to 127.0.0.1:{port}. Connection refused.",
    ]
    assert PASSWORD not in captured.out + captured.err
    assert code == 1


DEADLINE = 8.0  # seconds a connection check may take on endpoints that never answer (about 5 s each, by default)


def dead_endpoints_config(path: Path, port: int, redis_port: int) -> Path:
    """Both endpoints (one on each transport: SigV4 lean, SigV2 boto3) and Redis on ports that do not answer."""
    path.write_text(
        f"[source]\nendpoint_url = http://127.0.0.1:{port}\nbucket_name = src\naws_access_key_id = AK\n"
        f"aws_secret_access_key = {SECRET}\n"
        f"[dest1]\nendpoint_url = http://127.0.0.1:{port}\nbucket_name = dst\naws_access_key_id = AK\n"
        f"aws_secret_access_key = {SECRET}\nsignature_version = s3\n"
        f"[pubsub]\nurl = redis://:{PASSWORD}@127.0.0.1:{redis_port}/0\n"
    )
    return path


def test_check_config_gives_up_on_refused_endpoints_at_once_and_with_v_says_what_it_tries(
    tmp_path: Path,
) -> None:
    # Given a configuration whose stores and Redis are on a port nothing listens on
    port = free_port()
    path = dead_endpoints_config(tmp_path / "s3s3.ini", port, port)

    # When it is checked with -v
    started = time.monotonic()
    result = run("s3s3", "check-config", "-v", "-c", str(path))
    took = time.monotonic() - started

    # Then each line says what failed, without a retry (well within the deadline), and exits 1
    assert took < DEADLINE, f"took {took:.1f}s"
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}: configuration is valid",
        f"[source] bucket 'src' at http://127.0.0.1:{port}: ListObjectsV2 on 127.0.0.1:{port}: "
        "ConnectionRefusedError: [Errno 111] Connection refused",
        f"[dest1] bucket 'dst' at http://127.0.0.1:{port}: ListObjectsV2: Could not connect to the endpoint URL: "
        f'"http://127.0.0.1:{port}/dst/?list-type=2&prefix=&start-after=&encoding-type=url"',
        f"[pubsub] redis://:***@127.0.0.1:{port}/0: Error 111 connecting to 127.0.0.1:{port}. Connection refused.",
    ]
    # And with -v it said what it tried as it went: which endpoint, at which URL
    tried = [line.split(" ", 2)[2] for line in result.stderr.splitlines()]
    assert tried == [
        f"DEBUG s3s3.cli: Connecting to [source] at http://127.0.0.1:{port} to list a page of bucket 'src'",
        f"DEBUG s3s3.cli: Connecting to [dest1] at http://127.0.0.1:{port} to list a page of bucket 'dst'",
        f"DEBUG s3s3.cli: Connecting to Redis at redis://:***@127.0.0.1:{port}/0",
    ]
    assert SECRET not in result.stdout + result.stderr and PASSWORD not in result.stdout + result.stderr


@pytest.mark.slow
def test_check_config_gives_up_on_an_endpoint_that_never_answers_after_the_connect_timeout(
    tmp_path: Path, s3_dest: Server, redis_server: RedisServer
) -> None:
    # Given a source whose port takes connections and never answers them (as a firewall that drops them)
    with silent_port() as port:
        dest = new_bucket(s3_dest)
        path = tmp_path / "s3s3.ini"
        path.write_text(
            f"[source]\nendpoint_url = http://127.0.0.1:{port}\nbucket_name = src\naws_access_key_id = AK\n"
            f"aws_secret_access_key = {SECRET}\n" + endpoint_section("dest1", s3_dest, dest)
            + f"[pubsub]\nurl = {redis_server.url}\n"
        )

        # When it is checked, with the default connect timeout
        started = time.monotonic()
        result = run("s3s3", "check-config", "-c", str(path))
        took = time.monotonic() - started

    # Then the source is given up on after about 5 s, and the others are still checked
    assert took < DEADLINE, f"took {took:.1f}s"
    assert result.returncode == 1
    assert result.stdout.splitlines()[1:] == [
        f"[source] bucket 'src' at http://127.0.0.1:{port}: ListObjectsV2 on 127.0.0.1:{port}: "
        "TimeoutError: timed out",
        f"[dest1] bucket {dest!r} at {s3_dest.endpoint_url}: ok",
        f"[pubsub] {redis_server.url}: ok",
    ]


def test_status_of_a_key_gives_up_on_a_refused_store_at_once_and_with_v_says_where_it_reads(tmp_path: Path) -> None:
    port = free_port()
    path = dead_endpoints_config(tmp_path / "s3s3.ini", port, port)

    started = time.monotonic()
    result = run("s3s3", "status", "-v", "-c", str(path), "some/key")
    took = time.monotonic() - started

    assert took < DEADLINE, f"took {took:.1f}s"
    assert result.returncode == 1
    assert result.stdout == (f"source:src: 'some/key': cannot read: HeadObject on 127.0.0.1:{port}: "
                             "ConnectionRefusedError: [Errno 111] Connection refused\n")  # fmt: skip
    assert [line.split(" ", 2)[2] for line in result.stderr.splitlines()] == [
        f"DEBUG s3s3.status: Reading 'some/key' at [source] bucket 'src' at http://127.0.0.1:{port}"
    ]


@pytest.mark.parametrize("silent", [False, True], ids=["refused", "never-answers"])
def test_doctor_says_an_endpoint_it_cannot_connect_to_is_unreachable_not_that_no_signature_works(
    silent: bool, tmp_path: Path
) -> None:
    # Given a source on a port that refuses connections, or takes them and never answers
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(silent_port()) if silent else free_port()
        path = dead_endpoints_config(tmp_path / "s3s3.ini", port, free_port())

        # When doctor probes it, with -v
        started = time.monotonic()
        result = run("s3s3", "doctor", "-v", "-c", str(path), "source")
        took = time.monotonic() - started

    # Then it gives up within the deadline, says unreachable with the error, and probes nothing more
    assert took < DEADLINE, f"took {took:.1f}s"
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"[source] bucket 'src' at http://127.0.0.1:{port}"
    error = "Connect timeout on endpoint URL" if silent else "Could not connect to the endpoint URL"
    assert re.fullmatch(rf'  connection  unreachable: {error}: "http://127\.0\.0\.1:{port}/src\?.+"', lines[1])
    assert lines[2:] == ["  usable: no"]
    assert "signature" not in result.stdout
    assert result.stderr.splitlines()[0].endswith(
        f"DEBUG s3s3.doctor: Probing [source] bucket 'src' at http://127.0.0.1:{port}, under s3s3-doctor-"
        + lines[1].split("prefix=s3s3-doctor-")[1][:12] + "/"
    )


def test_check_config_with_a_password_the_redis_does_not_want_never_shows_it(
    tmp_path: Path, s3_source: Server, s3_dest: Server, redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given a password for the real Redis, which has none set
    source, dest = new_bucket(s3_source), new_bucket(s3_dest)
    pubsub = f"[pubsub]\nurl = redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0\n"
    path = write_config(tmp_path / "s3s3.ini", (s3_source, source), (s3_dest, dest), pubsub)

    # When the configuration is checked
    main(["check-config", "-c", str(path)])

    # Then (redis-py lets a server without a password accept any) the line says ok, without the password
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == f"[pubsub] redis://:***@127.0.0.1:{redis_server.port}/0: ok"
    assert PASSWORD not in captured.out + captured.err


def test_publish_sends_each_key_as_its_utf8_bytes_to_subscribers(
    tmp_path: Path, s3_source: Server, s3_dest: Server, redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given a subscriber on the configured channel of the real Redis
    channel = f"ch-{tmp_path.name}"
    path = write_config(
        tmp_path / "s3s3.ini", (s3_source, "src"), (s3_dest, "dst"),
        f"[pubsub]\nurl = {redis_server.url}\nchannel = {channel}\n",
    )  # fmt: skip
    subscriber = redis.Redis.from_url(redis_server.url).pubsub()
    subscriber.subscribe(channel)
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    keys = ["plain.txt", "dir/with spaces/ünïcödé ✓ 日本.jpg", "a+b%20c"]

    # When the keys are published
    code = main(["publish", "-c", str(path), *keys])

    # Then the subscriber gets exactly their UTF-8 bytes, in order, and nothing else
    received = []
    for _ in keys:
        message = subscriber.get_message(timeout=5)
        assert message is not None
        received.append((message["type"], message["channel"], message["data"]))
    assert received == [("message", channel.encode(), key.encode("utf-8")) for key in keys]
    assert subscriber.get_message(timeout=0.2) is None
    subscriber.close()
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        f"published {key!r} on {channel!r} to 1 listener(s)" for key in keys
    ]


def test_publish_in_pubsub_mode_with_no_listener_warns_that_the_key_is_lost_and_exits_3(
    tmp_path: Path, s3_source: Server, s3_dest: Server, redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given pubsub mode and nobody subscribed to the channel
    channel = f"ch-{tmp_path.name}"
    path = write_config(tmp_path / "s3s3.ini", (s3_source, "src"), (s3_dest, "dst"),
                        f"[pubsub]\nurl = {redis_server.url}\nchannel = {channel}\n")  # fmt: skip

    # When a key is published
    code = main(["publish", "-c", str(path), "lost/key.txt"])

    # Then it says the key reached no one and is lost, on stderr, and exits 3
    assert code == 3
    assert capsys.readouterr() == (
        f"published 'lost/key.txt' on {channel!r} to 0 listener(s)\n",
        "s3s3: warning: 'lost/key.txt' was received by no one, so it is lost: start a listener, or use [pubsub] "
        "mode = stream or list, which keep keys until a listener takes them\n",
    )


@pytest.mark.parametrize("mode", ["stream", "list"])
def test_publish_in_stream_or_list_mode_with_no_listener_keeps_the_key_and_exits_0(
    mode: str, tmp_path: Path, s3_source: Server, s3_dest: Server, redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given a stream or a list nobody reads
    target = f"{mode}-{tmp_path.name}"
    path = write_config(tmp_path / "s3s3.ini", (s3_source, "src"), (s3_dest, "dst"),
                        f"[pubsub]\nurl = {redis_server.url}\nmode = {mode}\n{mode} = {target}\n")  # fmt: skip

    # When a key is published
    code = main(["publish", "-c", str(path), "kept/key.txt"])

    # Then Redis keeps it for the listener to come, and the command says so without a warning
    assert code == 0
    assert capsys.readouterr() == (f"published 'kept/key.txt' on {mode} {target!r}\n", "")
    client = redis.Redis.from_url(redis_server.url)
    kept = client.xlen(target) if mode == "stream" else client.llen(target)
    client.delete(target)
    client.close()
    assert kept == 1


def test_publish_to_a_dead_redis_exits_1_without_showing_its_password(
    tmp_path: Path, s3_source: Server, s3_dest: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    path = write_config(
        tmp_path / "s3s3.ini", (s3_source, "src"), (s3_dest, "dst"),
        f"[pubsub]\nurl = redis://:{PASSWORD}@127.0.0.1:{port}/0\n",
    )  # fmt: skip

    code = main(["publish", "-c", str(path), "k"])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == (
        f"s3s3: error: cannot publish to redis://:***@127.0.0.1:{port}/0: "
        f"Error 111 connecting to 127.0.0.1:{port}. Connection refused.\n"
    )


def test_publish_exits_1_when_no_replica_holds_the_announcement_in_time(
    tmp_path: Path, s3_source: Server, s3_dest: Server, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a Redis without replicas, and wait_replicas = 1
    path = write_config(
        tmp_path / "s3s3.ini", (s3_source, "src"), (s3_dest, "dst"),
        f"[pubsub]\nurl = {redis_server.url}\nmode = stream\nstream = s-{uuid.uuid4().hex}\nwait_replicas = 1\n",
    )  # fmt: skip

    # When a key is published
    code = main(["publish", "-c", str(path), "k"])

    # Then it is not reported published: the master holds it, but a failover now would lose it
    assert code == 1
    assert capsys.readouterr().err == "s3s3: error: 'k' is not replicated: 0 of 1 replica(s) acknowledged within 3s\n"


def test_echo_ini_template_prints_the_shipped_template_which_loads_once_filled_in(tmp_path: Path) -> None:
    # When the template is printed
    result = run("echo_s3s3_ini_template")

    # Then it is the repository's s3s3.ini.dist, and it loads once its placeholders are filled in
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (Path(__file__).parent.parent / "s3s3.ini.dist").read_text()
    filled = result.stdout
    for placeholder, value in {
        "{YOUR_AWS_ACCESS_KEY_ID}": "AK",
        "{YOUR_AWS_SECRET_ACCESS_KEY}": SECRET,
        "{YOUR_S3_BUCKET}": "photos",
        "{YOUR_CEPH_S3_ENDPOINT}": "rgw.example.com",
    }.items():
        filled = filled.replace(placeholder, value)
    path = tmp_path / "s3s3.ini"
    path.write_text(filled)
    config = Config.from_file(path)
    assert (config.source.endpoint_url, config.dests[0].name) == ("https://rgw.example.com", "destination")


def test_echo_supervisord_conf_prints_a_program_supervisord_accepts(tmp_path: Path) -> None:
    # When the supervisord program file is printed
    result = run("echo_s3s3_supervisord_conf")
    assert (result.returncode, result.stderr) == (0, "")

    # Then supervisord's own parser reads it (after a [supervisord] section, and with its
    # log directory, which must exist, moved to a temporary one)
    assert "/var/log/s3s3/" in result.stdout
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\n" + result.stdout.replace("/var/log/s3s3/", f"{tmp_path}/"))
    section = ServerOptions().read_config(str(conf))
    [group] = section.process_group_configs
    [program] = group.process_configs

    # And the listener is restarted when it dies and given time to finish its copies on TERM
    assert program.name == "s3s3listen"
    assert program.command == "/opt/env/s3s3/bin/s3s3listen --config /usr/local/etc/s3s3.ini"
    assert program.autorestart is RestartUnconditionally
    assert program.stopsignal == signal.SIGTERM
    assert program.stopwaitsecs >= 60
    assert program.stopasgroup and program.killasgroup

    # And configparser, as supervisord would see the raw file, agrees
    raw = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    raw.read_string("[supervisord]\n" + result.stdout)
    assert raw.get("program:s3s3listen", "autorestart") == "true"
    assert raw.get("program:s3s3listen", "stopsignal") == "TERM"


@pytest.mark.parametrize("shipped", ["s3s3/data/s3s3.ini.dist", "s3s3/data/supervisord.conf"])
def test_the_shipped_templates_point_at_docs_pages_that_exist_not_at_the_readme(shipped: str) -> None:
    text = (ROOT / shipped).read_text()
    pages = re.findall(r"\bdocs/[\w/.-]+\.md\b", text)
    assert pages and "README" not in text
    assert [page for page in pages if not (ROOT / page).is_file()] == []
