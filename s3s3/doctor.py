"""`s3s3 doctor`: probe each configured endpoint and say which options its store needs.

It talks to each store through a boto3 client of its own, not through the
store interface (s3s3.store): its probes try on purpose what s3s3 itself
never sends (boto3's default checksums, a wrong Content-MD5, SigV2 against
SigV4, virtual-hosted addressing) and record the raw answers. Full-object
checksums are the exception: s3s3 sends them, so the probe the copies make
(s3s3.store.probes.checksum_support) is asked, through the store interface;
so are versioning, Object Lock and ListObjectVersions, as the copies ask them.

Every probe writes under a scratch prefix `s3s3-doctor-<random>/` in the
configured bucket and everything written there is deleted afterwards, also
when a probe fails. Probes use clients that try each request once: a refusal
(even a 500) is the answer being looked for, not a reason to retry. A store
that does not accept a connection within the check's timeout is reported
unreachable, and probed no further.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as CannotConnect  # no connection (refused, timed out, TLS failed)

from s3s3.config import MIN_PART, Config, Endpoint, MiB, ObjectLock
from s3s3.config import Versions as VersionsOption
from s3s3.copy.plan import PROVEN_PUT_MAX
from s3s3.errors import EXIT_FAILED, EXIT_OK, ConfigError, StoreError
from s3s3.store import CHECKSUM_BYTES, Versioning, b64_md5, multipart_etag, open_store, strip_etag
from s3s3.store.boto import CONNECT_TIMEOUT, create_client
from s3s3.store.probes import ChecksumSupport, checksum_support

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, PaginatorConfigTypeDef

logger = logging.getLogger(__name__)

SIGNATURES = ("s3v4", "s3")
METADATA_SIZES = (256, 1024, 2048)  # metadata value sizes tried, in bytes
LISTED_KEYS = 5  # keys written for the paging probe, listed two at a time
PAGE_SIZE = 2
S3_ERRORS = (BotoCoreError, ClientError)
Clients = Callable[[Endpoint], "S3Client"]  # a probe's boto3 client for an endpoint: one try per request


@dataclass
class Report:
    """What the probes of one endpoint found, line by line, and what to configure."""

    endpoint: Endpoint
    lines: list[tuple[str, str]] = field(default_factory=list)  # (feature, finding)
    recommended: dict[str, str] = field(default_factory=dict)  # option -> value
    usable: bool = False

    def add(self, feature: str, finding: str) -> None:
        self.lines.append((feature, finding))

    def render(self) -> str:
        ep = self.endpoint
        out = [f"[{ep.name}] bucket {ep.bucket!r} at {ep.endpoint_url or 'AWS'}"]
        width = max((len(f) for f, _ in self.lines), default=0)
        out += [f"  {feature.ljust(width)}  {finding}" for feature, finding in self.lines]
        out.append(f"  usable: {'yes' if self.usable else 'no'}")
        if self.recommended:
            out.append(f"  recommended for [{ep.name}]:")
            out += [f"    {option} = {value}" for option, value in self.recommended.items()]
        return "\n".join(out)


@dataclass(frozen=True)
class Versions:
    """A bucket's versions and Object Lock, as doctor found them (None: it could not say)."""

    versioning: Versioning | None
    object_lock: bool | None
    listing: str | None  # why ListObjectVersions failed; None when it works


def run(config: Config, sections: list[str], *, check_timeout: float = CONNECT_TIMEOUT) -> int:
    """Probe the endpoints named by `sections` (all when empty), print the reports; exit 0 if all are usable.

    A store that has not accepted a connection after `check_timeout` seconds is unreachable.
    """
    endpoints = _select(config, sections)
    # What a destination should keep of versions and Object Lock depends on what the source has.
    source = None
    if any(ep is not config.source for ep in endpoints):
        source = _versions(config.source, check_timeout=check_timeout)
    usable = True
    for endpoint in endpoints:
        report = probe(endpoint, check_timeout=check_timeout, source=None if endpoint is config.source else source)
        print(report.render(), flush=True)
        usable = usable and report.usable
    return EXIT_OK if usable else EXIT_FAILED


def probe(endpoint: Endpoint, *, check_timeout: float = CONNECT_TIMEOUT, source: Versions | None = None) -> Report:
    """Run every probe against `endpoint` in a scratch prefix, cleaning up after itself.

    `source` is what the source bucket has of versions and Object Lock, where
    `endpoint` is a destination: its options are recommended against it.
    """
    report = Report(endpoint)
    scratch = f"s3s3-doctor-{uuid.uuid4().hex[:12]}/"
    clients: Clients = functools.partial(create_client, max_attempts=0, connect_timeout=check_timeout)
    logger.debug("Probing [%s] bucket %r at %s, under %s", endpoint.name, endpoint.bucket,
                 endpoint.endpoint_url or "AWS", scratch)  # fmt: skip
    unreachable = _unreachable(clients(endpoint), endpoint.bucket, scratch)
    if unreachable:
        report.add("connection", f"unreachable: {unreachable}")
        return report
    working = _probe_signatures(endpoint, scratch, report, clients)
    if working is None:
        report.add("verdict", "no signature version can read and write this bucket")
        return report
    client = clients(working)
    try:
        _probe_addressing(working, scratch, report, clients)
        _probe_features(working, client, scratch, report, clients)
        _probe_versions(working, scratch, report, source, check_timeout)
    finally:
        _clean(client, working.bucket, scratch, report)
    return report


def _select(config: Config, sections: list[str]) -> list[Endpoint]:
    endpoints = {ep.name: ep for ep in (config.source, *config.dests)}
    unknown = [name for name in sections if name not in endpoints]
    if unknown:
        raise ConfigError(f"{config.path}: no section {', '.join(map(repr, unknown))}; it has {', '.join(endpoints)}")
    return [endpoints[name] for name in sections] if sections else list(endpoints.values())


def _attempt(call: Callable[[], object]) -> str | None:
    """None when `call` succeeds, else a one-line description of the refusal."""
    try:
        call()
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return f"{e.response.get('Error', {}).get('Code') or status or 'error'} (HTTP {status})"
    except BotoCoreError as e:
        return " ".join(str(e).split())[:160]
    return None


def _round_trip(client: S3Client, bucket: str, key: str) -> None:
    """List, write, read back: bucket-level and object-level calls both."""
    client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    body = b"s3s3 doctor"
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=b64_md5(hashlib.md5(body).hexdigest()))
    client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _unreachable(client: S3Client, bucket: str, scratch: str) -> str | None:
    """Why the store cannot be connected to, as configured; None when it answers (whatever it answers)."""
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=scratch, MaxKeys=1)
    except CannotConnect as e:  # no connection, or no TLS one: nothing can be learnt of signatures
        return _one_line(e)
    except S3_ERRORS:
        pass  # an answer, even a refusal: the probes below say what it means
    return None


def _probe_signatures(endpoint: Endpoint, scratch: str, report: Report, clients: Clients) -> Endpoint | None:
    """Try SigV4 and SigV2 (path style where virtual is not asked for); return the endpoint that works."""
    style = endpoint.addressing_style if endpoint.addressing_style == "virtual" else "path"
    works: list[str] = []
    for version in SIGNATURES:
        candidate = replace(endpoint, signature_version=version, addressing_style=style)
        client = clients(candidate)
        logger.debug("Trying signature %s with %s addressing", version, style)
        problem = _attempt(functools.partial(_round_trip, client, endpoint.bucket, f"{scratch}sig-{version}"))
        report.add(f"signature {version}", "works" if problem is None else f"fails: {problem}")
        if problem is None:
            works.append(version)
    if not works:
        return None
    version = endpoint.signature_version if endpoint.signature_version in works else works[0]
    report.recommended["signature_version"] = version
    return replace(endpoint, signature_version=version, addressing_style=style)


def _probe_addressing(endpoint: Endpoint, scratch: str, report: Report, clients: Clients) -> None:
    results = {}
    for style in ("path", "virtual"):
        if style == "virtual" and _is_ip(endpoint.endpoint_url):
            report.add("addressing virtual", "not testable on an IP endpoint")
            continue
        candidate = replace(endpoint, addressing_style=style)
        client = clients(candidate)
        logger.debug("Trying %s addressing", style)
        results[style] = _attempt(functools.partial(_round_trip, client, endpoint.bucket, f"{scratch}addr-{style}"))
        report.add(f"addressing {style}", "works" if results[style] is None else f"fails: {results[style]}")
    if results.get("path") is None:
        report.recommended["addressing_style"] = "path"
    elif "virtual" in results and results["virtual"] is None:
        report.recommended["addressing_style"] = "virtual"


def _probe_features(endpoint: Endpoint, client: S3Client, scratch: str, report: Report, clients: Clients) -> None:
    report.usable = True
    _probe_checksums(endpoint, scratch, report, clients)
    _probe_content_md5(client, endpoint.bucket, scratch, report)
    _probe_multipart(client, endpoint.bucket, scratch, report)
    _probe_listing(client, endpoint, scratch, report)
    _probe_metadata(client, endpoint.bucket, scratch, report)
    _probe_storage_class(client, endpoint, scratch, report)
    _probe_backup_options(client, endpoint, scratch, report)
    _probe_full_object_checksums(endpoint, scratch, report)


def _probe_checksums(endpoint: Endpoint, scratch: str, report: Report, clients: Clients) -> None:
    """boto3's defaults (CRC32, aws-chunked bodies) on a single PUT and a part."""
    client = clients(replace(endpoint, checksums=True))
    bucket, key = endpoint.bucket, f"{scratch}checksums"
    problem = _attempt(lambda: client.put_object(Bucket=bucket, Key=key, Body=b"checksummed"))
    if problem is None:
        report.add("boto3 default checksums", "accepted")
        report.recommended["checksums"] = "False  # True also works here"
    else:
        report.add("boto3 default checksums", f"refused: {problem}")
        report.recommended["checksums"] = "False"


def _probe_content_md5(client: S3Client, bucket: str, scratch: str, report: Report) -> None:
    wrong = b64_md5(hashlib.md5(b"something else").hexdigest())
    key = f"{scratch}bad-md5"
    problem = _attempt(lambda: client.put_object(Bucket=bucket, Key=key, Body=b"payload", ContentMD5=wrong))
    if problem is None:
        report.add("Content-MD5", "NOT enforced: a wrong MD5 was accepted (copies to it are hashed on the way, and "
                                  "checked by reading back)")
        report.recommended["verify_md5"] = "True"
    else:
        report.add("Content-MD5", f"enforced (a wrong MD5 is refused: {problem}): an object written with one PUT "
                                  f"goes to it in one streamed PUT, unhashed, up to {PROVEN_PUT_MAX // MiB} MiB")


def _probe_multipart(client: S3Client, bucket: str, scratch: str, report: Report) -> None:
    key = f"{scratch}multipart"
    parts = [b"m" * MIN_PART, b"n"]
    try:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        done: list[CompletedPartTypeDef] = []
        for number, data in enumerate(parts, start=1):
            md5 = hashlib.md5(data).hexdigest()
            answer = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=b64_md5(md5)
            )
            done.append({"PartNumber": number, "ETag": answer["ETag"]})
        completed = client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
        etag = strip_etag(client.head_object(Bucket=bucket, Key=key)["ETag"])
    except S3_ERRORS as e:
        report.add("multipart upload", f"fails: {_one_line(e)}")
        report.recommended["multipart"] = "False"
        return
    expected = multipart_etag([hashlib.md5(p).digest() for p in parts])
    shape = "md5-of-md5s-N" if etag == expected else f"other ({etag})"
    note = "; CompleteMultipartUpload answered with an empty ETag" if not strip_etag(completed.get("ETag")) else ""
    report.add("multipart ETag", shape + note)


def _probe_listing(client: S3Client, endpoint: Endpoint, scratch: str, report: Report) -> None:
    """Write a few keys, list them a page of two at a time with V2 and V1: each must come once, in order."""
    bucket, prefix = endpoint.bucket, f"{scratch}ls/"
    keys = [f"{prefix}{i:02d}" for i in range(LISTED_KEYS)]
    try:
        for key in keys:
            client.put_object(Bucket=bucket, Key=key, Body=b"")
        paging: PaginatorConfigTypeDef = {"PageSize": PAGE_SIZE}  # each page asks for MaxKeys = PAGE_SIZE
        v2_lister = client.get_paginator("list_objects_v2")
        v2_pages = v2_lister.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig=paging)
        v1_pages = client.get_paginator("list_objects").paginate(Bucket=bucket, Prefix=prefix, PaginationConfig=paging)
        v2, v1 = _listed(v2_pages), _listed(v1_pages)
    except S3_ERRORS as e:
        report.add("listing", f"fails: {_one_line(e)}")
        report.usable = False
        return
    report.add("ListObjectsV2 paging", "correct" if v2 == keys else f"BROKEN (saw {len(v2)} keys for {len(keys)})")
    report.add("ListObjects (V1) paging", "correct" if v1 == keys else f"BROKEN (saw {len(v1)} keys for {len(keys)})")
    if v2 == keys:
        report.recommended["list_version"] = "2"
    elif v1 == keys:
        report.recommended["list_version"] = "1"
    else:
        report.usable = False


def _listed(pages: Iterable[Mapping[str, Any]]) -> list[str]:
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def _probe_metadata(client: S3Client, bucket: str, scratch: str, report: Report) -> None:
    """The largest user-metadata value accepted, and what happens to `_` in metadata keys."""
    largest, refusal = 0, ""
    for size in METADATA_SIZES:
        key = f"{scratch}meta-{size}"
        metadata = {"probe": "v" * size}
        problem = _attempt(functools.partial(client.put_object, Bucket=bucket, Key=key, Body=b"", Metadata=metadata))
        if problem is not None:
            refusal = f" ({size} refused: {problem})"
            break
        largest = size
    if largest:
        report.add("metadata values", f"{largest} bytes accepted{refusal or ' (the largest tried)'}")
    else:
        report.add("metadata values", f"none of {METADATA_SIZES[0]} bytes accepted{refusal}")
    key = f"{scratch}meta-underscore"
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"", Metadata={"s3s3_probe": "x"})
        names = set(client.head_object(Bucket=bucket, Key=key)["Metadata"])
    except S3_ERRORS as e:
        report.add("metadata keys", f"fails: {_one_line(e)}")
        return
    if "s3s3_probe" in names:
        found = "kept"
    else:
        found = "turned into '-'" if "s3s3-probe" in names else f"lost ({sorted(names)})"
    report.add("'_' in metadata keys", found)


def _probe_storage_class(client: S3Client, endpoint: Endpoint, scratch: str, report: Report) -> None:
    storage_class = endpoint.storage_class or "STANDARD_IA"
    key = f"{scratch}storage-class"
    problem = _attempt(
        lambda: client.put_object(Bucket=endpoint.bucket, Key=key, Body=b"", StorageClass=storage_class)  # type: ignore[arg-type]
    )
    report.add(f"storage class {storage_class}", "accepted" if problem is None else f"refused: {problem}")
    if problem is not None and endpoint.storage_class:
        report.recommended["storage_class"] = "(remove it: the store refuses it)"


def _probe_backup_options(client: S3Client, endpoint: Endpoint, scratch: str, report: Report) -> None:
    """Tags, encryption at rest and a canned ACL on a PUT (the configured ones, or AES256 and
    bucket-owner-full-control); and whether the store keeps the tags it accepted."""
    bucket, key = endpoint.bucket, f"{scratch}tagged"
    problem = _attempt(functools.partial(client.put_object, Bucket=bucket, Key=key, Body=b"", Tagging="s3s3=probe"))
    if problem is None:
        kept = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        report.add("object tags", "kept" if kept else "accepted, but not kept")
    else:
        report.add("object tags", f"refused: {problem}")
        report.recommended["tags"] = "False  # the store refuses tagged PUTs"
    sse = endpoint.sse or "AES256"
    extra: dict[str, Any] = {"ServerSideEncryption": sse}
    if endpoint.sse_kms_key_id:
        extra["SSEKMSKeyId"] = endpoint.sse_kms_key_id
    problem = _attempt(functools.partial(client.put_object, Bucket=bucket, Key=f"{scratch}sse", Body=b"", **extra))
    report.add("encryption at rest", f"{sse} accepted" if problem is None else f"{sse} refused: {problem}")
    if problem is not None and endpoint.sse:
        report.recommended["sse"] = "(remove it: the store refuses it)"
    acl = endpoint.acl or "bucket-owner-full-control"
    canned: dict[str, Any] = {"ACL": acl}  # one of config.CANNED_ACLS, as the configuration checked
    problem = _attempt(functools.partial(client.put_object, Bucket=bucket, Key=f"{scratch}acl", Body=b"", **canned))
    report.add("canned ACL", f"{acl} accepted" if problem is None else f"{acl} refused: {problem}")
    if problem is not None and endpoint.acl:
        report.recommended["acl"] = "(remove it: the store refuses it)"


def _probe_full_object_checksums(endpoint: Endpoint, scratch: str, report: Report) -> None:
    """What the store does with each full-object checksum (x-amz-checksum-<algorithm>) sent with a PUT."""
    store = open_store(endpoint)
    try:
        found: dict[ChecksumSupport, list[str]] = {}
        for algorithm in CHECKSUM_BYTES:
            support = checksum_support(store, algorithm, key=f"{scratch}checksum-{algorithm}")
            found.setdefault(support, []).append(algorithm)
    except StoreError as e:
        report.add("full-object checksums", f"fails: {_one_line(e)}")
        return
    finally:
        store.close()
    said = {
        ChecksumSupport.CHECKED: "checked (a body unlike it is refused) and kept",
        ChecksumSupport.KEPT: "kept, not checked",
        ChecksumSupport.IGNORED: "ignored (copies to it send none; audits cannot compare them)",
    }
    report.add("full-object checksums", "; ".join(f"{said[s]}: {', '.join(found[s])}" for s in said if s in found))


def _versions(endpoint: Endpoint, prefix: str = "", *, check_timeout: float = CONNECT_TIMEOUT) -> Versions:
    """The bucket's versioning and Object Lock, and whether ListObjectVersions works (under `prefix`).

    Each request is tried once, as every probe's: a refusal is an answer.
    """
    store = open_store(endpoint, check_timeout=check_timeout)
    try:
        versioning = _asked(store.versioning)
        lock = _asked(store.object_lock)
        try:
            store.list_versions_page(prefix or endpoint.prefix, max_keys=1)
            listing = None
        except StoreError as e:
            listing = _one_line(e)
    finally:
        store.close()
    return Versions(versioning, lock, listing)


def _asked(question: Callable[[], Any]) -> Any:
    try:
        return question()
    except StoreError as e:
        logger.debug("Could not ask: %s", e)
        return None


def _probe_versions(
    endpoint: Endpoint, scratch: str, report: Report, source: Versions | None, check_timeout: float
) -> None:
    """Versioning, Object Lock and ListObjectVersions; for a destination, what its options should say of them."""
    found = _versions(endpoint, scratch, check_timeout=check_timeout)
    state = {Versioning.ENABLED: "on", Versioning.SUSPENDED: "suspended (versions written while on are kept)",
             Versioning.OFF: "off", None: "unknown (GetBucketVersioning refused)"}  # fmt: skip
    report.add("versioning", state[found.versioning])
    report.add("Object Lock", {True: "on", False: "off", None: "unknown"}[found.object_lock])
    report.add("ListObjectVersions", "works" if found.listing is None else f"fails: {found.listing}")
    if source is None:
        return
    bucket, versions = endpoint.bucket, endpoint.versions
    if versions is VersionsOption.ALL and (found.versioning is not Versioning.ENABLED or found.listing):
        report.recommended["versions"] = f"latest  # or enable versioning on {bucket}"
    elif versions is VersionsOption.LATEST and source.versioning is Versioning.ENABLED:
        need = "" if found.versioning is Versioning.ENABLED else f"; enable versioning on {bucket} first"
        report.recommended["versions"] = f"all  # to keep every version the source keeps, not the current one{need}"
    if endpoint.object_lock is ObjectLock.COPY and source.object_lock and found.object_lock is False:
        report.recommended["object_lock"] = (
            f"ignore  # or enable Object Lock on {bucket}: the source has Object Lock, and its locked versions "
            "fail to copy to a bucket without it"
        )


def _clean(client: S3Client, bucket: str, scratch: str, report: Report) -> None:
    """Delete every object and abort every upload under the scratch prefix."""
    left: list[str] = []
    try:
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=scratch).get("Uploads", ())
        for upload in uploads:
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in client.get_paginator("list_objects").paginate(Bucket=bucket, Prefix=scratch):
            for item in page.get("Contents", ()):
                if _attempt(functools.partial(client.delete_object, Bucket=bucket, Key=item["Key"])) is not None:
                    left.append(item["Key"])
    except S3_ERRORS as e:
        report.add("clean-up", f"incomplete: {_one_line(e)}; delete {scratch} by hand")
        return
    if left:
        report.add("clean-up", f"could not delete {len(left)} keys under {scratch}")


def _is_ip(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]
