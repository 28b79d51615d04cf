"""Multipart copies (s3s3.copy.parts) against two real S3 servers (moto): each plan's parts, how each is proven, aborts.

The engine's tests run on the transport production chooses: every store is
opened by `open_store`, which gives these SigV4 moto endpoints the lean HTTP
transport, so a multipart source is read in ranges streamed into UploadPart.
Faults, and the answers moto does not give (a HEAD ?partNumber= answered for
the part, part ETags that are not MD5s), are injected through
tests.stores.FaultyStore, at the store interface the engine sees. What a
store shows is learnt in its Facts; each `open_store` starts with none.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from s3s3.config import Config, MiB
from s3s3.copy import copy_key
from s3s3.outcome import Action
from s3s3.retry import RetryPolicy
from s3s3.store import (
    META_ETAG,
    META_MD5,
    META_MD5CHKSUM,
    META_MTIME,
    Fact,
    ObjectInfo,
    Store,
    list_objects,
    open_store,
    store_name,
)
from tests.helpers import data_of, md5_hex, multipart_md5, new_bucket
from tests.servers.base import Server
from tests.stores import (
    Call,
    FaultyStore,
    Proceed,
    answering,
    bucket_of,
    client_of,
    failing,
    first,
    flipped_body,
    flipped_upload,
    is_absent,
    mtime_of,
    pending_uploads,
    put_in_parts,
    read_back,
    refusal,
)

pytestmark = pytest.mark.timeout(60)

MULTIPART = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
HEADERS = {
    "ContentType": "image/jpeg",
    "CacheControl": "max-age=3600, public",
    "ContentDisposition": 'attachment; filename="rose.jpg"',
    "ContentEncoding": "identity",
    "ContentLanguage": "fr-BE",
    "Expires": datetime(2031, 5, 17, 8, 30, tzinfo=UTC),
}
USER_METADATA = {"photographer": "ada", "album": "garden-2024"}

OpenStores = Callable[..., tuple[Store, Store]]
# Whole-key retries at once, so failure tests stay fast.
FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.0)


# -- helpers -------------------------------------------------------------------------------------


def etag_of(response: dict[str, Any]) -> str:
    return str(response["ETag"]).strip('"')


def number(call: Call) -> int:
    """The part number of an upload_part call."""
    return int(call.args[2])


def ranged(call: Call) -> bool:
    """True for a GET of a range of the object, not of all of it."""
    return call.kwargs.get("byte_range") is not None


def part_sizes(size: int, parts: int) -> Callable[[Any], Any]:
    """A change to a HEAD's answer: what a store that answers HEAD ?partNumber= for the part says of part 1."""
    return lambda info: None if info is None else replace(info, size=size, parts_count=parts)


def whole_object(call: Call, proceed: Any) -> Any:
    """An action on HEAD: a store that ignores ?partNumber= and answers for the whole object (Ceph 16)."""
    return proceed(*call.args, **{k: v for k, v in call.kwargs.items() if k != "part_number"})


def streamed(call: Call) -> bool:
    """True for an upload_part streamed without a Content-MD5 (its part ETag is to prove it)."""
    return call.kwargs["md5"] is None


def asks_for_a_part(call: Call) -> bool:
    return bool(call.kwargs.get("part_number"))


def count_hashed_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, [bytes fed to MD5 anywhere in the process]: an observation, not a fault."""
    total = [0]
    real_md5 = hashlib.md5

    class Counted:
        def __init__(self, data: bytes = b"", **kwargs: Any) -> None:
            self.inner = real_md5(**kwargs)
            self.update(data)

        def update(self, data: Any) -> None:
            total[0] += len(data)
            self.inner.update(data)

        def digest(self) -> bytes:
            return self.inner.digest()

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(hashlib, "md5", Counted)
    return total


@pytest.fixture
def open_stores(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server) -> Iterator[OpenStores]:
    """A fresh source and destination bucket on the two servers, opened as production opens them, watched.

    Both are FaultyStores around what `open_store` gave, passing every call
    on until a test says otherwise, so that tests can count calls.
    """
    opened: list[Store] = []

    def make(dest_extra: dict[str, str] | None = None) -> tuple[FaultyStore, FaultyStore]:
        config = make_config(
            (s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))], dest_extra=dest_extra
        )
        source, dest = open_store(config.source), open_store(config.dests[0])
        opened.extend((source, dest))
        return FaultyStore(source), FaultyStore(dest)

    yield make
    for store in opened:
        store.close()


# -- parts read in order, each with its Content-MD5 ----------------------------------------------


def test_large_object_goes_in_three_parts_and_arrives_intact_with_its_metadata(open_stores: OpenStores) -> None:
    # Given a 12 MiB source object and a destination that splits at 5 MiB
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(12 * MiB + 12345, seed=1)
    client_of(source).put_object(Bucket=bucket_of(source), Key="video.mp4", Body=data, Metadata=USER_METADATA,
                                 **HEADERS)  # fmt: skip

    # When it is copied
    outcome = copy_key(source, dest, "video.mp4")

    # Then it went in three parts, each with its Content-MD5, the destination ETag is the MD5 of the part MD5s,
    # and the bytes match; the MD5 is recorded as s3s3 and as rclone record it (base64, md5chksum)
    assert outcome.action is Action.COPIED, outcome.error
    parts = dest.of("upload_part")
    assert sorted(number(p) for p in parts) == [1, 2, 3]
    assert all(p.kwargs["md5"] for p in parts)
    assert all(p.kwargs["md5"] == md5_hex(p.args[3]) for p in parts)
    body, response = read_back(dest, "video.mp4")
    assert etag_of(response) == multipart_md5(data, 5 * MiB) == outcome.dest_etag
    assert md5_hex(body) == md5_hex(data)
    for header, value in HEADERS.items():
        assert response[header] == value, header
    assert response["Metadata"] == {
        **USER_METADATA, META_MD5: md5_hex(data), META_ETAG: md5_hex(data), META_MTIME: mtime_of(source, "video.mp4"),
        META_MD5CHKSUM: base64.b64encode(hashlib.md5(data).digest()).decode(),
    }
    assert pending_uploads(dest) == []

    # And a second copy recognises the multipart object by its recorded MD5 and skips it
    assert copy_key(source, dest, "video.mp4").action is Action.SKIPPED


def drops_tags(call: Call, proceed: Any) -> Any:
    """An action on create_upload: a store that takes tags with CreateMultipartUpload and keeps none (Ceph 16)."""
    key, attrs = call.args
    return proceed(key, replace(attrs, tagging=None))


def test_the_tags_of_an_object_copied_in_parts_are_set_once_the_upload_is_complete(open_stores: OpenStores) -> None:
    # Given a tagged 12 MiB source object, and a destination that drops the tags a multipart upload begins with
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(12 * MiB, seed=7)
    client_of(source).put_object(Bucket=bucket_of(source), Key="tagged.bin", Body=data, Tagging="team=ops&tier=gold")
    dest.on("create_upload", drops_tags)

    # When it is copied
    outcome = copy_key(source, dest, "tagged.bin")

    # Then it went in parts, and its tags were set after the upload completed: the copy holds them
    assert outcome.action is Action.COPIED, outcome.error
    assert [c.args[1] for c in dest.of("put_tagging")] == ["team=ops&tier=gold"]
    tags = client_of(dest).get_object_tagging(Bucket=bucket_of(dest), Key="tagged.bin")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "ops", "tier": "gold"}
    assert md5_hex(read_back(dest, "tagged.bin")[0]) == md5_hex(data)


def test_corrupt_read_of_a_multipart_object_is_aborted_leaving_no_object_and_no_upload(
    open_stores: OpenStores,
) -> None:
    # Given a 12 MiB source object whose reads come back corrupt, and a multipart destination
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(12 * MiB, seed=6)
    client_of(source).put_object(Bucket=bucket_of(source), Key="flip-big.bin", Body=data)
    source.on("get", flipped_body())

    # When the key is copied
    outcome = copy_key(source, dest, "flip-big.bin", retry=FAST_RETRY)

    # Then every attempt was aborted: no object and no pending multipart upload remain
    assert outcome.action is Action.FAILED
    assert f"the source says {md5_hex(data)}" in (outcome.error or "")
    assert len(dest.of("abort_upload")) == FAST_RETRY.attempts
    assert is_absent(dest, "flip-big.bin")
    assert pending_uploads(dest) == []


def test_failed_part_aborts_the_multipart_upload_leaving_nothing(open_stores: OpenStores) -> None:
    # Given a multipart destination that refuses the second part
    source, dest = open_stores(dest_extra=MULTIPART)
    client_of(source).put_object(Bucket=bucket_of(source), Key="refused.bin", Body=data_of(12 * MiB, seed=8))
    dest.on("upload_part", failing(refusal("UploadPart", "AccessDenied", 403), when=lambda c: number(c) == 2))

    # When the key is copied
    outcome = copy_key(source, dest, "refused.bin", retry=FAST_RETRY)

    # Then it fails at once with the store's word, and the upload was aborted: no object, no pending upload
    assert outcome.action is Action.FAILED
    assert "AccessDenied" in (outcome.error or "")
    assert outcome.attempts == 1
    assert len(dest.of("abort_upload")) == 1
    assert is_absent(dest, "refused.bin")
    assert pending_uploads(dest) == []


def test_a_part_refused_for_now_is_sent_again_as_a_part_in_the_same_upload(open_stores: OpenStores) -> None:
    # Given a multipart destination whose second part fails once with a 500
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(12 * MiB, seed=9)
    client_of(source).put_object(Bucket=bucket_of(source), Key="flaky.bin", Body=data)
    once_on_part_two = first(where=lambda c: number(c) == 2)
    dest.on("upload_part", failing(refusal("UploadPart", "InternalError", 500), when=once_on_part_two))

    # When the key is copied
    outcome = copy_key(source, dest, "flaky.bin", retry=FAST_RETRY)

    # Then that part alone was sent again, in the same upload, which landed intact and left nothing behind
    assert outcome.action is Action.COPIED, outcome.error
    assert outcome.attempts == 1
    assert sorted(number(p) for p in dest.of("upload_part")) == [1, 2, 2, 3]
    assert len(dest.of("create_upload")) == 1
    assert dest.of("abort_upload") == []
    body, response = read_back(dest, "flaky.bin")
    assert body == data
    assert etag_of(response) == multipart_md5(data, 5 * MiB)
    assert pending_uploads(dest) == []


# -- parts streamed from ranges, each proven by its part ETag ------------------------------------


def test_a_multipart_source_is_streamed_in_ranges_and_lands_intact(open_stores: OpenStores) -> None:
    # Given a source object uploaded in parts (no MD5 from the store), at a store that answers a HEAD of
    # part 1 for the whole object (as Ceph 16 does), and a multipart destination
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(12 * MiB + 777, seed=21)
    source_etag = put_in_parts(source, "big/parts.bin", data, part=6 * MiB)
    source.on("head", whole_object)

    # When it is copied
    outcome = copy_key(source, dest, "big/parts.bin")

    # Then its three 5 MiB ranges were read and streamed as parts (no Content-MD5: the part ETags prove them),
    # and the bytes, ETag and record landed
    assert outcome.action is Action.COPIED, outcome.error
    parts = dest.of("upload_part")
    assert sorted(number(p) for p in parts) == [1, 2, 3]
    assert all(streamed(p) and not isinstance(p.args[3], bytes) for p in parts)
    assert sorted(c.kwargs["byte_range"] for c in source.of("get") if ranged(c)) == [
        (0, 5 * MiB - 1), (5 * MiB, 10 * MiB - 1), (10 * MiB, len(data) - 1),
    ]  # fmt: skip
    body, response = read_back(dest, "big/parts.bin")
    assert md5_hex(body) == md5_hex(data)
    assert etag_of(response) == multipart_md5(data, 5 * MiB) == outcome.dest_etag
    assert response["Metadata"] == {
        META_ETAG: source_etag, META_MTIME: mtime_of(source, "big/parts.bin"),
    }
    assert pending_uploads(dest) == []
    # And such a store is known for it and not asked again
    assert source.facts.knows(Fact.NO_PART_NUMBER)
    put_in_parts(source, "big/parts.bin", data_of(11 * MiB, seed=20))
    assert copy_key(source, dest, "big/parts.bin").action is Action.COPIED
    assert len([c for c in source.of("head") if asks_for_a_part(c)]) == 1


def test_a_part_that_reaches_the_store_with_other_bytes_is_caught_by_its_etag_and_sent_again(
    open_stores: OpenStores,
) -> None:
    # Given a multipart source at a store that answers no part HEADs (so it is read in ranges, each hashed),
    # and a byte flipped on the wire in the first part streamed
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(11 * MiB, seed=22)
    put_in_parts(source, "flip/part.bin", data)
    source.on("head", whole_object)
    dest.on("upload_part", flipped_upload(when=first()))

    # When it is copied
    outcome = copy_key(source, dest, "flip/part.bin", retry=FAST_RETRY)

    # Then the store's part ETag exposed it, that part alone was sent again (not the whole key),
    # and the bytes that landed are the source's
    assert outcome.action is Action.COPIED, outcome.error
    assert outcome.attempts == 1
    sent = [number(p) for p in dest.of("upload_part")]
    assert len(sent) == 4 and sorted(set(sent)) == [1, 2, 3]
    assert sent.count(sent[0]) == 2
    assert len(dest.of("create_upload")) == 1
    assert read_back(dest, "flip/part.bin")[0] == data
    assert pending_uploads(dest) == []


def test_parts_that_always_arrive_corrupt_fail_the_key_leaving_no_object_and_no_upload(
    open_stores: OpenStores,
) -> None:
    # Given a multipart source, and a destination every part of which arrives with a byte flipped
    source, dest = open_stores(dest_extra=MULTIPART)
    put_in_parts(source, "flip/always.bin", data_of(11 * MiB, seed=23))
    dest.on("upload_part", flipped_upload())

    # When it is copied
    outcome = copy_key(source, dest, "flip/always.bin", retry=FAST_RETRY)

    # Then the key fails saying why, and neither an object nor an upload is left
    assert outcome.action is Action.FAILED
    assert "store says" in (outcome.error or "")
    assert is_absent(dest, "flip/always.bin")
    assert pending_uploads(dest) == []


def test_a_source_that_changes_during_the_copy_is_read_again_whole(open_stores: OpenStores) -> None:
    # Given a multipart source that is overwritten just before its first range is read
    source, dest = open_stores(dest_extra=MULTIPART)
    put_in_parts(source, "moving.bin", data_of(11 * MiB, seed=24))
    newer = data_of(10 * MiB + 5, seed=25)
    overwrite = first(where=ranged)

    def overwritten_first(call: Call, proceed: Proceed) -> Any:
        if overwrite(call):
            put_in_parts(source, "moving.bin", newer)
        return proceed(*call.args, **call.kwargs)

    source.on("get", overwritten_first)

    # When it is copied
    outcome = copy_key(source, dest, "moving.bin", retry=FAST_RETRY)

    # Then no part of the old version was mixed with the new: the new version landed whole
    assert outcome.action is Action.COPIED, outcome.error
    assert outcome.attempts == 2
    assert read_back(dest, "moving.bin")[0] == newer
    assert pending_uploads(dest) == []


def test_a_store_whose_part_etags_are_not_md5s_is_learnt_and_the_object_sent_again_in_whole_parts_with_content_md5(
    open_stores: OpenStores, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a destination whose streamed part answers carry an ETag that is not an MD5 (as with SSE-KMS)
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(11 * MiB, seed=26)
    put_in_parts(source, "opaque.bin", data)
    dest.on("upload_part", answering(lambda etag: "not-an-md5", when=streamed))

    # When it is copied
    with caplog.at_level(logging.WARNING, logger="s3s3"):
        outcome = copy_key(source, dest, "opaque.bin")

    # Then the store is known for it, the streamed upload was aborted, and the object was sent again,
    # every part whole with its Content-MD5, in a second upload; the copy is intact
    assert outcome.action is Action.COPIED, outcome.error
    assert outcome.attempts == 1
    assert dest.facts.knows(Fact.PART_ETAGS_NOT_MD5)
    assert "gives part ETags that are not MD5s" in caplog.text
    assert len(dest.of("create_upload")) == 2
    assert len(dest.of("abort_upload")) == 1
    with_md5 = [p for p in dest.of("upload_part") if not streamed(p)]
    assert len(with_md5) == 3
    assert all(p.kwargs["md5"] == md5_hex(p.args[3]) for p in with_md5)
    body, response = read_back(dest, "opaque.bin")
    assert body == data
    assert etag_of(response) == multipart_md5(data, 5 * MiB)
    assert pending_uploads(dest) == []


# -- multipart sources copied part for part: no hashing, the ETags must add up ---------------------


def test_a_multipart_source_is_copied_part_for_part_and_keeps_its_etag(
    open_stores: OpenStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a source uploaded in 6 MiB parts, whose store says so (HEAD ?partNumber=1 answered for the part),
    # and a destination that splits at 5 MiB
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(13 * MiB + 99, seed=41)
    source_etag = put_in_parts(source, "aligned.bin", data, part=6 * MiB)
    source.on("head", answering(part_sizes(6 * MiB, 3), when=asks_for_a_part))
    hashed = count_hashed_bytes(monkeypatch)

    # When it is copied
    outcome = copy_key(source, dest, "aligned.bin")

    # Then it went in the source's own three parts, unhashed, and its ETag is the source's
    assert outcome.action is Action.COPIED, outcome.error
    assert hashed[0] < 1024  # the part ETags were hashed together; no byte of the object was
    assert sorted(c.kwargs["length"] for c in dest.of("upload_part")) == [len(data) - 12 * MiB, 6 * MiB, 6 * MiB]
    body, response = read_back(dest, "aligned.bin")
    assert etag_of(response) == source_etag == multipart_md5(data, 6 * MiB) == outcome.dest_etag
    assert md5_hex(body) == md5_hex(data)
    assert response["Metadata"] == {
        META_ETAG: source_etag, META_MTIME: mtime_of(source, "aligned.bin"),
    }
    assert pending_uploads(dest) == []
    assert not source.facts.knows(Fact.NO_PART_NUMBER)


def test_part_for_part_etags_that_do_not_add_up_are_aborted_and_the_copy_sent_again_hashed(
    open_stores: OpenStores, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a part-for-part copy whose first part reaches the store with a byte flipped
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(12 * MiB, seed=42)
    source_etag = put_in_parts(source, "unaligned.bin", data, part=6 * MiB)
    source.on("head", answering(part_sizes(6 * MiB, 2), when=asks_for_a_part))
    dest.on("upload_part", flipped_upload(when=first()))

    # When it is copied
    with caplog.at_level(logging.WARNING, logger="s3s3"):
        outcome = copy_key(source, dest, "unaligned.bin")

    # Then the ETags did not make the source's, that upload was aborted, and the copy went again in hashed ranges
    assert outcome.action is Action.COPIED, outcome.error
    assert len(dest.of("abort_upload")) == 1
    assert len(dest.of("upload_part")) == 2 + 3  # two parts of 6 MiB, then three of 5 MiB
    assert f"not the source's {source_etag}" in caplog.text
    assert read_back(dest, "unaligned.bin")[0] == data
    assert pending_uploads(dest) == []
    # And the pair is not tried part for part again: the source knows its parts do not add up at this destination
    assert source.facts.knows(Fact.UNALIGNED, store_name(dest.endpoint))
    assert len([c for c in source.of("head") if asks_for_a_part(c)]) == 1


# -- what a listing says decides how the source is opened ----------------------------------------


def test_a_listed_multipart_source_is_read_only_in_ranges_after_a_head(open_stores: OpenStores) -> None:
    # Given a multipart source, as a bucket listing shows it
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(11 * MiB, seed=51)
    put_in_parts(source, "listed.bin", data)
    (listed,) = list_objects(source)

    # When it is copied with what the listing said
    outcome = copy_key(source, dest, "listed.bin", check_dest=False, listed=listed)

    # Then it was opened with a HEAD, and no GET of the whole object was started (and dropped):
    # the parts read their ranges
    assert outcome.action is Action.COPIED, outcome.error
    assert [c.key for c in source.of("head") if not asks_for_a_part(c)] == ["listed.bin"]
    assert [c for c in source.of("get") if not ranged(c)] == []
    assert len([c for c in source.of("get") if ranged(c)]) == 3
    assert read_back(dest, "listed.bin")[0] == data


def test_a_listed_source_that_carries_its_md5_is_read_in_order_after_all(open_stores: OpenStores) -> None:
    # Given a multipart source carrying s3s3-md5 (a copy of a copy), so its whole MD5 is checked
    source, dest = open_stores(dest_extra=MULTIPART)
    data = data_of(11 * MiB, seed=52)
    put_in_parts(source, "carried.bin", data, part=6 * MiB, metadata={META_MD5: md5_hex(data)})
    (listed,) = list_objects(source)
    assert isinstance(listed, ObjectInfo) and listed.md5 is None  # a listing carries no metadata

    # When it is copied with what the listing said
    outcome = copy_key(source, dest, "carried.bin", check_dest=False, listed=listed)

    # Then it was read in order and hashed whole: the copy carries the MD5, checked against the recorded one
    assert outcome.action is Action.COPIED, outcome.error
    assert outcome.md5 == md5_hex(data)
    assert [c for c in source.of("get") if ranged(c)] == []
    body, response = read_back(dest, "carried.bin")
    assert body == data
    assert response["Metadata"][META_MD5] == md5_hex(data)
