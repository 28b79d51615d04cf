"""The contract of the Store interface for versions and Object Lock, held by both transports on every store.

As tests/store/test_contract.py: each test runs on the lean transport and on
boto3, against moto (`make test`) and Ceph RGW, Swift and SeaweedFS (`make
compat`). A version's ID is what the store's own answers gave (a HEAD after
each PUT); what landed is read back through the store under test and, for
Object Lock, with a plain boto3 client too. Where a store does not do what
S3 does, it is held to what it was measured doing (the tables below).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from s3s3.errors import NotFound, StoreError
from s3s3.store.base import Attributes, Lock, Store, Version, Versioning, list_versions
from tests.helpers import md5_hex, next_number
from tests.servers.base import Server
from tests.stores import Opener, client_of

pytestmark = pytest.mark.timeout(120)

# Whether the store keeps versions once a bucket's versioning is Enabled. Swift 2.30's s3api answers
# PutBucketVersioning 501 NotImplemented (as tests/servers/swift.py runs it: no allow_object_versioning).
KEEPS_VERSIONS = {"moto": True, "ceph": True, "swift": False, "seaweedfs": True}
# Whether a bucket can be made with Object Lock (and then answers GetObjectLockConfiguration with it on).
# Swift 2.30 makes the bucket and ignores x-amz-bucket-object-lock-enabled.
OBJECT_LOCK = {"moto": True, "ceph": True, "swift": False, "seaweedfs": True}
# Whether the retention and legal hold sent with CreateMultipartUpload are kept by the object it completes:
# moto 5.2 and Ceph 16 keep none of them (AWS and SeaweedFS do), so the copy engine sets them afterwards
# (Store.put_lock).
UPLOAD_KEEPS_LOCK = {"moto": False, "ceph": False, "swift": False, "seaweedfs": True}
# The x-amz-version-id a DeleteObject of one version answers: that version's ID (as AWS), or none.
DELETE_OF_A_VERSION_ANSWERS_ITS_ID = {"moto": True, "ceph": True, "swift": True, "seaweedfs": True}

ODD_KEYS = ["with space.txt", "ünïcødé/日本語.txt", "plus+sign=1.txt", "100% sure.txt", "a&b<c>.txt"]


def bucket(server: Server, *, versions: str | None = "Enabled", lock: bool = False) -> str:
    """A new bucket, its versioning Enabled (or Suspended after Enabled; or never, with None), with Object Lock."""
    name = f"versions-{next_number()}-{uuid.uuid4().hex[:8]}"
    client = server.client()
    if lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=name)
    if versions is not None:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if versions == "Suspended":
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    return name


@pytest.fixture
def versioned(open_on: Opener, server: Server, server_name: str) -> Store:
    """A Store on a bucket of its own with versioning on."""
    if not KEEPS_VERSIONS[server_name]:
        pytest.skip(f"{server_name} keeps no versions")
    return open_on(bucket(server))


def put(store: Store, key: str, data: bytes, attrs: Attributes | None = None) -> str:
    """Put `data` through the store under test, with its Content-MD5; return the version ID a HEAD gives it."""
    store.put(key, data, length=len(data), md5=md5_hex(data), attrs=attrs or Attributes())
    head = store.head(key)
    assert head is not None and head.version_id, f"no version ID for {key!r}"
    return head.version_id


def pages(store: Store, prefix: str = "", max_keys: int = 1000) -> Iterator[list[Version]]:
    """Each page of ListObjectVersions, `max_keys` entries at most, following the markers each page names."""
    key_marker = version_marker = ""
    while True:
        page = store.list_versions_page(prefix, key_marker=key_marker, version_marker=version_marker,
                                        max_keys=max_keys)  # fmt: skip
        yield page.versions
        if not page.truncated:
            return
        key_marker, version_marker = page.key_marker, page.version_marker


def entries(listed: list[Version]) -> list[tuple[str, str, bool, bool]]:
    """(key, version ID, latest, delete marker) of each entry."""
    return [(v.key, v.version_id, v.latest, v.delete_marker) for v in listed]


def until(days: int = 1) -> str:
    """A retain-until date `days` ahead, as AWS writes one."""
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- versions and delete markers ------------------------------------------------------------------


def test_a_key_of_three_versions_and_a_delete_marker_lists_them_newest_first_under_the_ids_written(
    versioned: Store,
) -> None:
    # Given a key written three times, then deleted, and a key after it written once
    store = versioned
    bodies = [b"first", b"second version", b"third, the last"]
    ids = [put(store, "doc", body) for body in bodies]
    marker = store.delete("doc")
    other = put(store, "e", b"other key")

    # Then the delete answered its delete marker's ID, and every write its own ID
    assert marker is not None and len({*ids, marker, other}) == 5

    # And the listing gives the marker (current), then each version newest first, then the next key
    listed = list(list_versions(store))
    assert entries(listed) == [
        ("doc", marker, True, True),
        ("doc", ids[2], False, False),
        ("doc", ids[1], False, False),
        ("doc", ids[0], False, False),
        ("e", other, True, False),
    ]
    assert [(v.size, v.etag) for v in listed[1:4]] == [(len(b), md5_hex(b)) for b in reversed(bodies)]
    assert all(v.last_modified is not None for v in listed)

    # And the key itself is gone: a HEAD says None, a GET NotFound
    assert store.head("doc") is None
    with pytest.raises(NotFound):
        store.get("doc")


def test_versions_page_by_two_across_keys_and_within_one_keys_versions(versioned: Store) -> None:
    # Given three keys: one of three versions, one of a version and a delete marker, one of one version
    store = versioned
    a = [put(store, "a", body) for body in (b"a1", b"a2", b"a3")]
    b = put(store, "b", b"b1")
    b_marker = store.delete("b")
    c = put(store, "c", b"c1")

    # When they are listed two entries a page
    listed = list(pages(store, max_keys=2))

    # Then each of three pages holds two, every entry comes once, in order, as one page gives them all
    assert [len(page) for page in listed] == [2, 2, 2]
    expected = [("a", a[2], True, False), ("a", a[1], False, False), ("a", a[0], False, False),
                ("b", b_marker, True, True), ("b", b, False, False), ("c", c, True, False)]  # fmt: skip
    assert [e for page in listed for e in entries(page)] == expected
    assert entries(list(list_versions(store))) == expected

    # And the first page names where the next starts: within the key a, after its second version
    first = store.list_versions_page("", max_keys=2)
    assert (first.truncated, first.key_marker, first.version_marker) == (True, "a", a[1])


def test_a_get_and_a_head_of_a_version_id_answer_that_versions_bytes_and_metadata(versioned: Store) -> None:
    # Given a key written three times, each with its own bytes and metadata
    store = versioned
    bodies = {n: f"version {n} ".encode() * (n * 100) for n in (1, 2, 3)}
    ids = {n: put(store, "doc", body, Attributes(metadata={"n": str(n)})) for n, body in bodies.items()}

    # When each version is headed and got by its ID
    for n, body in bodies.items():
        head = store.head("doc", version_id=ids[n])
        info, got = store.get("doc", version_id=ids[n])

        # Then it is that version: its bytes, size, ETag, metadata and ID
        assert got.read() == body, n
        got.close()
        for answer in (head, info):
            assert answer is not None
            assert (answer.size, answer.etag, answer.metadata, answer.version_id) == (
                len(body), md5_hex(body), {"n": str(n)}, ids[n],
            ), n  # fmt: skip

    # And without an ID, the key is its newest version
    current = store.head("doc")
    assert current is not None and (current.version_id, current.metadata) == (ids[3], {"n": "3"})


def test_each_version_answers_its_own_tag_set(versioned: Store) -> None:
    # Given a key written twice, each version with tags of its own
    store = versioned
    first = put(store, "tagged", b"one", Attributes(tagging="era=first"))
    second = put(store, "tagged", b"two", Attributes(tagging="era=second&n=2"))

    # Then each version's tag set is its own, and the key's is its newest version's
    assert store.get_tagging("tagged", version_id=first) == "era=first"
    assert sorted(store.get_tagging("tagged", version_id=second).split("&")) == ["era=second", "n=2"]
    assert sorted(store.get_tagging("tagged").split("&")) == ["era=second", "n=2"]


def test_a_delete_markers_version_id_is_none_to_a_head_and_not_found_to_a_get(versioned: Store) -> None:
    # Given a key with a version under a delete marker
    store = versioned
    version = put(store, "doc", b"bytes")
    marker = store.delete("doc")
    assert marker is not None

    # When the delete marker's version is headed and got
    # Then it holds no object, as a missing key does: None, NotFound
    assert store.head("doc", version_id=marker) is None
    with pytest.raises(NotFound):
        store.get("doc", version_id=marker)

    # And the version under it is still there
    kept = store.head("doc", version_id=version)
    assert kept is not None and kept.etag == md5_hex(b"bytes")


def test_a_delete_of_a_version_id_removes_that_version_only(versioned: Store, server_name: str) -> None:
    # Given a key of three versions
    store = versioned
    ids = [put(store, "doc", body) for body in (b"v1", b"v2", b"v3")]

    # When the middle one is deleted by its ID
    answered = store.delete("doc", version_id=ids[1])

    # Then it is gone for good, and no delete marker was made; the others stay
    assert answered == (ids[1] if DELETE_OF_A_VERSION_ANSWERS_ITS_ID[server_name] else None)
    assert entries(list(list_versions(store))) == [("doc", ids[2], True, False), ("doc", ids[0], False, False)]
    assert store.head("doc", version_id=ids[1]) is None

    # And deleting a delete marker by its ID makes the version under it current again
    marker = store.delete("doc")
    assert marker is not None and store.head("doc") is None
    store.delete("doc", version_id=marker)
    current = store.head("doc")
    assert current is not None and (current.version_id, current.etag) == (ids[2], md5_hex(b"v3"))


def test_a_delete_where_the_bucket_keeps_no_versions_answers_no_version_id(store: Store) -> None:
    # Given a key in a bucket that never had versioning
    store.put("doc", b"x", length=1, md5=md5_hex(b"x"), attrs=Attributes())

    # When it is deleted
    # Then no version ID is answered, and the key is gone
    assert store.delete("doc") is None
    assert store.head("doc") is None


def test_odd_keys_list_back_exactly_in_version_listings_and_their_markers(versioned: Store) -> None:
    # Given keys with spaces, unicode, + % & < >, each of two versions
    store = versioned
    ids = {key: [put(store, key, f"{key} {n}".encode()) for n in (1, 2)] for key in ODD_KEYS}

    # When they are listed three entries a page (so that the markers name odd keys too)
    listed = [e for page in pages(store, max_keys=3) for e in entries(page)]

    # Then every key comes back exactly, in UTF-8 binary order, newest version first
    ordered = sorted(ODD_KEYS, key=lambda k: k.encode())
    assert listed == [e for k in ordered for e in ((k, ids[k][1], True, False), (k, ids[k][0], False, False))]
    # And a listing under one odd prefix gives that key alone
    assert [v.key for v in list_versions(store, "100% ")] == ["100% sure.txt"] * 2


# -- the bucket's versioning and Object Lock --------------------------------------------------------


@pytest.mark.parametrize("state", [None, "Enabled", "Suspended"])
def test_versioning_says_whether_the_bucket_keeps_versions(
    open_on: Opener, server: Server, server_name: str, state: str | None
) -> None:
    if state is not None and not KEEPS_VERSIONS[server_name]:
        # Given a store that keeps no versions: it refuses to turn them on, and its buckets say Off
        with pytest.raises(ClientError) as refused:
            bucket(server, versions=state)
        assert refused.value.response["Error"]["Code"] == "NotImplemented"
        assert open_on(bucket(server, versions=None)).versioning() is Versioning.OFF
        return
    # Given a bucket that never had versioning, has it on, or had it and suspended it
    store = open_on(bucket(server, versions=state))

    # Then GetBucketVersioning says so
    assert store.versioning() is {None: Versioning.OFF, "Enabled": Versioning.ENABLED,
                                  "Suspended": Versioning.SUSPENDED}[state]  # fmt: skip


def test_object_lock_is_on_only_for_a_bucket_made_with_it(open_on: Opener, server: Server, server_name: str) -> None:
    # Given a bucket without Object Lock
    # Then it says it has none (a store that knows nothing of Object Lock says the same)
    assert open_on(bucket(server, versions=None)).object_lock() is False
    if KEEPS_VERSIONS[server_name]:
        assert open_on(bucket(server)).object_lock() is False
    if not OBJECT_LOCK[server_name]:
        # (Swift 2.30 makes a bucket asked for with Object Lock, without it)
        assert open_on(bucket(server, versions=None, lock=True)).object_lock() is False
        return

    # And a bucket made with Object Lock says it has it, and keeps versions
    locked = open_on(bucket(server, versions=None, lock=True))
    assert locked.object_lock() is True
    assert locked.versioning() is Versioning.ENABLED


# -- Object Lock on what is written -----------------------------------------------------------------


@pytest.fixture
def locked(open_on: Opener, server: Server, server_name: str) -> Store:
    """A Store on a bucket of its own made with Object Lock."""
    if not OBJECT_LOCK[server_name]:
        pytest.skip(f"{server_name} has no Object Lock")
    return open_on(bucket(server, versions=None, lock=True))


def landed_lock(store: Store, key: str) -> tuple[str | None, datetime | None, str | None]:
    """The retention mode and date and the legal hold a plain client's HEAD reads."""
    head = client_of(store).head_object(Bucket=store.endpoint.bucket, Key=key)
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate"), head.get("ObjectLockLegalHoldStatus")


def parsed(when: str) -> datetime:
    return datetime.fromisoformat(when.replace("Z", "+00:00"))


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_a_put_carries_retention_and_legal_hold_that_head_and_get_answer(locked: Store, mode: str) -> None:
    # Given a retention and a legal hold
    lock = Lock(mode, until(), legal_hold=True)

    # When an object is put with them (and its Content-MD5, which Object Lock requires)
    version = put(locked, "held", b"kept for a day", Attributes(lock=lock))

    # Then a HEAD and a GET through the store answer them as they were sent, and a plain client reads them
    head = locked.head("held")
    info, body = locked.get("held", version_id=version)
    body.close()
    assert head is not None and (head.lock, info.lock) == (lock, lock)
    assert landed_lock(locked, "held") == (mode, parsed(lock.retain_until or ""), "ON")

    # And an object put without them has none
    put(locked, "free", b"no lock")
    free = locked.head("free")
    assert free is not None and free.lock is None


def test_a_multipart_upload_carries_retention_and_legal_hold_or_they_are_set_after_it(
    locked: Store, server_name: str
) -> None:
    # Given a retention and a legal hold sent with CreateMultipartUpload
    lock = Lock("GOVERNANCE", until(), legal_hold=True)
    upload = locked.create_upload("parts", Attributes(lock=lock))
    etag = locked.upload_part("parts", upload, 1, b"one part", length=8, md5=md5_hex(b"one part"))

    # When the upload is completed
    locked.complete_upload("parts", upload, [(1, etag)])

    # Then the object holds them where the store keeps them (moto keeps none)
    head = locked.head("parts")
    assert head is not None
    assert head.lock == (lock if UPLOAD_KEEPS_LOCK[server_name] else None)

    # And set on that version afterwards, they are there on every store
    locked.put_lock("parts", lock, version_id=head.version_id)
    again = locked.head("parts")
    assert again is not None and again.lock == lock
    assert landed_lock(locked, "parts") == ("GOVERNANCE", parsed(lock.retain_until or ""), "ON")


def test_a_legal_hold_alone_is_carried_and_answered_without_a_retention(locked: Store) -> None:
    # When an object is put under a legal hold only
    put(locked, "hold-only", b"held", Attributes(lock=Lock(legal_hold=True)))

    # Then it has the legal hold and no retention
    head = locked.head("hold-only")
    assert head is not None and head.lock == Lock(None, None, legal_hold=True)
    assert landed_lock(locked, "hold-only") == (None, None, "ON")


def test_a_version_under_retention_is_not_deleted(locked: Store) -> None:
    # Given a version under a retention
    version = put(locked, "retained", b"kept", Attributes(lock=Lock("GOVERNANCE", until())))

    # When it is deleted by its version ID (without bypassing governance)
    # Then the store refuses, and the version stays
    with pytest.raises(StoreError) as refused:
        locked.delete("retained", version_id=version)
    assert (refused.value.status, refused.value.code, refused.value.transient) == (403, "AccessDenied", False)
    assert locked.head("retained", version_id=version) is not None
