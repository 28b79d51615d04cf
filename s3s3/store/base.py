"""The store interface: every S3 operation s3s3 makes, and the values that cross it.

Two transports implement `Store` (s3s3.store.http, the lean path; and
s3s3.store.boto, boto3), and `s3s3.store.connect.open_store` decides which an
endpoint gets. Above this line nothing knows which transport it talks to:
errors arrive as s3s3.errors.StoreError and its subclasses, objects as
ObjectInfo, bodies as Body.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from s3s3.errors import BadDigest, NoSuchBucket, NotFound, PreconditionFailed, StoreError
from s3s3.retry import transient_answer

if TYPE_CHECKING:
    from s3s3.config import Endpoint
    from s3s3.store.facts import Facts
    from s3s3.store.throttle import Throttle

Buffer = bytes | bytearray | memoryview
# The standard headers a copy carries over, by their HTTP names.
CONTENT_HEADERS = (
    "Content-Type",
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Expires",
)
# User metadata s3s3 writes on every object it copies.
META_MD5 = "s3s3-md5"  # MD5 of the whole object, hex
META_ETAG = "s3s3-source-etag"  # the source ETag this copy was made from
META_MTIME = "mtime"  # the source's Last-Modified, Unix seconds with a fraction (rclone reads it too)
# rclone's record of the whole object's MD5, base64 (X-Amz-Meta-Md5chksum): where an object's ETag is not its MD5
# (uploaded in parts, or encrypted with KMS or a customer key), `rclone check` proves it by this.
META_MD5CHKSUM = "md5chksum"
META_VERSION = "s3s3-source-version-id"  # with versions = all: the source version this copy replays
# The full-object checksums S3 keeps (x-amz-checksum-<algorithm>), and the bytes of each digest.
CHECKSUM_BYTES = {"crc64nvme": 8, "crc32c": 4, "crc32": 4, "sha256": 32, "sha1": 20}
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


class Transport(StrEnum):
    """How a Store talks to its store (s3s3.store.connect decides which an endpoint gets)."""

    HTTP = "http"  # the lean path: signed HTTP requests (s3s3.store.http)
    BOTO3 = "boto3"  # a boto3 client (s3s3.store.boto)


@dataclass(frozen=True)
class Checksum:
    """A checksum a store keeps of an object (x-amz-checksum-<algorithm>), as it answers a HEAD or GET.

    A full-object checksum is of the object's bytes; a composite one (S3 marks
    it `-N`) is of its parts' checksums, and proves nothing about another
    object's bytes unless its parts are the same: the two are never compared.
    """

    algorithm: str  # crc32, crc32c, crc64nvme, sha1 or sha256
    value: str  # base64, as the header carries it (a composite one without its -N)
    full_object: bool = True

    @property
    def header(self) -> str:
        """The header that carries it: x-amz-checksum-<algorithm>."""
        return f"x-amz-checksum-{self.algorithm}"


class Versioning(StrEnum):
    """A bucket's versioning, as GetBucketVersioning answers it."""

    ENABLED = "Enabled"
    SUSPENDED = "Suspended"  # it was on: versions written then are kept, new writes replace the "null" version
    OFF = "Off"  # never turned on (S3 answers no Status)


@dataclass(frozen=True)
class Lock:
    """A version's Object Lock: its retention (mode and date) and its legal hold, as a HEAD or GET answers them."""

    mode: str | None = None  # GOVERNANCE or COMPLIANCE
    retain_until: str | None = None  # ISO 8601, as x-amz-object-lock-retain-until-date carries it
    legal_hold: bool = False

    def __bool__(self) -> bool:
        return bool(self.mode or self.legal_hold)

    def as_headers(self) -> dict[str, str]:
        """The headers of a PutObject or CreateMultipartUpload that set it."""
        headers = {}
        if self.mode and self.retain_until:
            headers["x-amz-object-lock-mode"] = self.mode
            headers["x-amz-object-lock-retain-until-date"] = self.retain_until
        if self.legal_hold:
            headers["x-amz-object-lock-legal-hold"] = "ON"
        return headers


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing, a HEAD or a GET says of one object."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None = None
    metadata: dict[str, str] | None = None  # None when it came from a listing
    headers: dict[str, str] = field(default_factory=dict)  # CONTENT_HEADERS it has, by HTTP name
    encryption: str | None = None  # x-amz-server-side-encryption: AES256, aws:kms; "SSE-C" for customer keys
    tag_count: int = 0  # x-amz-tagging-count
    parts_count: int | None = None  # x-amz-mp-parts-count, where a HEAD ?partNumber= was answered for a part
    checksum: Checksum | None = None  # where a HEAD or GET asked for it (checksums=True) and the store keeps one
    version_id: str | None = None  # x-amz-version-id, where the bucket keeps versions ("null": one written unversioned)
    lock: Lock | None = None  # its Object Lock, where it has any

    @property
    def etag_is_md5(self) -> bool:
        """True when the ETag is the object's MD5: one PUT, stored without SSE-KMS or SSE-C.

        AWS gives an object encrypted with KMS or a customer key an ETag that
        looks like an MD5 and is not one.
        """
        return is_md5(self.etag) and self.encryption not in ("aws:kms", "aws:kms:dsse", "SSE-C")

    @property
    def md5(self) -> str | None:
        """The object's MD5 where the store, s3s3 or rclone recorded one, else None."""
        if self.etag_is_md5:
            return self.etag
        metadata = self.metadata or {}
        recorded = metadata.get(META_MD5)
        if recorded and is_md5(recorded):
            return recorded
        return md5_from_b64(metadata.get(META_MD5CHKSUM))

    @property
    def full_checksum(self) -> Checksum | None:
        """The store's checksum of the object's bytes, where it keeps one (not a composite of its parts')."""
        return self.checksum if self.checksum is not None and self.checksum.full_object else None


@dataclass(frozen=True)
class Attributes:
    """What an object is written with, besides its bytes: headers, metadata, and how the store keeps it."""

    headers: Mapping[str, str] = field(default_factory=dict)  # CONTENT_HEADERS, by HTTP name
    metadata: Mapping[str, str] = field(default_factory=dict)
    storage_class: str | None = None
    tagging: str | None = None  # the tag set, URL-encoded as x-amz-tagging wants it
    encryption: str | None = None  # AES256 or aws:kms
    kms_key_id: str | None = None
    acl: str | None = None  # a canned ACL
    lock: Lock | None = None  # Object Lock retention and legal hold (the bucket must have Object Lock on)

    def as_headers(self) -> dict[str, str]:
        """These attributes as the HTTP headers of a PutObject or CreateMultipartUpload."""
        headers = dict(self.headers)
        if self.lock:
            headers.update(self.lock.as_headers())
        for name, value in self.metadata.items():
            headers[f"x-amz-meta-{name}"] = value
        for header, option in (
            ("x-amz-storage-class", self.storage_class),
            ("x-amz-tagging", self.tagging),
            ("x-amz-server-side-encryption", self.encryption),
            ("x-amz-server-side-encryption-aws-kms-key-id", self.kms_key_id),
            ("x-amz-acl", self.acl),
        ):
            if option:
                headers[header] = option
        return headers


@dataclass(frozen=True)
class Page:
    """One page of a listing: its objects (and common prefixes), and whether and how it goes on."""

    objects: list[ObjectInfo]
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False  # more follow
    token: str | None = None  # ListObjectsV2's continuation token (else the next page starts after the last key)


@dataclass(frozen=True)
class Version:
    """One entry of a key's history, as ListObjectVersions gives it: a version, or a delete marker."""

    key: str
    version_id: str  # "null" for what was written while versioning was off
    last_modified: datetime | None
    size: int = 0
    etag: str = ""
    latest: bool = False  # the key's current entry
    delete_marker: bool = False


@dataclass(frozen=True)
class VersionPage:
    """One page of ListObjectVersions: entries by key, each key's newest first; where the next page starts."""

    versions: list[Version]
    truncated: bool = False
    key_marker: str = ""  # NextKeyMarker
    version_marker: str = ""  # NextVersionIdMarker


@dataclass(frozen=True)
class Upload:
    """A multipart upload begun and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


class Body(Protocol):
    """An object's bytes as they arrive; a cut or a short read raises a transient StoreError."""

    def read(self, size: int = -1) -> bytes: ...

    def readinto(self, buffer: memoryview) -> int: ...

    def close(self) -> None:
        """Give up the rest of the body (and, half read, its connection)."""


class Store(Protocol):
    """One bucket of one S3-compatible store, and every operation s3s3 makes on it.

    Bodies given as bytes may be sent again by the transport when a request
    fails for now; bodies given as an iterable of buffers are streamed and
    tried once (the caller reads its source again). Errors are StoreErrors.
    """

    endpoint: Endpoint
    facts: Facts  # what s3s3 has learnt about this store (s3s3.store.facts)
    throttle: Throttle  # how fast it may be asked (s3s3.store.throttle)

    @property
    def label(self) -> str:
        """How logs name the bucket: section:bucket."""

    @property
    def transport(self) -> Transport:
        """The lean path or boto3."""

    def head(
        self, key: str, *, part_number: int | None = None, checksums: bool = False, version_id: str | None = None
    ) -> ObjectInfo | None:
        """The object (or, with `part_number`, that part of it); None when it does not exist.

        `checksums` asks for the checksum the store keeps (x-amz-checksum-mode: ENABLED);
        `version_id` for that version (a delete marker's is None, as a missing key's).
        """

    def get(
        self,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
        checksums: bool = False,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, Body]:
        """The object and its body (bytes `first`-`last` of it, with `byte_range`; of that version, with
        `version_id`); NotFound, PreconditionFailed."""

    def put(
        self,
        key: str,
        body: bytes | Iterable[Buffer],
        *,
        length: int,
        md5: str | None,
        attrs: Attributes,
        checksum: Checksum | None = None,
    ) -> str:
        """PutObject, with Content-MD5 when `md5` (hex) is given; return the ETag the store gave.

        With a full-object `checksum`, a store that checks it refuses other bytes (BadDigest) and keeps it.
        """

    def create_upload(self, key: str, attrs: Attributes) -> str:
        """CreateMultipartUpload; return the upload ID."""

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | Iterable[Buffer], *, length: int, md5: str | None
    ) -> str:
        """UploadPart, with Content-MD5 when `md5` is given; return the part's ETag."""

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> str:
        """CompleteMultipartUpload of (number, ETag) parts; the ETag the store answered ("" for none)."""

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def list_uploads(self, prefix: str) -> Iterator[Upload]:
        """Every multipart upload under `prefix` neither completed nor aborted."""

    def delete(self, key: str, *, version_id: str | None = None) -> str | None:
        """DeleteObject: in a versioned bucket, a delete marker, whose version ID is returned (None elsewhere).

        With `version_id`, that version is deleted for good (no marker); a
        version under Object Lock retention is refused (never bypassed).
        """

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        """DeleteObjects (at most 1000 keys); the keys it did not delete, with why."""

    def list_page(self, prefix: str, *, start_after: str = "", token: str | None = None, delimiter: str = "") -> Page:
        """One page of the listing under `prefix`, after `start_after` or continuing from `token`.

        ListObjectsV2, or ListObjects (V1) where the endpoint says `list_version = 1`.
        """

    def list_versions_page(
        self, prefix: str, *, key_marker: str = "", version_marker: str = "", max_keys: int = 1000
    ) -> VersionPage:
        """One page of ListObjectVersions under `prefix`, after the entry the two markers name."""

    def versioning(self) -> Versioning:
        """GetBucketVersioning: whether the bucket keeps versions."""

    def object_lock(self) -> bool:
        """GetObjectLockConfiguration: whether the bucket has Object Lock on (False where it has none)."""

    def put_lock(self, key: str, lock: Lock, *, version_id: str | None = None) -> None:
        """PutObjectRetention and PutObjectLegalHold: set a version's Object Lock after it was written.

        moto 5.2 keeps none of what CreateMultipartUpload carries; the copy
        engine sets it here once the upload is complete.
        """

    def copy_object(
        self, source_bucket: str, source_key: str, key: str, *, size: int, if_match: str | None, attrs: Attributes
    ) -> str:
        """Server-side copy within this store (in parts past 5 GiB), if the source still has ETag `if_match`."""

    def get_tagging(self, key: str, *, version_id: str | None = None) -> str:
        """The object's (or that version's) tag set, URL-encoded as x-amz-tagging wants it."""

    def put_tagging(self, key: str, tagging: str) -> None:
        """Set the object's tag set (URL-encoded, as x-amz-tagging): Ceph 16 drops the tags of a multipart upload."""

    def close(self) -> None:
        """Let go of connections."""


def list_objects(store: Store, prefix: str = "", start_after: str = "", end: str | None = None) -> Iterator[ObjectInfo]:
    """Every object under `prefix` after `start_after` (and up to `end`, inclusive), page by page, in order."""
    token: str | None = None
    while True:
        page = store.list_page(prefix, start_after=start_after, token=token)
        for info in page.objects:
            if end is not None and info.key.encode("utf-8", "surrogatepass") > end.encode("utf-8", "surrogatepass"):
                return
            yield info
        if not page.truncated or not (page.objects or page.prefixes):
            return
        token = page.token
        if token is None:  # ListObjects (V1), or a V2 store that gave no token: go on after the last key
            start_after = max([o.key for o in page.objects[-1:]] + page.prefixes[-1:])


def in_listing_order(entries: Iterable[Version]) -> list[Version]:
    """One page's versions and delete markers in ListObjectVersions' order: by key, each key's newest first.

    S3 interleaves them in that order, but boto3 hands them over as two lists,
    and moto 5.2 writes every Version before every DeleteMarker, with
    LastModified in whole seconds: the page is sorted here (stably, by key in
    UTF-8 binary order, the key's current entry first, then newest first).
    Entries of one key within one second keep the order the store gave them.
    """
    return sorted(entries, key=_listing_position)


def next_markers(entries: Sequence[Version], key_marker: str, version_marker: str) -> tuple[str, str]:
    """Where the next page of ListObjectVersions starts: NextKeyMarker and NextVersionIdMarker, as S3 means them.

    The key is taken from the page's entry of that version ID where there is
    one: Ceph 16 sends NextKeyMarker unescaped while it says its keys are
    URL-escaped, so a key holding "+" or "%" would come back changed.
    """
    for entry in reversed(entries):
        if version_marker and entry.version_id == version_marker:
            return entry.key, version_marker
    return key_marker, version_marker


def _listing_position(entry: Version) -> tuple[bytes, bool, float]:
    when = entry.last_modified.timestamp() if entry.last_modified is not None else 0.0
    return entry.key.encode("utf-8", "surrogatepass"), not entry.latest, -when


def list_versions(store: Store, prefix: str = "", *, key_marker: str = "") -> Iterator[Version]:
    """Every version and delete marker under `prefix` (after every entry of `key_marker`), page by page.

    In ListObjectVersions' order: by key, and each key's entries newest first.
    """
    version_marker = ""
    while True:
        page = store.list_versions_page(prefix, key_marker=key_marker, version_marker=version_marker)
        yield from page.versions
        if not page.truncated or not page.versions:
            return
        key_marker, version_marker = page.key_marker, page.version_marker
        if not key_marker:  # a store that names no next marker: go on after the last entry
            key_marker, version_marker = page.versions[-1].key, page.versions[-1].version_id


def is_md5(etag: str | None) -> bool:
    """True when an ETag looks like a plain MD5 (a single PUT), not a multipart `...-N` one."""
    return etag is not None and bool(_MD5_ETAG.match(etag))


def strip_etag(etag: str | None) -> str:
    """An ETag without its quotes, lower-cased."""
    return (etag or "").strip().strip('"').lower()


def b64_md5(hexdigest: str) -> str:
    """A hex MD5 as the base64 that Content-MD5 wants."""
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def md5_from_b64(value: str | None) -> str | None:
    """A base64 MD5 (rclone's md5chksum, a Content-MD5) as hex; None for anything that is not one."""
    if not value:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return digest.hex() if len(digest) == 16 else None


def checksum_from(header: Callable[[str], str | None]) -> Checksum | None:
    """The checksum an answer's headers carry (`header` reads one by its lower-case name), if any."""
    kind = (header("x-amz-checksum-type") or "").upper()
    for algorithm in CHECKSUM_BYTES:
        found = header(f"x-amz-checksum-{algorithm}")
        if found:
            # AWS and moto mark a composite checksum with "-N" (its parts); moto gives no type for one PUT's.
            value, _, parts = found.partition("-")
            return Checksum(algorithm, value, full_object=not parts and kind != "COMPOSITE")
    return None


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """The ETag S3 (and Ceph, Swift, SeaweedFS) give an object uploaded in these parts."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def lock_from(header: Callable[[str], str | None]) -> Lock | None:
    """The Object Lock an answer's headers carry (`header` reads one by its lower-case name); None for none."""
    mode = header("x-amz-object-lock-mode")
    hold = header("x-amz-object-lock-legal-hold")
    if not mode and not hold:
        return None
    until = header("x-amz-object-lock-retain-until-date") if mode else None
    lock = Lock(mode, retain_until(until) if until else None, (hold or "").upper() == "ON")
    return lock or None


def retain_until(text: str) -> str:
    """A retain-until date as AWS writes it (2030-01-02T03:04:05.000Z), however a store or client wrote it.

    botocore sends a date without its milliseconds where they are 0, and moto
    answers a date as it was sent: written one way, the two transports would
    read back two dates for one retention.
    """
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text  # not ISO 8601: left as the store wrote it
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def metadata_from(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """User metadata from response headers (x-amz-meta-*), names lower-cased."""
    return {name[11:].lower(): value for name, value in headers if name.lower().startswith("x-amz-meta-")}


def lock_unknown(error: StoreError) -> bool:
    """Whether GetObjectLockConfiguration's refusal means the bucket has no Object Lock (not that it is missing).

    AWS and moto answer ObjectLockConfigurationNotFoundError (404); a store
    that does not know the call answers 501 NotImplemented, 404 or 405.
    """
    if isinstance(error, NoSuchBucket):
        return False
    return error.code in ("ObjectLockConfigurationNotFoundError", "NotImplemented") or error.status in (404, 405, 501)


def store_error(operation: str, status: int, code: str, message: str, *, delete_marker: bool = False) -> StoreError:
    """The StoreError (or the subclass callers catch) for an S3 error answer, worded as botocore words it.

    Both transports raise what this returns, so nothing above the store
    interface can tell which one met the error. `delete_marker` is the
    answer's x-amz-delete-marker: a version that is a delete marker holds no
    object, as a missing key does (AWS and moto answer its HEAD 405).
    """
    kind = StoreError
    missing = code in ("NoSuchKey", "NotFound", "NoSuchVersion") or (status == 404 and code == "404")
    if missing or (delete_marker and status in (404, 405)):
        kind = NotFound
    elif code == "NoSuchBucket":
        kind = NoSuchBucket
    elif code == "PreconditionFailed" or status == 412:
        kind = PreconditionFailed
    elif code in ("BadDigest", "InvalidDigest"):
        kind = BadDigest
    text = f"An error occurred ({code}) when calling the {operation} operation: {message}"
    return kind(text, operation=operation, code=code, status=status, transient=transient_answer(status, code))
