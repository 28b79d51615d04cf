"""`s3s3 doctor` on versions and Object Lock: what each bucket has, and what a destination's options should say.

Source and destinations are buckets on two moto servers, set up as each test
says; `s3s3 doctor` runs on them and its report is read line by line.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from s3s3.config import Config
from s3s3.doctor import run
from s3s3.errors import EXIT_OK
from tests.helpers import next_number
from tests.servers.base import Server

pytestmark = pytest.mark.timeout(180)


def bucket(server: Server, *, versions: bool = False, lock: bool = False) -> str:
    name = f"doctor-{next_number()}-{uuid.uuid4().hex[:8]}"
    client = server.client()
    if lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=name)
    if versions:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def doctor(config: Config, capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    """Run `s3s3 doctor` on the config; each section's report, its lines with their spaces squeezed."""
    assert run(config, []) == EXIT_OK
    reports: dict[str, list[str]] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("["):
            section = line[1 : line.index("]")]
            reports[section] = []
        else:
            reports[section].append(" ".join(line.split()))
    return reports


def test_doctor_reports_versions_and_object_lock_and_recommends_the_options_they_call_for(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a source with Object Lock (so, versions), a destination set to keep every version of a bucket that
    # keeps none, and one set to keep the latest of a versioned bucket without Object Lock
    src = bucket(s3_source, lock=True)
    all_unversioned, latest_versioned = bucket(s3_dest), bucket(s3_dest, versions=True)
    config = make_config((s3_source, src), [(s3_dest, all_unversioned), (s3_dest, latest_versioned)])
    text = Path(config.path).read_text().replace(f"bucket_name = {all_unversioned}\n",
                                                 f"bucket_name = {all_unversioned}\nversions = all\n")  # fmt: skip
    Path(config.path).write_text(text)

    # When doctor probes them
    reports = doctor(Config.from_file(config.path), capsys)

    # Then each bucket's versioning, Object Lock and ListObjectVersions are reported
    assert {"versioning on", "Object Lock on", "ListObjectVersions works"} <= set(reports["source"])
    assert {"versioning off", "Object Lock off", "ListObjectVersions works"} <= set(reports["dest1"])
    assert {"versioning on", "Object Lock off"} <= set(reports["dest2"])
    # And what the destinations' options should say: versions = all needs versioning; a versioned source could
    # be kept whole; locked versions cannot go to a bucket without Object Lock
    assert f"versions = latest # or enable versioning on {all_unversioned}" in reports["dest1"]
    assert "versions = all # to keep every version the source keeps, not the current one" in reports["dest2"]
    lock_advice = (f"object_lock = ignore # or enable Object Lock on {latest_versioned}: the source has Object Lock, "
                   "and its locked versions fail to copy to a bucket without it")  # fmt: skip
    assert lock_advice in reports["dest2"]
    # And nothing of versions is recommended for the source itself
    assert not any(line.startswith(("versions =", "object_lock =")) for line in reports["source"])
