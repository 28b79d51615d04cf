"""The boto3 transport: every S3 operation through a boto3 client, with the store quirks fixed at its hooks.

Endpoints that sign with SigV2 (`signature_version = s3`, old Ceph) or turn
boto3's checksums on (`checksums = True`) take this path; every other one
takes the lean one (s3s3.store.http). botocore's errors are turned into
StoreErrors here, at the boundary.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError

from s3s3.errors import NotFound, StoreError
from s3s3.retry import transient_failure
from s3s3.store.base import (
    CHECKSUM_BYTES,
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
    next_markers,
    store_error,
    strip_etag,
)
from s3s3.store.throttle import Throttle

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.config import Config as BotoConfig
    from botocore.credentials import Credentials
    from mypy_boto3_s3 import S3Client

    from s3s3.config import Endpoint
    from s3s3.store.facts import Facts

# HTTP header name -> the parameter boto3's PutObject (and GetObject's answer) uses for it.
PARAMS = {header: header.replace("-", "") for header in CONTENT_HEADERS}
CONNECT_TIMEOUT = 10.0  # seconds a connection is waited for (the copies'; connection checks give less)
# A checksum's algorithm -> the parameter of PutObject that carries it.
CHECKSUM_PARAMS = {name: f"Checksum{name.upper()}" for name in CHECKSUM_BYTES}
# Object Lock's headers (s3s3.store.base.Lock.as_headers) -> the parameters of PutObject and CreateMultipartUpload.
LOCK_PARAMS = {
    "x-amz-object-lock-mode": "ObjectLockMode",
    "x-amz-object-lock-retain-until-date": "ObjectLockRetainUntilDate",
    "x-amz-object-lock-legal-hold": "ObjectLockLegalHoldStatus",
}
_SESSION_LOCK = threading.Lock()  # a botocore session makes one client at a time


def create_client(
    endpoint: Endpoint, *, pool_size: int = 10, max_attempts: int = 4, connect_timeout: float = CONNECT_TIMEOUT
) -> S3Client:
    """A thread-safe boto3 S3 client for `endpoint`, with s3s3's store fixes registered.

    `max_attempts` is botocore's: the retries after a request's first try (it
    is sent max_attempts + 1 times at most). Probes and connection checks use
    0, where an error is an answer to record rather than something to retry,
    and a short `connect_timeout`.
    """
    with _SESSION_LOCK:
        client = _session(endpoint.profile).client(
            "s3",
            endpoint_url=endpoint.endpoint_url,
            aws_access_key_id=endpoint.access_key,
            aws_secret_access_key=endpoint.secret_key,
            region_name=endpoint.region or "us-east-1",
            verify=verify(endpoint),
            config=_boto_config(endpoint, pool_size=pool_size, max_attempts=max_attempts,
                                connect_timeout=connect_timeout),
        )
    events = client.meta.events
    if endpoint.signature_version == "s3":
        events.register("before-sign.s3", _sigv2_bucket_path)
        for operation in ("PutObject", "CreateMultipartUpload", "CopyObject"):
            events.register(f"before-parameter-build.s3.{operation}", _sigv2_metadata_dashes)
    if not endpoint.checksums:
        # AWS wants Content-MD5 on the two Object Lock calls too.
        for operation in ("DeleteObjects", "PutObjectRetention", "PutObjectLegalHold"):
            events.register(f"before-call.s3.{operation}", _content_md5_instead_of_crc32)
    return client


@functools.cache
def _session(profile: str | None) -> Session:
    import boto3.session  # here: a run on the lean path never needs boto3

    # One session per profile: its loader reads S3's service model and
    # endpoint rules once, not once per client (most of a client's start-up).
    return boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()


def session_credentials(profile: str | None) -> Credentials | None:
    """The AWS credential chain's credentials for `profile` (refreshable; never logged)."""
    return _session(profile).get_credentials()


def verify(endpoint: Endpoint) -> bool | str:
    """What TLS verification the endpoint asks for: a CA bundle's path, or on/off."""
    return endpoint.ca_bundle or endpoint.verify_ssl


def _boto_config(endpoint: Endpoint, *, pool_size: int, max_attempts: int, connect_timeout: float) -> BotoConfig:
    from botocore.config import Config as BotoConfig

    checksums: Literal["when_supported", "when_required"] = "when_supported" if endpoint.checksums else "when_required"
    return BotoConfig(
        signature_version=endpoint.signature_version,
        s3={
            "addressing_style": cast('Literal["auto", "virtual", "path"]', endpoint.addressing_style),
            # Every body s3s3 sends carries a Content-MD5 the store checks, so
            # the SHA-256 of the payload adds CPU and no integrity.
            "payload_signing_enabled": False,
        },
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=120,
        max_pool_connections=max(pool_size, 10),
        # boto3's default CRC32 checksums and aws-chunked trailers are rejected
        # by Ceph (411 MissingContentLength over HTTPS), Swift before 2.36 and
        # older MinIO; none of them checks x-amz-checksum-* anyway.
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
    )


def _sigv2_bucket_path(request: Any, **_: Any) -> None:
    # Ceph, Swift: with SigV2 and path style, botocore signs "/bucket/" but
    # sends "/bucket" for bucket-level calls (ListObjects, CreateBucket,
    # DeleteObjects...), so every one fails with SignatureDoesNotMatch. Send
    # the path that was signed, as boto 2 did.
    auth_path = getattr(request, "auth_path", None)
    if not auth_path:
        return
    parts = urlsplit(request.url)
    if parts.path + "/" == auth_path:
        request.url = urlunsplit(parts._replace(path=auth_path))


def _sigv2_metadata_dashes(params: dict[str, Any], **_: Any) -> None:
    # Ceph: with SigV2, a user-metadata key holding `_` fails with
    # SignatureDoesNotMatch (RGW turns `_` into `-` before checking the
    # signature; SigV4 is unaffected). Ceph stores `-` anyway, so send that.
    metadata = params.get("Metadata")
    if metadata and any("_" in name for name in metadata):
        params["Metadata"] = {name.replace("_", "-"): value for name, value in metadata.items()}


def _content_md5_instead_of_crc32(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # Swift: DeleteObjects requires Content-MD5; botocore >= 1.36 sends a
    # CRC32 header instead, even in when_required mode, and Swift answers 400.
    # Set the header here and drop botocore's checksum plan: its own
    # "conditional-md5" plan crashes botocore 1.44's before-sign handler
    # (AttributeError: 'str' object has no attribute 'get').
    checksum = context.setdefault("checksum", {})
    checksum.pop("request_algorithm", None)
    checksum.pop("request_algorithm_header", None)
    headers = params.setdefault("headers", {})
    headers.pop("x-amz-sdk-checksum-algorithm", None)
    body = params.get("body") or b""
    body = body.encode() if isinstance(body, str) else body
    headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


class BotoStore:
    """A Store through a boto3 client (made on first use: building one is most of boto3's start-up)."""

    transport = Transport.BOTO3

    def __init__(
        self, endpoint: Endpoint, facts: Facts, *, pool_size: int = 10, max_attempts: int = 4,
        connect_timeout: float = CONNECT_TIMEOUT, throttle: Throttle | None = None,
    ) -> None:  # fmt: skip
        self.endpoint = endpoint
        self.facts = facts
        self.throttle = throttle or Throttle()  # every attempt botocore sends waits its turn (s3s3.store.throttle)
        self._make = functools.partial(create_client, endpoint, pool_size=pool_size, max_attempts=max_attempts,
                                       connect_timeout=connect_timeout)  # fmt: skip
        self._client: S3Client | None = None
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.endpoint.label

    @property
    def client(self) -> S3Client:
        """The boto3 client, made by the first call that needs it."""
        with self._lock:
            if self._client is None:
                self._client = self._make()
                events = self._client.meta.events
                events.register("before-send.s3", self._turn)  # each attempt, botocore's own retries included
                events.register("response-received.s3", self._answered)
            return self._client

    def _turn(self, **_: Any) -> None:
        self.throttle.before()  # returns None: botocore sends the request itself

    def _answered(self, response_dict: dict[str, Any] | None = None, parsed_response: Any = None, **_: Any) -> None:
        status = response_dict["status_code"] if response_dict else 0
        if status >= 400:
            error = parsed_response.get("Error", {}) if isinstance(parsed_response, dict) else {}
            self.throttle.answered(status, str(error.get("Code", "")))

    def __repr__(self) -> str:
        return f"BotoStore({self.label!r})"

    def _call(self, operation: str, **params: Any) -> Any:
        method = getattr(self.client, _snake(operation))
        try:
            return method(Bucket=self.endpoint.bucket, **params)
        except Exception as e:
            raise boundary_error(operation, e) from e

    def head(
        self, key: str, *, part_number: int | None = None, checksums: bool = False, version_id: str | None = None
    ) -> ObjectInfo | None:
        extra: dict[str, Any] = {"PartNumber": part_number} if part_number else {}
        if checksums:
            extra["ChecksumMode"] = "ENABLED"
        if version_id is not None:
            extra["VersionId"] = version_id
        try:
            return _info(key, self._call("HeadObject", Key=key, **extra), part=part_number is not None)
        except NotFound:
            return None

    def get(
        self,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
        checksums: bool = False,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, BotoBody]:
        # With ChecksumMode, botocore also checks the body against a CRC32, SHA-1 or SHA-256 as it streams.
        extra = {"ChecksumMode": "ENABLED"} if checksums else {}
        if version_id is not None:
            extra["VersionId"] = version_id
        if byte_range is not None:
            extra["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        if if_match is not None:
            extra["IfMatch"] = f'"{if_match}"'
        response = self._call("GetObject", Key=key, **extra)
        return _info(key, response), BotoBody(response["Body"], key)

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
        extra = {"ContentMD5": b64_md5(md5)} if md5 else {}
        if checksum is not None:
            # A checksum given is sent as it is: botocore computes none of its own (nor needs awscrt for CRC64NVME).
            # ChecksumAlgorithm is x-amz-sdk-checksum-algorithm, without which moto keeps no checksum.
            extra[CHECKSUM_PARAMS[checksum.algorithm]] = checksum.value
            extra["ChecksumAlgorithm"] = checksum.algorithm.upper()
        data = body if isinstance(body, bytes) else _Reader(body)
        response = self._call("PutObject", Key=key, Body=data, ContentLength=length, **extra, **_params(attrs))
        return strip_etag(response.get("ETag"))

    def create_upload(self, key: str, attrs: Attributes) -> str:
        return str(self._call("CreateMultipartUpload", Key=key, **_params(attrs))["UploadId"])

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | Iterable[Buffer], *, length: int, md5: str | None
    ) -> str:
        extra = {"ContentMD5": b64_md5(md5)} if md5 else {}
        data = body if isinstance(body, bytes) else _Reader(body)
        response = self._call(
            "UploadPart", Key=key, UploadId=upload_id, PartNumber=number, Body=data, ContentLength=length, **extra
        )
        return strip_etag(response.get("ETag"))

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> str:
        upload = {"Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in parts]}
        response = self._call("CompleteMultipartUpload", Key=key, UploadId=upload_id, MultipartUpload=upload)
        return strip_etag(response.get("ETag"))

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._call("AbortMultipartUpload", Key=key, UploadId=upload_id)

    def list_uploads(self, prefix: str) -> Iterator[Upload]:
        markers: dict[str, str] = {}
        while True:
            page = self._call("ListMultipartUploads", Prefix=prefix, **markers)
            for item in page.get("Uploads", ()):
                yield Upload(item["Key"], item["UploadId"], item["Initiated"])
            if not page.get("IsTruncated"):
                return
            markers = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    def delete(self, key: str, *, version_id: str | None = None) -> str | None:
        extra = {"VersionId": version_id} if version_id is not None else {}
        return self._call("DeleteObject", Key=key, **extra).get("VersionId") or None

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        response = self._call("DeleteObjects", Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        return {e["Key"]: e.get("Message", e.get("Code", "error")) for e in response.get("Errors", [])}

    def list_page(self, prefix: str, *, start_after: str = "", token: str | None = None, delimiter: str = "") -> Page:
        extra = {"Delimiter": delimiter} if delimiter else {}
        if self.endpoint.list_version == 1:
            # Old Ceph RGW: ListObjectsV2 pages repeat or skip keys; V1 markers work.
            page = self._call("ListObjects", Prefix=prefix, Marker=start_after, **extra)
        elif token:
            page = self._call("ListObjectsV2", Prefix=prefix, ContinuationToken=token, **extra)
        else:
            page = self._call("ListObjectsV2", Prefix=prefix, StartAfter=start_after, **extra)
        objects = [
            ObjectInfo(item["Key"], int(item["Size"]), strip_etag(item.get("ETag")), item.get("LastModified"))
            for item in page.get("Contents", ())
        ]
        prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", ())]
        return Page(objects, prefixes, bool(page.get("IsTruncated")), page.get("NextContinuationToken") or None)

    def list_versions_page(
        self, prefix: str, *, key_marker: str = "", version_marker: str = "", max_keys: int = 1000
    ) -> VersionPage:
        markers = {"KeyMarker": key_marker} if key_marker else {}
        if key_marker and version_marker:
            markers["VersionIdMarker"] = version_marker
        page = self._call("ListObjectVersions", Prefix=prefix, MaxKeys=max_keys, **markers)
        # boto3 gives the versions and the delete markers in two lists: merged back into S3's order.
        entries = [_version(item, marker=False) for item in page.get("Versions", ())]
        entries += [_version(item, marker=True) for item in page.get("DeleteMarkers", ())]
        after = next_markers(entries, page.get("NextKeyMarker") or "", page.get("NextVersionIdMarker") or "")
        return VersionPage(in_listing_order(entries), bool(page.get("IsTruncated")), *after)

    def versioning(self) -> Versioning:
        status = self._call("GetBucketVersioning").get("Status")
        return Versioning(status) if status in tuple(Versioning) else Versioning.OFF

    def object_lock(self) -> bool:
        try:
            answer = self._call("GetObjectLockConfiguration")
        except StoreError as e:
            if lock_unknown(e):
                return False
            raise
        return bool(answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    def put_lock(self, key: str, lock: Lock, *, version_id: str | None = None) -> None:
        extra = {"VersionId": version_id} if version_id is not None else {}
        if lock.mode and lock.retain_until:
            retention = {"Mode": lock.mode, "RetainUntilDate": lock.retain_until}
            self._call("PutObjectRetention", Key=key, Retention=retention, **extra)
        if lock.legal_hold:
            self._call("PutObjectLegalHold", Key=key, LegalHold={"Status": "ON"}, **extra)

    def copy_object(
        self, source_bucket: str, source_key: str, key: str, *, size: int, if_match: str | None, attrs: Attributes
    ) -> str:
        from boto3.s3.transfer import TransferConfig  # here: only same-store copies need s3transfer

        from s3s3.config import MAX_PART

        extra = {**_params(attrs), "MetadataDirective": "REPLACE"}
        if if_match is not None:
            extra["CopySourceIfMatch"] = f'"{if_match}"'
        # s3transfer copies in one CopyObject up to 5 GiB, and in UploadPartCopy parts past it.
        config = TransferConfig(multipart_threshold=MAX_PART, multipart_chunksize=self.endpoint.multipart_chunksize)
        try:
            self.client.copy({"Bucket": source_bucket, "Key": source_key}, self.endpoint.bucket, key,
                             ExtraArgs=extra, Config=config)  # fmt: skip
        except Exception as e:
            raise boundary_error("CopyObject", e) from e
        return ""

    def get_tagging(self, key: str, *, version_id: str | None = None) -> str:
        extra = {"VersionId": version_id} if version_id else {}
        tags = self._call("GetObjectTagging", Key=key, **extra).get("TagSet", [])
        return urlencode([(t["Key"], t["Value"]) for t in tags], quote_via=quote)

    def put_tagging(self, key: str, tagging: str) -> None:
        tags = [{"Key": k, "Value": v} for k, v in parse_qsl(tagging, keep_blank_values=True)]
        self._call("PutObjectTagging", Key=key, Tagging={"TagSet": tags})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class BotoBody:
    """A boto3 GetObject body; a cut or early end raises a transient StoreError."""

    def __init__(self, body: Any, key: str) -> None:
        self.body = body
        self.key = key

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self.body.read(None if size < 0 else size))
        except Exception as e:
            raise boundary_error("GetObject", e) from e

    def readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.body.close()


class _Reader:
    """An iterable of buffers as the file-like body botocore reads from."""

    def __init__(self, chunks: Iterable[Buffer]) -> None:
        self._chunks = iter(chunks)
        self._left = b""

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self._left + b"".join(bytes(c) for c in self._chunks)
        while len(self._left) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._left += bytes(chunk)
        data, self._left = self._left[:size], self._left[size:]
        return data


def boundary_error(operation: str, error: BaseException) -> StoreError:
    """What botocore raised, as the StoreError every caller of a Store catches."""
    if isinstance(error, StoreError):
        return error
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(err.get("Code") or status)
        headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        marker = headers.get("x-amz-delete-marker") == "true"
        return store_error(error.operation_name or operation, status, code, str(err.get("Message") or ""),
                           delete_marker=marker)  # fmt: skip
    text = " ".join(str(error).split()) or type(error).__name__
    kind = "BotoCoreError" if isinstance(error, BotoCoreError) else type(error).__name__
    return StoreError(f"{operation}: {text}", operation=operation, code=kind, transient=_connection_failed(error))


def _connection_failed(error: BaseException) -> bool:
    """Whether botocore (or urllib3 under it) says the connection failed, not the request."""
    from botocore.exceptions import ConnectionError, HTTPClientError, IncompleteReadError
    from urllib3.exceptions import HTTPError as Urllib3Error

    # botocore wraps what urllib3 saw (resets, timeouts, a streamed body cut
    # short); older botocores let urllib3's own errors out of a body's read().
    lost = ConnectionError | HTTPClientError | IncompleteReadError | Urllib3Error
    return isinstance(error, lost) or transient_failure(error)


def _params(attrs: Attributes) -> dict[str, Any]:
    """Attributes as the parameters of PutObject, CreateMultipartUpload and CopyObject."""
    params: dict[str, Any] = {PARAMS[h]: v for h, v in attrs.headers.items() if h in PARAMS}
    params["Metadata"] = dict(attrs.metadata)
    for name, value in (
        ("StorageClass", attrs.storage_class),
        ("Tagging", attrs.tagging),
        ("ServerSideEncryption", attrs.encryption),
        ("SSEKMSKeyId", attrs.kms_key_id),
        ("ACL", attrs.acl),
    ):
        if value:
            params[name] = value
    if attrs.lock:
        # As the lean path sends them (Lock.as_headers): the retain-until date as the source's header said it.
        for header, value in attrs.lock.as_headers().items():
            params[LOCK_PARAMS[header]] = value
    return params


def _info(key: str, response: dict[str, Any], *, part: bool = False) -> ObjectInfo:
    """An ObjectInfo from a HeadObject or GetObject answer (of one part, with `part`: its size is the part's)."""
    headers = {}
    for header, param in PARAMS.items():
        value = response.get(param)
        if param == "Expires":  # botocore parses it; newer ones keep the text in ExpiresString
            value = response.get("ExpiresString") or (format_datetime(value, usegmt=True) if value else None)
        if value is not None:
            headers[header] = str(value)
    size = response.get("ContentLength", 0)
    content_range = response.get("ContentRange")  # a ranged GET: bytes 0-99/12345
    if content_range and "/" in content_range and not part:
        size = int(content_range.rpartition("/")[2])
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    http_headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})  # names lower-cased by botocore
    encryption = "SSE-C" if response.get("SSECustomerAlgorithm") else response.get("ServerSideEncryption")
    return ObjectInfo(
        key=key,
        size=int(size),
        etag=strip_etag(response.get("ETag")),
        last_modified=response.get("LastModified"),
        metadata={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
        headers=headers,
        encryption=encryption,
        tag_count=int(response.get("TagCount") or 0),
        parts_count=response.get("PartsCount") if status == 206 else None,
        checksum=checksum_from(http_headers.get),
        version_id=response.get("VersionId"),
        # From the headers, not botocore's parse: the retain-until date as the store wrote it, as the lean path.
        lock=lock_from(http_headers.get),
    )


def _version(item: dict[str, Any], *, marker: bool) -> Version:
    """One entry of ListObjectVersions' Versions (or, with `marker`, DeleteMarkers)."""
    return Version(
        key=item["Key"],
        version_id=item.get("VersionId") or "null",
        last_modified=item.get("LastModified"),
        size=int(item.get("Size") or 0),
        etag=strip_etag(item.get("ETag")),
        latest=bool(item.get("IsLatest")),
        delete_marker=marker,
    )


@functools.cache
def _snake(operation: str) -> str:
    """boto3's method for an operation: ListObjectsV2 is list_objects_v2."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
