"""The raw floor: the least work an S3-to-S3 copier can do, to measure s3s3 against.

A pool of threads, each with its own keep-alive http.client connection per
endpoint; requests signed by botocore's own SigV4 signer with UNSIGNED-PAYLOAD;
ListObjectsV2 on both sides (a key of the same size at the destination is
skipped, which is what makes the no-op re-run cheap); every other key is a GET
streamed straight into a PUT in bounded chunks, or, above the part size, a
multipart upload whose parts are ranged GETs streamed into UploadPart. Nothing
is checked: no MD5, no retries beyond one reconnect of a stale keep-alive socket.

Usage: python bench/rawcopy.py JOB.json, where JOB.json holds
{"source": ENDPOINT, "dest": ENDPOINT, "workers": 16, "part_workers": 4, "part_size": 67108864}
and each ENDPOINT is {"endpoint_url", "access_key", "secret_key", "bucket", "prefix"}.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

CHUNK = 1024 * 1024  # bytes in flight per stream: what bounds memory
PART_SIZE = 64 * 1024 * 1024  # objects above this are copied as multipart uploads of parts this size
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_UNSIGNED = Config(s3={"payload_signing_enabled": False})  # botocore then signs "UNSIGNED-PAYLOAD"
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class RawCopyError(Exception):
    """Raised when the store answers a request with a status other than 2xx."""


@dataclass(frozen=True)
class Endpoint:
    """One side of the copy: where, who, which bucket and prefix."""

    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"

    @property
    def netloc(self) -> str:
        return urlsplit(self.endpoint_url).netloc


class _Connection(http.client.HTTPConnection):
    """http.client sends headers and a streamed body in separate writes: without
    TCP_NODELAY, Nagle and delayed ACKs stall each small PUT by ~40 ms."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_local = threading.local()


def _connection(endpoint: Endpoint, *, fresh: bool = False) -> http.client.HTTPConnection:
    """This thread's keep-alive connection to endpoint."""
    conns = _local.__dict__.setdefault("conns", {})
    if fresh and endpoint.netloc in conns:
        conns.pop(endpoint.netloc).close()
    if endpoint.netloc not in conns:
        conns[endpoint.netloc] = _Connection(endpoint.netloc, timeout=300)
    return conns[endpoint.netloc]


def _signed_headers(endpoint: Endpoint, method: str, path: str, params: dict[str, str],
                    headers: dict[str, str]) -> dict[str, str]:
    """Headers with botocore's SigV4 Authorization for this request (body not hashed)."""
    request = AWSRequest(method=method, url=f"{endpoint.endpoint_url}{path}", headers=headers, params=params)
    request.context["client_config"] = _UNSIGNED
    credentials = Credentials(endpoint.access_key, endpoint.secret_key)
    S3SigV4Auth(credentials, "s3", endpoint.region).add_auth(request)
    return dict(request.headers.items())


def _query(params: dict[str, str]) -> str:
    """The query string, encoded exactly as botocore encodes it for the signature."""
    if not params:
        return ""
    return "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def send(endpoint: Endpoint, method: str, key: str | None = None, *, params: dict[str, str] | None = None,
         headers: dict[str, str] | None = None, body: object = None) -> http.client.HTTPResponse:
    """Send one signed request on this thread's connection; raise RawCopyError unless 2xx.

    The response comes back unread: read it to the end before this thread sends again.
    """
    path = f"/{endpoint.bucket}" + (f"/{quote(key, safe='/~')}" if key is not None else "")
    params = params or {}
    signed = _signed_headers(endpoint, method, path, params, dict(headers or {}))
    for attempt in (1, 2):
        conn = _connection(endpoint, fresh=attempt == 2)
        try:
            conn.request(method, path + _query(params), body=body, headers=signed)
            resp = conn.getresponse()
            break
        except _STALE:
            # The server closed an idle keep-alive socket; retry only if no stream was consumed.
            if attempt == 2 or not (body is None or isinstance(body, bytes)):
                raise
    if resp.status // 100 != 2:
        raise RawCopyError(f"{method} {path}{_query(params)}: {resp.status} {resp.read()[:300]!r}")
    return resp


def fetch(endpoint: Endpoint, method: str, key: str | None = None, **kwargs: object) -> bytes:
    """Send one signed request and return the whole response body."""
    return send(endpoint, method, key, **kwargs).read()  # type: ignore[arg-type]


def list_keys(endpoint: Endpoint) -> dict[str, int]:
    """Every key under the prefix with its size, via ListObjectsV2 pages."""
    found: dict[str, int] = {}
    params = {"list-type": "2", "prefix": endpoint.prefix, "max-keys": "1000"}
    while True:
        root = ET.fromstring(fetch(endpoint, "GET", params=params))
        for item in root.iter(f"{_NS}Contents"):
            found[item.findtext(f"{_NS}Key", "")] = int(item.findtext(f"{_NS}Size", "0"))
        token = root.findtext(f"{_NS}NextContinuationToken")
        if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
            return found
        params = {**params, "continuation-token": token}


def _chunks(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    while chunk := resp.read(CHUNK):
        yield chunk


def _pipe(source: Endpoint, dest: Endpoint, src_key: str, dst_key: str, length: int,
          get_headers: dict[str, str], params: dict[str, str]) -> str:
    """GET source bytes and stream them into one PUT at the destination; return its ETag."""
    resp = send(source, "GET", src_key, headers=get_headers)
    put = send(dest, "PUT", dst_key, params=params, headers={"Content-Length": str(length)}, body=_chunks(resp))
    put.read()
    return put.getheader("ETag", "")


def copy_small(source: Endpoint, dest: Endpoint, key: str, size: int) -> None:
    """Copy a key with one GET streamed into one PUT."""
    _pipe(source, dest, key, _dest_key(source, dest, key), size, {}, {})


def copy_part(source: Endpoint, dest: Endpoint, key: str, upload_id: str, number: int, first: int,
              last: int) -> str:
    """Copy bytes first..last of a key as one part of a multipart upload; return the part's ETag."""
    params = {"partNumber": str(number), "uploadId": upload_id}
    return _pipe(source, dest, key, _dest_key(source, dest, key), last - first + 1,
                 {"Range": f"bytes={first}-{last}"}, params)


def _dest_key(source: Endpoint, dest: Endpoint, key: str) -> str:
    return dest.prefix + key[len(source.prefix):]


def create_upload(dest: Endpoint, key: str) -> str:
    """Start a multipart upload at the destination; return its id."""
    return ET.fromstring(fetch(dest, "POST", key, params={"uploads": ""})).findtext(f"{_NS}UploadId", "")


def complete_upload(dest: Endpoint, key: str, upload_id: str, etags: list[str]) -> None:
    """Finish a multipart upload from its parts' ETags, in part order."""
    parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1))
    body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    fetch(dest, "POST", key, params={"uploadId": upload_id}, body=body)


def copy_all(source: Endpoint, dest: Endpoint, *, workers: int = 16, part_workers: int = 4,
             part_size: int = PART_SIZE) -> int:
    """Copy every key under source.prefix that dest lacks (by size); return how many were copied.

    Parts of big objects get their own, smaller pool: on two loaded cores, 16
    parallel 64 MiB streams through two SeaweedFS were slower than 4.
    """
    with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(part_workers) as part_pool:
        src_listing = pool.submit(list_keys, source)
        have = pool.submit(list_keys, dest).result()
        todo = {k: s for k, s in src_listing.result().items() if have.get(_dest_key(source, dest, k)) != s}
        small: list[Future] = []
        big: list[tuple[str, str, list[Future]]] = []
        for key, size in todo.items():
            if size <= part_size:
                small.append(pool.submit(copy_small, source, dest, key, size))
                continue
            upload_id = create_upload(dest, _dest_key(source, dest, key))
            ranges = [(n, start, min(start + part_size, size) - 1)
                      for n, start in enumerate(range(0, size, part_size), start=1)]
            parts = [part_pool.submit(copy_part, source, dest, key, upload_id, *r) for r in ranges]
            big.append((key, upload_id, parts))
        for future in small:
            future.result()
        for key, upload_id, parts in big:
            complete_upload(dest, _dest_key(source, dest, key), upload_id, [p.result() for p in parts])
    return len(todo)


def main(argv: list[str]) -> int:
    """Run the job file named on the command line; print how many keys were copied."""
    with open(argv[1]) as f:
        job = json.load(f)
    source, dest = Endpoint(**job["source"]), Endpoint(**job["dest"])
    copied = copy_all(source, dest, workers=job.get("workers", 16), part_workers=job.get("part_workers", 4),
                      part_size=job.get("part_size", PART_SIZE))
    print(f"copied {copied} keys")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
