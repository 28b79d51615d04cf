"""The audit engine (s3s3.audit.audit) on two moto servers, faults injected through the store interface."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from s3s3.audit import AuditOptions, Evidence, Report, Summary, Verdict, audit
from s3s3.config import Config
from s3s3.copy.limits import Limits
from s3s3.errors import EXIT_FAILED, EXIT_OK
from s3s3.store import META_MD5CHKSUM, ObjectInfo, Page, Store, b64_md5, open_store
from tests.audit.test_fixity import CountingBandwidth
from tests.helpers import data_of, md5_hex, new_bucket
from tests.servers.base import Server
from tests.stores import FaultyStore, answering, bucket_of, client_of, failing, first, refusal

pytestmark = pytest.mark.timeout(60)

Pair = Callable[[], tuple[Store, Store]]
Audited = Callable[..., tuple[Summary, dict[str, tuple[Verdict, Evidence]]]]


@pytest.fixture
def pair(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server) -> Iterator[Pair]:
    """A new source and destination bucket, each holding the same three keys."""
    opened: list[Store] = []

    def make() -> tuple[Store, Store]:
        config = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))])
        source, dest = open_store(config.source), open_store(config.dests[0])
        for store in (source, dest):
            for key in ("a", "b", "c"):
                client_of(store).put_object(Bucket=bucket_of(store), Key=key, Body=key.encode() * 1000)
        opened.extend((source, dest))
        return source, dest

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def audited(tmp_path: Path) -> Audited:
    """Audit a pair into a report file: (the summary, each key's verdict and evidence)."""

    def run(source: Store, dest: Store, **options: Any) -> tuple[Summary, dict[str, tuple[Verdict, Evidence]]]:
        path = tmp_path / "audit.jsonl"
        summary = audit(source, [dest], Report(str(path)), options=AuditOptions(**options))
        lines = [json.loads(line) for line in path.read_text().splitlines()[:-1]]
        return summary, {line["key"]: (Verdict(line["verdict"]), Evidence(line["evidence"])) for line in lines}

    return run


def test_a_head_that_fails_makes_its_key_an_error_and_the_others_are_still_decided(
    pair: Pair, audited: Audited
) -> None:
    # Given a copy the listings cannot decide (other bytes of the same size) and a destination refusing HEADs
    source, plain = pair()
    client_of(plain).put_object(Bucket=bucket_of(plain), Key="b", Body=b"x" * 1000)
    dest = FaultyStore(plain).on("head", failing(refusal("HeadObject", "AccessDenied", 403)))

    # When it is audited
    summary, entries = audited(source, dest)

    # Then that key is an error with no evidence, the others equal, and the audit exits 1
    assert entries == {"a": (Verdict.EQUAL, Evidence.ETAG_MD5), "b": (Verdict.ERROR, Evidence.NONE),
                       "c": (Verdict.EQUAL, Evidence.ETAG_MD5)}  # fmt: skip
    assert summary.exit_code() == EXIT_FAILED


def test_md5_etags_that_differ_are_asked_about_before_a_copy_is_said_to_differ(pair: Pair, audited: Audited) -> None:
    # Given a source object its store encrypts with KMS: its listing and HEAD give an ETag that is no MD5, and
    # its md5chksum gives the MD5 (the copy's ETag)
    plain, dest = pair()
    kms_etag = md5_hex(b"what KMS makes of it")

    def kms(info: ObjectInfo) -> ObjectInfo:
        return replace(info, etag=kms_etag, encryption="aws:kms", metadata={META_MD5CHKSUM: b64_md5(info.etag)})

    source = FaultyStore(plain)
    source.on("list_page", answering(lambda page: Page([replace(o, etag=kms_etag) if o.key == "b" else o
                                                        for o in page.objects], page.prefixes, page.truncated,
                                                       page.token)))  # fmt: skip
    source.on("head", answering(lambda info: kms(info) if info is not None and info.key == "b" else info))

    # When it is audited
    summary, entries = audited(source, dest)

    # Then the copy's HEAD, then the source's, show it is the same: proven by the md5chksum, not "differs"
    assert entries["b"] == (Verdict.EQUAL, Evidence.MD5CHKSUM)
    assert summary.requests["head"] == 2 and summary.exit_code() == EXIT_OK


def test_a_copy_deleted_after_the_listing_is_missing(pair: Pair, audited: Audited) -> None:
    # Given a destination whose copy of "b" is gone when it is HEADed (and differs in its listing)
    source, plain = pair()
    client_of(plain).put_object(Bucket=bucket_of(plain), Key="b", Body=b"y" * 1000)
    dest = FaultyStore(plain).on("head", answering(lambda _: None))

    # Then it is missing
    assert audited(source, dest)[1]["b"] == (Verdict.MISSING, Evidence.LISTING)


def test_read_backs_take_their_bytes_from_the_process_bandwidth_and_one_cut_short_is_read_again(
    pair: Pair, audited: Audited
) -> None:
    # Given a source whose first GET fails for now, and a bandwidth that counts
    plain, dest = pair()
    source = FaultyStore(plain).on("get", failing(refusal("GetObject", "SlowDown", 503), when=first(1)))
    bandwidth = CountingBandwidth()

    # When every key is read back
    summary, entries = audited(source, dest, read_fraction=1.0, limits=Limits(bandwidth=bandwidth))

    # Then every key is proven by its read, every byte read was taken from the bandwidth, the failed GET again
    assert entries == {key: (Verdict.EQUAL, Evidence.READ) for key in "abc"}
    assert summary.bytes_read == sum(bandwidth.taken) == 6 * 1000
    assert summary.requests["get"] == 6 + 1


def test_a_stopped_audit_starts_nothing_more_and_says_it_was_interrupted(pair: Pair) -> None:
    source, dest = pair()
    stop = threading.Event()
    stop.set()

    summary = audit(source, [dest], Report(), stop=stop)

    assert (summary.keys, summary.interrupted, summary.exit_code()) == (0, True, EXIT_FAILED)


def test_a_big_object_read_back_is_hashed_whole(pair: Pair, audited: Audited) -> None:
    # Given an object of 3 MiB on both sides, the destination's with one byte changed
    source, dest = pair()
    data = data_of(3 * 1024 * 1024, seed=5)
    client_of(source).put_object(Bucket=bucket_of(source), Key="big", Body=data)
    client_of(dest).put_object(Bucket=bucket_of(dest), Key="big", Body=data[:-1] + b"!")

    # Then a read-back finds it differs
    assert audited(source, dest, read_fraction=1.0)[1]["big"] == (Verdict.DIFFERS, Evidence.READ)
