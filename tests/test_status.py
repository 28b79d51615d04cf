"""`s3s3 status KEY`: one key at the source and at every destination, as the command prints it."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    new_bucket,
    write_config,
)
from tests.processes import BIN
from tests.servers.base import Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


# --- 10. s3s3 status KEY -----------------------------------------------------------------------


def test_given_a_key_when_s3s3_status_is_run_then_it_prints_every_side_and_exits_0_only_when_all_are_in_sync(
    s3_source: Server, s3_dest: Server, tmp_path: Path
) -> None:
    # Given a key at the source, copied intact to one destination and stale at the other
    src, dst1, dst2 = new_bucket(s3_source), new_bucket(s3_dest), new_bucket(s3_dest)
    body = b"the status of things\n"
    md5 = hashlib.md5(body).hexdigest()
    for server, bucket, data in ((s3_source, src, body), (s3_dest, dst1, body), (s3_dest, dst2, b"stale")):
        server.client().put_object(Bucket=bucket, Key="docs/a b.txt", Body=data)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst1, {}), (s3_dest, dst2, {})],
                          {"url": "redis://127.0.0.1:1/0"})  # fmt: skip

    def status(key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "s3s3"), "status", "--config", config.path, key], capture_output=True,
                              text=True, timeout=30)  # fmt: skip

    # When `s3s3 status` is asked about it
    done = status("docs/a b.txt")

    # Then it prints size, ETag and MD5 of each side, which are in sync, and exits 1
    stale = hashlib.md5(b"stale").hexdigest()
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.splitlines() == [
        f"source:{src}: 'docs/a b.txt', size 21, ETag {md5}, MD5 {md5}  (source)",
        f"dest1:{dst1}: 'docs/a b.txt', size 21, ETag {md5}, MD5 {md5}  (in sync)",
        f"dest2:{dst2}: 'docs/a b.txt', size 5, ETag {stale}, MD5 {stale}  (differs)",
    ]

    # When the stale copy is brought up to date, then it exits 0
    s3_dest.client().put_object(Bucket=dst2, Key="docs/a b.txt", Body=body)
    done = status("docs/a b.txt")
    assert done.returncode == 0 and done.stdout.splitlines()[-1].endswith("  (in sync)")

    # And a key missing at a destination is reported as missing, exit 1
    s3_source.client().put_object(Bucket=src, Key="new.txt", Body=b"new")
    done = status("new.txt")
    assert done.returncode == 1
    assert done.stdout.splitlines()[1:] == [f"dest1:{dst1}: not there  (missing)",
                                            f"dest2:{dst2}: not there  (missing)"]  # fmt: skip
