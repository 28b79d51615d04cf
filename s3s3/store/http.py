"""The lean transport: every S3 operation s3s3 makes, as plain signed HTTP requests (s3s3.store.wire).

It needs botocore only for its SigV4 signer (and, for AWS endpoints and
credential chains, to find the URL and the keys once), and costs about a
third of boto3's CPU per request. Answers are parsed here, errors mapped to
StoreErrors in s3s3.store.wire.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from s3s3.config import MAX_PART
from s3s3.errors import NotFound, StoreError
from s3s3.retry import transient_failure
from s3s3.store.base import (
    CONTENT_HEADERS,
    Attributes,
    Buffer,
    Checksum,
    Lock,
    ObjectInfo,
    Page,
    Transport,
    Upload,
    Version,
    Versioning,
    VersionPage,
    b64_md5,
    checksum_from,
    in_listing_order,
    lock_from,
    lock_unknown,
    metadata_from,
    next_markers,
    store_error,
    strip_etag,
)
from s3s3.store.wire import Wire

if TYPE_CHECKING:
    from s3s3.config import Endpoint
    from s3s3.store.facts import Facts


_S3_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


class HttpStore:
    """A Store over plain signed HTTP: SigV4 endpoints with boto3's checksums off."""

    transport = Transport.HTTP

    def __init__(self, endpoint: Endpoint, wire: Wire, facts: Facts) -> None:
        self.endpoint = endpoint
        self.wire = wire
        self.facts = facts
        self.throttle = wire.throttle  # every request the wire sends waits its turn (s3s3.store.throttle)

    @property
    def label(self) -> str:
        return self.endpoint.label

    def __repr__(self) -> str:
        return f"HttpStore({self.label!r})"

    def head(
        self, key: str, *, part_number: int | None = None, checksums: bool = False, version_id: str | None = None
    ) -> ObjectInfo | None:
        query = f"partNumber={part_number}" if part_number else ""
        if version_id is not None:
            query += ("&" if query else "") + _version_query(version_id)
        try:
            answer = self.wire.send("HEAD", key, "HeadObject", query=query, headers=_checksum_mode(checksums))
        except NotFound:
            return None
        return _info(key, answer.response, part=part_number is not None)

    def get(
        self,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
        checksums: bool = False,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, HttpBody]:
        headers = _checksum_mode(checksums)
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        query = _version_query(version_id) if version_id is not None else ""
        answer = self.wire.send("GET", key, "GetObject", headers=headers, query=query, stream=True)
        return _info(key, answer.response), HttpBody(self.wire, answer.response, key)

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
        headers = {**attrs.as_headers(), "Content-Length": str(length)}
        if md5:
            headers["Content-MD5"] = b64_md5(md5)
        if checksum is not None:
            headers[checksum.header] = checksum.value
            # AWS takes the checksum header alone; moto keeps a checksum only when this names its algorithm.
            headers["x-amz-sdk-checksum-algorithm"] = checksum.algorithm.upper()
        return strip_etag(self.wire.send("PUT", key, "PutObject", body=body, headers=headers).header("ETag"))

    def create_upload(self, key: str, attrs: Attributes) -> str:
        answer = self.wire.send("POST", key, "CreateMultipartUpload", headers=attrs.as_headers(), query="uploads=")
        upload_id = _xml(answer.data, "CreateMultipartUpload").findtext("{*}UploadId")
        if not upload_id:
            raise StoreError("CreateMultipartUpload answered without an UploadId", operation="CreateMultipartUpload",
                             code="NoUploadId", transient=True)  # fmt: skip
        return upload_id

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | Iterable[Buffer], *, length: int, md5: str | None
    ) -> str:
        query = urlencode({"partNumber": number, "uploadId": upload_id}, quote_via=quote)
        headers = {"Content-Length": str(length)}
        if md5:
            headers["Content-MD5"] = b64_md5(md5)
        answer = self.wire.send("PUT", key, "UploadPart", body=body, headers=headers, query=query)
        return strip_etag(answer.header("ETag"))

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> str:
        body = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>\"{escape(e)}\"</ETag></Part>" for n, e in parts)
        data = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        query = urlencode({"uploadId": upload_id}, quote_via=quote)
        answer = self.wire.send("POST", key, "CompleteMultipartUpload", body=data, query=query)
        root = _xml(answer.data, "CompleteMultipartUpload") if answer.data.strip() else None
        _raise_embedded_error(root, answer.status, "CompleteMultipartUpload")
        return strip_etag(root.findtext("{*}ETag")) if root is not None else ""

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.wire.send("DELETE", key, "AbortMultipartUpload", query=urlencode({"uploadId": upload_id}, quote_via=quote))

    def list_uploads(self, prefix: str) -> Iterator[Upload]:
        # No encoding-type=url, as boto3 asks none: stores disagree on it (SeaweedFS says it encodes and
        # does not, Ceph encodes and does not say), so a key holding "+" or "%" would come back changed.
        params = {"uploads": "", "prefix": prefix}
        while True:
            root = _xml(self.wire.send("GET", "", "ListMultipartUploads", query=_query(params)).data, "ListUploads")
            for item in root.iterfind("{*}Upload"):
                initiated = _iso(item.findtext("{*}Initiated") or "")
                key = item.findtext("{*}Key") or ""
                yield Upload(key, item.findtext("{*}UploadId") or "", initiated or datetime.fromtimestamp(0, UTC))
            if root.findtext("{*}IsTruncated") != "true":
                return
            params["key-marker"] = root.findtext("{*}NextKeyMarker") or ""
            params["upload-id-marker"] = root.findtext("{*}NextUploadIdMarker") or ""

    def delete(self, key: str, *, version_id: str | None = None) -> str | None:
        query = _version_query(version_id) if version_id is not None else ""
        return self.wire.send("DELETE", key, "DeleteObject", query=query).header("x-amz-version-id") or None

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        objects = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
        data = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
        # Swift: DeleteObjects requires Content-MD5 (S3 does too); it answers 400 without it.
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(), "Content-Type": "text/xml"}
        answer = self.wire.send("POST", "", "DeleteObjects", body=data, headers=headers, query="delete=")
        root = _xml(answer.data, "DeleteObjects")
        return {
            item.findtext("{*}Key") or "": item.findtext("{*}Message") or item.findtext("{*}Code") or "error"
            for item in root.iterfind("{*}Error")
        }

    def list_page(self, prefix: str, *, start_after: str = "", token: str | None = None, delimiter: str = "") -> Page:
        v2 = self.endpoint.list_version == 2
        params = {"list-type": "2"} if v2 else {}
        params |= {"prefix": prefix, "encoding-type": "url"}
        if delimiter:
            params["delimiter"] = delimiter
        if not v2:
            # Old Ceph RGW: ListObjectsV2 pages repeat or skip keys; V1 markers work.
            if start_after:
                params["marker"] = start_after
        else:
            if token:
                params["continuation-token"] = token
            elif start_after:
                params["start-after"] = start_after
        operation = "ListObjectsV2" if v2 else "ListObjects"
        root = _xml(self.wire.send("GET", "", operation, query=_query(params)).data, operation)
        return _page(root, v2=v2)

    def list_versions_page(
        self, prefix: str, *, key_marker: str = "", version_marker: str = "", max_keys: int = 1000
    ) -> VersionPage:
        params = {"versions": "", "prefix": prefix, "max-keys": str(max_keys), "encoding-type": "url"}
        if key_marker:
            params["key-marker"] = key_marker
            if version_marker:
                params["version-id-marker"] = version_marker
        root = _xml(self.wire.send("GET", "", "ListObjectVersions", query=_query(params)).data, "ListObjectVersions")
        return _version_page(root)

    def versioning(self) -> Versioning:
        answer = self.wire.send("GET", "", "GetBucketVersioning", query="versioning=")
        status = _xml(answer.data, "GetBucketVersioning").findtext("{*}Status") if answer.data.strip() else None
        return Versioning(status) if status in tuple(Versioning) else Versioning.OFF

    def object_lock(self) -> bool:
        try:
            answer = self.wire.send("GET", "", "GetObjectLockConfiguration", query="object-lock=")
        except StoreError as e:
            if lock_unknown(e):
                return False
            raise
        root = _xml(answer.data, "GetObjectLockConfiguration")
        return root.findtext("{*}ObjectLockEnabled") == "Enabled"

    def put_lock(self, key: str, lock: Lock, *, version_id: str | None = None) -> None:
        version = "&" + _version_query(version_id) if version_id is not None else ""
        if lock.mode and lock.retain_until:
            rule = f"<Mode>{escape(lock.mode)}</Mode><RetainUntilDate>{escape(lock.retain_until)}</RetainUntilDate>"
            self._put_xml(key, "PutObjectRetention", "retention=" + version, f"<Retention {_S3_NS}>{rule}</Retention>")
        if lock.legal_hold:
            status = f"<LegalHold {_S3_NS}><Status>ON</Status></LegalHold>"
            self._put_xml(key, "PutObjectLegalHold", "legal-hold=" + version, status)

    def _put_xml(self, key: str, operation: str, query: str, document: str) -> None:
        data = document.encode()
        # AWS requires Content-MD5 on both Object Lock calls.
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(), "Content-Type": "text/xml"}
        self.wire.send("PUT", key, operation, body=data, headers=headers, query=query)

    def copy_object(
        self, source_bucket: str, source_key: str, key: str, *, size: int, if_match: str | None, attrs: Attributes
    ) -> str:
        source = {"x-amz-copy-source": f"/{source_bucket}/{quote(source_key, safe='/~')}"}
        if if_match is not None:
            source["x-amz-copy-source-if-match"] = f'"{if_match}"'
        if size <= MAX_PART:
            headers = {**attrs.as_headers(), **source, "x-amz-metadata-directive": "REPLACE"}
            answer = self.wire.send("PUT", key, "CopyObject", headers=headers)
            root = _xml(answer.data, "CopyObject")
            _raise_embedded_error(root, answer.status, "CopyObject")  # S3 may answer 200 and fail later
            return strip_etag(root.findtext("{*}ETag"))
        return self._copy_in_parts(key, size, source, attrs)

    def _copy_in_parts(self, key: str, size: int, source: dict[str, str], attrs: Attributes) -> str:
        """Past 5 GiB, CopyObject cannot: UploadPartCopy, part by part, all of the source's version `if_match`."""
        upload_id = self.create_upload(key, attrs)
        chunk = self.endpoint.multipart_chunksize
        try:
            parts = []
            for number, start in enumerate(range(0, size, chunk), start=1):
                query = urlencode({"partNumber": number, "uploadId": upload_id}, quote_via=quote)
                headers = {**source, "x-amz-copy-source-range": f"bytes={start}-{min(start + chunk, size) - 1}"}
                answer = self.wire.send("PUT", key, "UploadPartCopy", headers=headers, query=query)
                parts.append((number, strip_etag(_xml(answer.data, "UploadPartCopy").findtext("{*}ETag"))))
            return self.complete_upload(key, upload_id, parts)
        except BaseException:
            self.abort_upload(key, upload_id)
            raise

    def get_tagging(self, key: str, *, version_id: str | None = None) -> str:
        query = "tagging=" + (f"&{_version_query(version_id)}" if version_id is not None else "")
        root = _xml(self.wire.send("GET", key, "GetObjectTagging", query=query).data, "GetObjectTagging")
        pairs = [(t.findtext("{*}Key") or "", t.findtext("{*}Value") or "") for t in root.iterfind(".//{*}Tag")]
        return urlencode(pairs, quote_via=quote)

    def put_tagging(self, key: str, tagging: str) -> None:
        pairs = parse_qsl(tagging, keep_blank_values=True)
        tags = "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in pairs)
        data = f"<Tagging><TagSet>{tags}</TagSet></Tagging>".encode()
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(), "Content-Type": "text/xml"}
        self.wire.send("PUT", key, "PutObjectTagging", body=data, headers=headers, query="tagging=")

    def close(self) -> None:
        self.wire.close()


class HttpBody:
    """A GET's body: read it in pieces; a cut or early end raises a transient StoreError; close gives it up."""

    def __init__(self, wire: Wire, response: http.client.HTTPResponse, key: str) -> None:
        self.wire = wire
        self.response = response
        self.key = key

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.response.read(None if size < 0 else size)
        except (OSError, http.client.HTTPException) as e:
            raise _cut(self.key, e) from e
        if size and not data and self.response.length:  # a clean close before the Content-Length was met
            raise _cut(self.key, http.client.IncompleteRead(b"", self.response.length))
        return data

    def readinto(self, buffer: memoryview) -> int:
        try:
            n = self.response.readinto(buffer)
        except (OSError, http.client.HTTPException) as e:
            raise _cut(self.key, e) from e
        if not n and len(buffer) and self.response.length:
            raise _cut(self.key, http.client.IncompleteRead(b"", self.response.length))
        return n

    def close(self) -> None:
        self.wire.discard(self.response)


def _cut(key: str, error: BaseException) -> StoreError:
    return StoreError(f"GetObject of {key!r}: the body was cut short: {type(error).__name__}: {error}",
                      operation="GetObject", code=type(error).__name__, transient=transient_failure(error))  # fmt: skip


def _checksum_mode(checksums: bool) -> dict[str, str]:
    return {"x-amz-checksum-mode": "ENABLED"} if checksums else {}


def _info(key: str, response: http.client.HTTPResponse, *, part: bool = False) -> ObjectInfo:
    """An ObjectInfo from a HeadObject or GetObject answer (of one part, with `part`: its size is the part's)."""
    headers = response.headers
    size = headers.get("Content-Length") or "0"
    content_range = headers.get("Content-Range")  # a ranged GET: bytes 0-99/12345
    if content_range and "/" in content_range and not part:
        size = content_range.rpartition("/")[2]
    modified = headers.get("Last-Modified")
    encryption = headers.get("x-amz-server-side-encryption")
    if headers.get("x-amz-server-side-encryption-customer-algorithm"):
        encryption = "SSE-C"
    parts = headers.get("x-amz-mp-parts-count")
    return ObjectInfo(
        key=key,
        size=int(size) if size.isdigit() else 0,
        etag=strip_etag(headers.get("ETag")),
        last_modified=parsedate_to_datetime(modified) if modified else None,
        metadata=metadata_from(headers.items()),
        headers={name: headers[name] for name in CONTENT_HEADERS if headers.get(name) is not None},
        encryption=encryption,
        tag_count=int(headers.get("x-amz-tagging-count") or 0),
        parts_count=int(parts) if parts and parts.isdigit() and response.status == 206 else None,
        checksum=checksum_from(headers.get),
        version_id=headers.get("x-amz-version-id"),
        lock=lock_from(headers.get),
    )


def _version_query(version_id: str) -> str:
    return "versionId=" + quote(version_id, safe="")


def _version_page(root: ElementTree.Element) -> VersionPage:
    """A ListObjectVersions answer: its Version and DeleteMarker entries in S3's order, and where it goes on."""
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    # encoding-type=url, as botocore asks: keys are unescaped only where the answer says they were escaped
    # (moto 5.2 escapes none, and says so by leaving EncodingType out), as botocore unescapes them.
    decode = unquote_plus if root.findtext(ns + "EncodingType") == "url" else str
    entries = []
    for item in root:
        marker = item.tag == ns + "DeleteMarker"
        if not marker and item.tag != ns + "Version":
            continue
        entries.append(Version(
            key=decode(item.findtext(ns + "Key") or ""),
            version_id=item.findtext(ns + "VersionId") or "null",
            last_modified=_iso(item.findtext(ns + "LastModified") or ""),
            size=int(item.findtext(ns + "Size") or 0),
            etag=strip_etag(item.findtext(ns + "ETag")),
            latest=item.findtext(ns + "IsLatest") == "true",
            delete_marker=marker,
        ))  # fmt: skip
    key_marker = decode(root.findtext(ns + "NextKeyMarker") or "")
    key_marker, version_marker = next_markers(entries, key_marker, root.findtext(ns + "NextVersionIdMarker") or "")
    truncated = root.findtext(ns + "IsTruncated") == "true"
    return VersionPage(in_listing_order(entries), truncated, key_marker, version_marker)


def _page(root: ElementTree.Element, *, v2: bool) -> Page:
    # The document's own namespace (S3's, or none): "{*}" lookups cost three times the CPU.
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    key, size, etag, modified = ns + "Key", ns + "Size", ns + "ETag", ns + "LastModified"
    # encoding-type=url, as botocore asks too: keys holding characters XML
    # cannot carry arrive escaped, and are unescaped here the way botocore does.
    objects = [
        ObjectInfo(unquote_plus(item.findtext(key) or ""), int(item.findtext(size) or 0),
                   strip_etag(item.findtext(etag)), _iso(item.findtext(modified) or ""))  # fmt: skip
        for item in root.iterfind(ns + "Contents")
    ]
    prefixes = [unquote_plus(p.findtext(ns + "Prefix") or "") for p in root.iterfind(ns + "CommonPrefixes")]
    truncated = root.findtext(ns + "IsTruncated") == "true"
    token = root.findtext(ns + "NextContinuationToken") if v2 else None
    return Page(objects, prefixes, truncated, token or None)


def _iso(text: str) -> datetime | None:
    """An S3 timestamp; one without a zone (not S3's way, but seen) is taken as UTC."""
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _query(params: dict[str, str]) -> str:
    return urlencode(params, quote_via=quote)


def _xml(data: bytes, operation: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as e:  # an answer cut short, or not S3's
        raise StoreError(f"{operation}: the answer is not XML: {e}", operation=operation, code="ParseError",
                         transient=True) from e  # fmt: skip


def _raise_embedded_error(root: ElementTree.Element | None, status: int, operation: str) -> None:
    """S3 answers some calls 200 and only then finds them failed: the error is in the body."""
    if root is not None and root.tag.rpartition("}")[2] == "Error":
        raise store_error(operation, status, root.findtext("Code") or "", root.findtext("Message") or "")
