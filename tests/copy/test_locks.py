"""What a copy writes of its source version's Object Lock, and when it refuses (s3s3.copy.locks, s3s3.copy.job)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from s3s3.config import Endpoint, ObjectLock, Versions
from s3s3.copy.job import attributes
from s3s3.copy.locks import check_destination, describe, holds
from s3s3.errors import CopyError
from s3s3.store import META_VERSION, Lock, ObjectInfo, Store
from s3s3.store.facts import Fact, Facts

LOCK = Lock("COMPLIANCE", "2030-01-02T03:04:05.000Z", legal_hold=True)
INFO = ObjectInfo("k", 1, "0" * 32, metadata={}, version_id="v-1", lock=LOCK)


class Dest:
    """A destination whose bucket's Object Lock is known from its facts (no request is made)."""

    def __init__(self, *, lock: bool, **options: object) -> None:
        self.endpoint = replace(Endpoint(name="dest1", bucket="backup"), **options)  # type: ignore[arg-type]
        self.facts = Facts("memory")
        self.facts.learn(Fact.OBJECT_LOCK if lock else Fact.NO_OBJECT_LOCK, "backup", shared=False)
        self.label = "dest1:backup"


def dest(*, lock: bool = True, **options: object) -> Store:
    return Dest(lock=lock, **options)  # type: ignore[return-value]


def test_a_copy_is_written_with_the_source_versions_lock_unless_ignored() -> None:
    assert attributes(dest(), INFO, None).lock == LOCK
    assert attributes(dest(object_lock=ObjectLock.IGNORE), INFO, None).lock is None


def test_with_versions_all_a_copy_names_its_source_version_and_with_latest_it_does_not() -> None:
    assert attributes(dest(versions=Versions.ALL), INFO, None).metadata[META_VERSION] == "v-1"
    assert META_VERSION not in attributes(dest(), INFO, None).metadata


def test_a_locked_version_bound_for_a_bucket_without_object_lock_is_refused_naming_the_option() -> None:
    with pytest.raises(CopyError) as refused:
        check_destination(dest(lock=False), "k", INFO)
    assert str(refused.value) == (
        "'k': dest1:backup has no Object Lock, and the source version has retention (COMPLIANCE until "
        "2030-01-02T03:04:05.000Z) and a legal hold: enable Object Lock on backup or set object_lock = ignore "
        "in [dest1]"
    )
    # Not where it would carry none, nor where the bucket has Object Lock
    check_destination(dest(lock=False, object_lock=ObjectLock.IGNORE), "k", INFO)
    check_destination(dest(lock=False), "k", replace(INFO, lock=None))
    check_destination(dest(lock=True), "k", INFO)


def test_a_copy_holds_its_lock_where_it_has_at_least_what_was_sent() -> None:
    assert holds(LOCK, LOCK)
    assert holds(LOCK, Lock(legal_hold=True))  # a bucket's default retention may add one
    assert not holds(None, LOCK)
    assert not holds(Lock("GOVERNANCE", LOCK.retain_until, legal_hold=True), LOCK)
    assert describe(Lock(legal_hold=True)) == "a legal hold"
