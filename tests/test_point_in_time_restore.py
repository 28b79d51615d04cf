"""`s3s3bucket --reverse --at TIME`: a bucket put back as it was at TIME, from a destination's history.

On two moto servers and a real redis-server. Source times are given by the
`mtime` each version carries (as rclone writes it), so that TIME falls
between versions without waiting for the clock: moto's times are whole
seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3s3.cli import main
from s3s3.config import Config
from s3s3.store import open_store
from tests.helpers import new_bucket
from tests.servers.base import Server
from tests.servers.redis import RedisServer
from tests.versions import (
    bucket_cli,
    current,
    logging_and_signals_kept,
    md5,
    put_at,
    versioned_bucket,
    versions_config,
    versions_of,
)

pytestmark = pytest.mark.timeout(120)

Ini = Callable[..., Config]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis-restore"))).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _restore_logging_and_signals() -> Iterator[None]:
    with logging_and_signals_kept():
        yield


@pytest.fixture
def ini(tmp_path: Path, s3_source: Server, s3_dest: Server, own_redis: RedisServer) -> Ini:
    """An s3s3.ini for a source bucket and one destination bucket (`versions = all` unless told)."""

    def make(source: str, dest: str, **dest_extra: Any) -> Config:
        return versions_config(tmp_path, (s3_source, source), (s3_dest, dest), own_redis.url, **dest_extra)

    return make


@pytest.fixture
def backed_up(s3_source: Server, s3_dest: Server, ini: Ini, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """A source whose history is replayed at a versioned destination: (source bucket, backup bucket).

    k: v1 at 1000, v2 at 2000; same: one version at 1000; later: one version at 3000.
    """
    source, backup = versioned_bucket(s3_source, "src"), versioned_bucket(s3_dest, "bak")
    put_at(s3_source, source, "k", b"k as it was at 1000", 1000)
    put_at(s3_source, source, "k", b"k as it is since 2000", 2000)
    put_at(s3_source, source, "same", b"unchanged since 1000", 1000)
    put_at(s3_source, source, "later", b"written at 3000", 3000)
    code, _, err = bucket_cli(capsys, ini(source, backup))
    assert code == 0, err
    return source, backup


def test_a_time_between_two_versions_restores_the_older_one_into_an_empty_bucket(
    s3_source: Server, backed_up: tuple[str, str], ini: Ini, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an empty versioned bucket to restore into, and the backup of another
    _, backup = backed_up
    empty = versioned_bucket(s3_source, "new")

    # When it is restored as the source was at 1500
    code, out, err = bucket_cli(capsys, ini(empty, backup), "--reverse", "--dest", "dest1", "--at", "1500", "--json")

    # Then it holds each key's version of 1500, and nothing written later
    assert code == 0, err
    assert current(s3_source, empty) == {"k": md5(b"k as it was at 1000"), "same": md5(b"unchanged since 1000")}
    assert '"copied": 2' in out


def test_an_equal_current_version_is_left_alone_and_a_later_key_stays_without_delete(
    s3_source: Server, backed_up: tuple[str, str], ini: Ini, capsys: pytest.CaptureFixture[str]
) -> None:
    source, backup = backed_up
    config = ini(source, backup)

    # When the source itself is restored as it was at 1500 (ISO 8601), without --delete
    code, _, err = bucket_cli(capsys, config, "--reverse", "--dest", "dest1", "--at", "1970-01-01T00:25:00Z")

    # Then only k is written (its older bytes become its newest version); `same` is not written again,
    # and `later`, which did not exist yet, is kept
    assert code == 0, err
    assert current(s3_source, source) == {"k": md5(b"k as it was at 1000"), "same": md5(b"unchanged since 1000"),
                                          "later": md5(b"written at 3000")}  # fmt: skip
    assert (versions_of(s3_source, source, "k"), versions_of(s3_source, source, "same")) == (3, 1)

    # When it is restored with --delete as it was at 1500: `later` goes (a delete marker: its versions stay)
    code, out, err = bucket_cli(capsys, config, "--reverse", "--dest", "dest1", "--at", "1500", "--delete")
    assert code == 0, err
    assert set(current(s3_source, source)) == {"k", "same"}
    assert versions_of(s3_source, source, "later") == 1


def test_a_dry_run_says_what_it_would_restore(
    s3_source: Server, backed_up: tuple[str, str], ini: Ini, capsys: pytest.CaptureFixture[str]
) -> None:
    source, backup = backed_up
    code, out, _ = bucket_cli(capsys, ini(source, backup), "--reverse", "--dest", "dest1", "--at", "1500",
                              "--delete", "--dry-run")  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("would restore version ") and lines[0].endswith(" of 'k' to source:" + source +
                                                                               " (19 bytes)")  # fmt: skip
    assert lines[1] == "would delete 'later' at source:" + source
    assert current(s3_source, source)["k"] == md5(b"k as it is since 2000")


def test_at_needs_reverse_and_a_destination_that_keeps_versions(
    s3_source: Server, s3_dest: Server, ini: Ini, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ini(new_bucket(s3_source, "src"), new_bucket(s3_dest, "bak"))
    code, _, err = bucket_cli(capsys, config, "--at", "1500")
    assert (code, err) == (2, f"s3s3: error: {config.path}: --at restores the source from a destination: it goes "
                              "with --reverse --dest\n")  # fmt: skip

    latest = ini(new_bucket(s3_source, "src"), new_bucket(s3_dest, "bak"), versions="latest")
    code, _, err = bucket_cli(capsys, latest, "--reverse", "--dest", "dest1", "--at", "1500")
    assert (code, err) == (
        2,
        f"s3s3: error: {latest.path}: [dest1] versions = latest: --at restores from the "
        "versions a destination keeps: set versions = all in [dest1], or restore without --at\n",
    )

    with pytest.raises(SystemExit) as exited:
        main(["bucket", "--config", str(config.path), "--reverse", "--at", "yesterday"])
    assert exited.value.code == 2
    assert "'yesterday' is not a time: ISO 8601 (2024-05-01T10:00:00Z) or Unix seconds" in capsys.readouterr().err


def test_a_key_deleted_before_the_time_is_deleted_only_with_delete(
    s3_source: Server, s3_dest: Server, ini: Ini, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a key deleted at the source (a delete marker) and backed up with its marker
    source, backup = versioned_bucket(s3_source, "src"), versioned_bucket(s3_dest, "bak")
    config = ini(source, backup)
    put_at(s3_source, source, "gone", b"deleted since", 1000)
    s3_source.client().delete_object(Bucket=source, Key="gone")
    assert bucket_cli(capsys, config)[0] == 0
    # ... and written again at the source since, which the backup has not seen
    put_at(s3_source, source, "gone", b"back again", 5000)
    marker = s3_dest.client().list_object_versions(Bucket=backup)["DeleteMarkers"][0]["LastModified"]
    at = str(marker.timestamp() + 1)  # a marker's time is when it was replayed at the destination

    # When the source is restored as it was then, without and with --delete
    assert bucket_cli(capsys, config, "--reverse", "--dest", "dest1", "--at", at)[0] == 0
    kept = current(s3_source, source)
    assert bucket_cli(capsys, config, "--reverse", "--dest", "dest1", "--at", at, "--delete")[0] == 0

    # Then only --delete deleted it
    assert kept == {"gone": md5(b"back again")}
    assert current(s3_source, source) == {}
    assert open_store(config.source).head("gone") is None
