"""The S3 boundary: clients built from an Endpoint, object facts, listings.

Everything that talks to a store goes through a client made here, so the store
quirks that s3s3 works around are fixed once, at the line below that names them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError

from s3s3.config import Endpoint
from s3s3.wire import Wire, object_headers, put_headers, response_metadata

# Headers a copy carries over, as GetObject/HeadObject name them -> PutObject's parameter.
CONTENT_HEADERS = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
)
# User metadata s3s3 writes on every object it copies.
META_MD5 = "s3s3-md5"  # MD5 of the whole object, hex
META_ETAG = "s3s3-source-etag"  # the source ETag this copy was made from
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
NOT_FOUND = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


@dataclass(frozen=True)
class Bucket:
    """An Endpoint with its client: everything needed to read or write its bucket.

    `wire`, where set, carries the hot single-object calls (see s3s3.wire).
    """

    endpoint: Endpoint
    client: Any = field(repr=False)
    wire: Wire | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.endpoint.bucket


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a HEAD says of one object."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None = None
    metadata: dict[str, str] | None = None  # None when it came from a listing
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def md5(self) -> str | None:
        """The object's MD5 where the store or s3s3 recorded one, else None."""
        if is_md5(self.etag):
            return self.etag
        recorded = (self.metadata or {}).get(META_MD5)
        return recorded if recorded and is_md5(recorded) else None


def is_md5(etag: str | None) -> bool:
    """True when an ETag is a plain MD5 (a single PUT), not a multipart `...-N` one."""
    return bool(etag) and bool(_MD5_ETAG.match(etag))  # type: ignore[arg-type]


def strip_etag(etag: str | None) -> str:
    """An ETag without its quotes, lower-cased."""
    return (etag or "").strip().strip('"').lower()


def b64_md5(hexdigest: str) -> str:
    """A hex MD5 as the base64 that Content-MD5 wants."""
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def multipart_etag(part_md5s: list[bytes]) -> str:
    """The ETag S3 (and Ceph, Swift, SeaweedFS) give an object uploaded in these parts."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def error_code(error: BaseException) -> str:
    """The S3 error code (or HTTP status) of a botocore error, '' for others."""
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return str(err.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return ""


def is_not_found(error: BaseException) -> bool:
    return error_code(error) in NOT_FOUND


def create_client(endpoint: Endpoint, *, pool_size: int = 10, max_attempts: int = 4) -> Any:
    """A thread-safe boto3 S3 client for `endpoint`, with s3s3's store fixes registered.

    `max_attempts` counts botocore's tries per request; probes use 1, where an
    error is an answer to record rather than something to retry.
    """
    return _client(_session(endpoint), endpoint, pool_size=pool_size, max_attempts=max_attempts)


@functools.cache
def _shared_session(profile: str | None) -> Any:
    import boto3.session  # here: a run that the listings decide never needs boto3

    # One session per profile: its loader reads S3's service model and
    # endpoint rules once, not once per client (most of a client's start-up).
    return boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()


def _session(endpoint: Endpoint) -> Any:
    return _shared_session(endpoint.profile)


def _client(session: Any, endpoint: Endpoint, *, pool_size: int, max_attempts: int) -> Any:
    with _SESSION_LOCK:  # a botocore session makes one client at a time
        return _new_client(session, endpoint, pool_size=pool_size, max_attempts=max_attempts)


_SESSION_LOCK = threading.Lock()


def _boto_config(endpoint: Endpoint, *, pool_size: int, max_attempts: int) -> Any:
    from botocore.config import Config as BotoConfig

    checksums = "when_supported" if endpoint.checksums else "when_required"
    return BotoConfig(
        signature_version=endpoint.signature_version,
        s3={
            "addressing_style": endpoint.addressing_style,
            # Every body s3s3 sends carries a Content-MD5 the store checks, so
            # the SHA-256 of the payload adds CPU and no integrity.
            "payload_signing_enabled": False,
        },
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=max(pool_size, 10),
        # boto3's default CRC32 checksums and aws-chunked trailers are rejected
        # by Ceph (411 MissingContentLength over HTTPS), Swift before 2.36 and
        # older MinIO; none of them checks x-amz-checksum-* anyway.
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
    )


def _new_client(session: Any, endpoint: Endpoint, *, pool_size: int, max_attempts: int) -> Any:
    config = _boto_config(endpoint, pool_size=pool_size, max_attempts=max_attempts)
    client = session.client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region or "us-east-1",
        verify=_verify(endpoint),
        config=config,
    )
    events = client.meta.events
    if endpoint.signature_version == "s3":
        events.register("before-sign.s3", _sigv2_bucket_path)
        for operation in ("PutObject", "CreateMultipartUpload", "CopyObject"):
            events.register(f"before-parameter-build.s3.{operation}", _sigv2_metadata_dashes)
    if not endpoint.checksums:
        events.register("before-call.s3.DeleteObjects", _content_md5_instead_of_crc32)
    return client


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


def open_bucket(endpoint: Endpoint, *, pool_size: int = 10, lean: bool = True) -> Bucket:
    """A Bucket for `endpoint` with a new client (and the lean path, where the endpoint allows it).

    Where the lean path needs nothing of the client (a configured endpoint,
    path-style addressing, keys in the configuration), the client is made only
    when something first uses it: building it is most of boto3's start-up, and
    a bucket sync that the listings decide never does.
    """
    lean = lean and endpoint.signature_version == "s3v4" and not endpoint.checksums
    keys = Keys(endpoint.access_key, endpoint.secret_key or "", None) if endpoint.access_key else None
    if lean and keys and endpoint.endpoint_url and endpoint.addressing_style != "virtual":
        # botocore addresses a configured endpoint path-style unless told "virtual" (botocore/args.py).
        base = f"{endpoint.endpoint_url.rstrip('/')}/{endpoint.bucket}/"
        config = _boto_config(endpoint, pool_size=pool_size, max_attempts=4)
        wire = Wire(base, endpoint.region or "us-east-1", config, keys, verify=_verify(endpoint))
        return Bucket(endpoint, _LazyClient(functools.partial(create_client, endpoint, pool_size=pool_size)), wire)
    session = _session(endpoint)
    client = _client(session, endpoint, pool_size=pool_size, max_attempts=4)
    wire = None
    if lean:
        credentials = keys or session.get_credentials()
        wire = Wire.from_client(client, endpoint.bucket, credentials, verify=_verify(endpoint))
    return Bucket(endpoint, client, wire)


class Keys(NamedTuple):
    """Static keys in the shape botocore's signer reads (its frozen credentials)."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> Keys:
        return self

    def __repr__(self) -> str:
        return f"Keys(access_key={self.access_key!r}, secret_key=***)"


class _LazyClient:
    """A boto3 client made on first use, once, whichever thread asks first."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return getattr(self._client, name)


def _verify(endpoint: Endpoint) -> bool | str:
    return endpoint.ca_bundle or endpoint.verify_ssl


def get_object(bucket: Bucket, key: str, **conditions: str) -> tuple[ObjectInfo, Any]:
    """GET one object: what it is, and its body to stream (close it when done)."""
    if bucket.wire is not None and not conditions:
        response = bucket.wire.get(key)
        return info_from_response(key, response_metadata(response)), _WireBody(bucket.wire, response)
    response = bucket.client.get_object(Bucket=bucket.name, Key=key, **conditions)
    return info_from_response(key, response), response["Body"]


def put_object(bucket: Bucket, key: str, data: bytes, md5: str, args: dict[str, Any]) -> str:
    """PUT one object held in memory, with its Content-MD5; return the ETag the store gave it."""
    if bucket.wire is not None:
        response = bucket.wire.put(key, data, put_headers(args, b64_md5(md5), len(data)))
        return strip_etag(response.headers.get("ETag"))
    response = bucket.client.put_object(Bucket=bucket.name, Key=key, Body=data, ContentMD5=b64_md5(md5), **args)
    return strip_etag(response.get("ETag"))


def create_multipart_upload(bucket: Bucket, key: str, args: dict[str, Any]) -> str:
    """Start a multipart upload with the object's headers and metadata; return its ID."""
    if bucket.wire is not None:
        return bucket.wire.create_multipart_upload(key, object_headers(args))
    return bucket.client.create_multipart_upload(Bucket=bucket.name, Key=key, **args)["UploadId"]


def complete_multipart_upload(bucket: Bucket, key: str, upload_id: str, parts: list[tuple[int, str]]) -> str:
    """Complete an upload of (part number, ETag) parts; return the ETag the store answered ("" for none)."""
    if bucket.wire is not None:
        return strip_etag(bucket.wire.complete_multipart_upload(key, upload_id, parts))
    response = bucket.client.complete_multipart_upload(
        Bucket=bucket.name,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
    )
    return strip_etag(response.get("ETag"))


def abort_multipart_upload(bucket: Bucket, key: str, upload_id: str) -> None:
    if bucket.wire is not None:
        bucket.wire.abort_multipart_upload(key, upload_id)
    else:
        bucket.client.abort_multipart_upload(Bucket=bucket.name, Key=key, UploadId=upload_id)


@dataclass(frozen=True)
class Upload:
    """A multipart upload begun and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


def list_uploads(bucket: Bucket, prefix: str = "") -> Iterator[Upload]:
    """Every incomplete multipart upload under `prefix`."""
    pages = bucket.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket.name, Prefix=prefix)
    for page in pages:
        for item in page.get("Uploads", ()):
            yield Upload(item["Key"], item["UploadId"], item["Initiated"])


class _WireBody:
    """A wire GET's body: read it in pieces; closing it early gives up its connection."""

    def __init__(self, wire: Wire, response: Any) -> None:
        self.wire = wire
        self.response = response

    def read(self, size: int = -1) -> bytes:
        return self.response.read(None if size < 0 else size)

    def close(self) -> None:
        self.wire.discard(self.response)


def head(bucket: Bucket, key: str) -> ObjectInfo | None:
    """HEAD one object; None when it does not exist."""
    try:
        if bucket.wire is not None:
            return info_from_response(key, response_metadata(bucket.wire.head(key)))
        response = bucket.client.head_object(Bucket=bucket.name, Key=key)
    except ClientError as e:
        if is_not_found(e):
            return None
        raise
    return info_from_response(key, response)


def info_from_response(key: str, response: dict[str, Any]) -> ObjectInfo:
    """ObjectInfo from a HeadObject or GetObject response."""
    return ObjectInfo(
        key=key,
        size=int(response.get("ContentLength", 0)),
        etag=strip_etag(response.get("ETag")),
        last_modified=response.get("LastModified"),
        metadata={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
        headers={h: response[h] for h in CONTENT_HEADERS if response.get(h) is not None},
    )


def list_objects(bucket: Bucket, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
    """Every object under `prefix`, in the store's (UTF-8 binary) order, page by page."""
    if bucket.wire is not None and bucket.endpoint.list_version == 2:
        yield from _lean_listing(bucket.wire, prefix, start_after)
        return
    if bucket.endpoint.list_version == 1:
        # Old Ceph RGW: ListObjectsV2 pages repeat or skip keys; V1 markers work.
        pages = bucket.client.get_paginator("list_objects").paginate(
            Bucket=bucket.name, Prefix=prefix, Marker=start_after
        )
    else:
        pages = bucket.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.name, Prefix=prefix, StartAfter=start_after
        )
    for page in pages:
        for item in page.get("Contents", ()):
            yield ObjectInfo(
                key=item["Key"],
                size=int(item["Size"]),
                etag=strip_etag(item.get("ETag")),
                last_modified=item.get("LastModified"),
            )


def _lean_listing(wire: Wire, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
    token = None
    while True:
        entries, token = wire.list_page(prefix, start_after, token)
        for key, size, etag in entries:
            yield ObjectInfo(key=key, size=size, etag=strip_etag(etag))
        if token is False:
            return
        start_after = entries[-1][0]  # used only when the store gave no continuation token


__all__ = [
    "Bucket",
    "BotoCoreError",
    "ClientError",
    "ObjectInfo",
    "create_client",
    "head",
    "list_objects",
    "open_bucket",
]
