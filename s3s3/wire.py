"""A lean path for the hot single-request calls: GET, HEAD and single PUT of one object.

boto3 spends 1.3-1.5 ms of CPU on each request (endpoint rules, parameter
validation, event hooks, response parsing), and for small objects on a busy
machine that CPU, not the network or the store, bounds how fast s3s3 copies.
These three calls need none of it: the request is signed by botocore's own
SigV4 signer, with the client's own credentials and configuration, and sent
over a keep-alive connection per thread. The URL comes from botocore itself
(a presigned URL made once), so addressing style and AWS endpoints match the
client's exactly.

Only SigV4 endpoints with checksums off take this path; SigV2 (with its Ceph
and Swift fixes) and `checksums = true` stay with boto3. Transient answers
(5xx, SlowDown, broken connections) are retried as botocore's standard mode
would, up to the client's max_attempts with jittered backoff; what is left comes
back as botocore's ClientError or ConnectionClosedError, so the copy engine's
retries and error handling are the same on both paths.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, ConnectionClosedError

from s3s3.retry import backoff, transient_answer

Buffer = bytes | bytearray | memoryview
_PROBE = "s3s3-wire-probe"
# botocore's standard mode: up to 1 s before the second try, doubling, capped at 20 s.
REQUEST_BACKOFF = 1.0
REQUEST_BACKOFF_CAP = 20.0
# GetObject/HeadObject's names for the standard headers -> the HTTP header.
HEADER_NAMES = {
    "ContentType": "Content-Type",
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "Expires": "Expires",
}


class Wire:
    """Signed GET/HEAD/PUT of single objects in one bucket, over per-thread keep-alive connections."""

    @classmethod
    def from_client(cls, client: Any, bucket: str, credentials: Any, *, verify: bool | str = True) -> Wire:
        """The Wire for `bucket` as `client` addresses it (a presigned URL made once says where)."""
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE}, ExpiresIn=60)
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}{parts.path[: parts.path.index(_PROBE)]}"
        return cls(base, client.meta.region_name, client.meta.config, credentials, verify=verify)

    def __init__(self, base: str, region: str, config: Any, credentials: Any, *, verify: bool | str = True) -> None:
        """`base` is the bucket's URL ending in "/", `config` a botocore Config with payload signing off."""
        parts = urlsplit(base)
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path
        self.region = region
        self.config = config
        self.timeout = float(self.config.read_timeout)
        # What botocore's standard retry mode would do for the same request.
        retries = self.config.retries or {}
        # botocore counts retries in max_attempts (4 means 5 tries) and tries in total_max_attempts.
        self.max_attempts = int(retries.get("total_max_attempts") or retries.get("max_attempts", 2) + 1)
        self.credentials = credentials
        self.ssl_context = _ssl_context(verify) if parts.scheme == "https" else None
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, closed with the Wire

    def get(self, key: str, headers: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
        """GetObject: the response, its body still to be read (close it to drop a half-read body)."""
        return self._send("GET", key, b"", dict(headers or {}), "GetObject", stream=True)[0]

    def head(self, key: str, *, query: str = "", headers: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
        return self._send("HEAD", key, b"", dict(headers or {}), "HeadObject", query=query)[0]

    def put(self, key: str, body: bytes, headers: Mapping[str, str]) -> http.client.HTTPResponse:
        """PutObject of a body held in memory."""
        return self._send("PUT", key, body, dict(headers), "PutObject")[0]

    def upload_part(
        self, key: str, upload_id: str, number: int, chunks: Iterable[Buffer], length: int
    ) -> http.client.HTTPResponse:
        """UploadPart of a body streamed from `chunks` (`length` bytes in all), without Content-MD5.

        It is tried once: a stream cannot be sent again, so the caller starts
        the part over (a new read of the source) when it fails.
        """
        query = urlencode({"partNumber": number, "uploadId": upload_id}, quote_via=quote)
        headers = {"Content-Length": str(length)}
        return self._send("PUT", key, chunks, headers, "UploadPart", query=query, tries=1)[0]

    def create_multipart_upload(self, key: str, headers: Mapping[str, str]) -> str:
        """CreateMultipartUpload with the object's headers and metadata; return the upload ID."""
        response, answer = self._send("POST", key, b"", dict(headers), "CreateMultipartUpload", query="uploads=")
        upload_id = ElementTree.fromstring(answer).findtext("{*}UploadId")
        if not upload_id:
            raise ClientError(_error(response, b""), "CreateMultipartUpload")
        return upload_id

    def complete_multipart_upload(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> str:
        """CompleteMultipartUpload of (part number, ETag) pairs; return the ETag the store gave, if any."""
        body = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag></Part>" for n, etag in parts)
        data = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        query = urlencode({"uploadId": upload_id}, quote_via=quote)
        response, answer = self._send("POST", key, data, {}, "CompleteMultipartUpload", query=query)
        root = ElementTree.fromstring(answer) if answer.strip() else None
        if root is not None and root.tag.rpartition("}")[2] == "Error":
            # S3 answers 200 and only then finds the upload bad: the error is in the body.
            raise ClientError(_error(response, answer), "CompleteMultipartUpload")
        return (root.findtext("{*}ETag") or "") if root is not None else ""

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        query = urlencode({"uploadId": upload_id}, quote_via=quote)
        self._send("DELETE", key, b"", {}, "AbortMultipartUpload", query=query)

    def list_page(self, prefix: str, start_after: str, token: str | None) -> tuple[list[tuple[str, int, str]], Any]:
        """One ListObjectsV2 page: [(key, size, etag)], and what to continue from (False at the end).

        That is the next continuation token, or "" for a truncated page that
        gave none (continue after its last key).
        """
        params = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        if token:
            params["continuation-token"] = token
        elif start_after:
            params["start-after"] = start_after
        query = urlencode(params, quote_via=quote)
        root = ElementTree.fromstring(self._send("GET", "", b"", {}, "ListObjectsV2", query=query)[1])
        # The document's own namespace (S3's, or none): "{*}" lookups cost three times the CPU.
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        key, size, etag = ns + "Key", ns + "Size", ns + "ETag"
        # encoding-type=url, as botocore asks too: keys holding characters XML
        # cannot carry arrive escaped, and are unescaped here the way botocore does.
        entries = [
            (unquote_plus(item.findtext(key) or ""), int(item.findtext(size) or 0), item.findtext(etag))
            for item in root.iterfind(ns + "Contents")
        ]
        if root.findtext("{*}IsTruncated") != "true" or not entries:
            return entries, False
        return entries, root.findtext("{*}NextContinuationToken") or ""

    def _send(
        self,
        method: str,
        key: str,
        body: bytes | Iterable[Buffer],
        headers: dict[str, str],
        operation: str,
        query: str = "",
        tries: int = 0,
        stream: bool = False,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """Send a signed request; return the answer and its body (unread, b"", with `stream`).

        Transient failures (a refused, reset or closed connection, an answer
        cut short, a 5xx or throttling answer) are tried again with backoff,
        as botocore's standard mode would, up to `tries` tries in all.
        """
        path = self.prefix + quote(key, safe="/~") + (f"?{query}" if query else "")
        data = body if isinstance(body, bytes) else b""  # a stream is sent UNSIGNED-PAYLOAD, unread by the signer
        request = AWSRequest(method=method, url=f"{self.scheme}://{self.netloc}{path}", data=data, headers=headers)
        # The client's own configuration: with payload signing off, the body
        # is sent as UNSIGNED-PAYLOAD, exactly as boto3 would send it.
        request.context["client_config"] = self.config
        S3SigV4Auth(self.credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        headers = dict(request.headers.items())
        max_attempts = tries or self.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._exchange(method, path, body, headers)
                answer = b"" if stream and response.status < 300 else response.read()
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                stale = tries == 0 and attempt == 1 and isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError))
                if not stale and attempt >= max_attempts:
                    raise ConnectionClosedError(endpoint_url=f"{self.scheme}://{self.netloc}") from e
                if not stale:  # a kept-alive connection the server closed meanwhile: at once, on a new one
                    time.sleep(backoff(attempt, REQUEST_BACKOFF, REQUEST_BACKOFF_CAP))
                continue
            if response.status < 300:
                if response.will_close and not stream:  # the server closes it after this body
                    self._drop()
                elif response.will_close:
                    self._open.discard(self._local.connection)
                    self._local.connection = None
                return response, answer
            error = _error(response, answer)
            if attempt >= max_attempts or not transient_answer(response.status, error["Error"]["Code"]):
                raise ClientError(error, operation)
            time.sleep(backoff(attempt, REQUEST_BACKOFF, REQUEST_BACKOFF_CAP))

    def _exchange(
        self, method: str, path: str, body: bytes | Iterable[Buffer], headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        connection = self._connection()
        try:
            connection.request(method, path, body=body or None, headers=headers)
        except BaseException:
            # A stream's reader failed half-way: the request was cut short, so is its connection.
            self._drop()
            raise
        return connection.getresponse()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self.ssl_context is not None:
                connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            connection.connect()
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.connection = connection
            self._open.add(connection)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            self._open.discard(connection)
            connection.close()

    def close(self) -> None:
        """Close every thread's connection."""
        for connection in list(self._open):
            connection.close()
        self._open.clear()

    def __del__(self) -> None:
        self.close()

    def discard(self, response: http.client.HTTPResponse) -> None:
        """A body not read to its end cannot share its connection: close both."""
        if not response.isclosed():
            response.close()
            self._drop()


def response_metadata(response: http.client.HTTPResponse) -> dict[str, Any]:
    """The GetObject/HeadObject fields s3s3 uses, named as boto3 names them."""
    headers = response.headers
    fields: dict[str, Any] = {
        "ContentLength": int(headers.get("Content-Length") or 0),
        "ETag": headers.get("ETag", ""),
        "Metadata": {
            name[len("x-amz-meta-") :].lower(): value
            for name, value in headers.items()
            if name.lower().startswith("x-amz-meta-")
        },
    }
    if headers.get("Last-Modified"):
        fields["LastModified"] = parsedate_to_datetime(headers["Last-Modified"])
    for param, header in HEADER_NAMES.items():
        if headers.get(header) is not None:
            fields[param] = headers[header]
    return fields


def put_headers(args: Mapping[str, Any], md5_b64: str, length: int) -> dict[str, str]:
    """PutObject parameters (headers, Metadata, StorageClass) as HTTP headers."""
    return {"Content-MD5": md5_b64, "Content-Length": str(length), **object_headers(args)}


def object_headers(args: Mapping[str, Any]) -> dict[str, str]:
    """An object's parameters (headers, Metadata, StorageClass), as PutObject takes them, as HTTP headers."""
    headers = {}
    for param, header in HEADER_NAMES.items():
        if args.get(param) is not None:
            value = args[param]
            headers[header] = value if isinstance(value, str) else format_datetime(value, usegmt=True)
    for name, value in (args.get("Metadata") or {}).items():
        headers[f"x-amz-meta-{name}"] = value
    if args.get("StorageClass"):
        headers["x-amz-storage-class"] = args["StorageClass"]
    return headers


def _error(response: http.client.HTTPResponse, data: bytes) -> dict[str, Any]:
    code, message = "", ""
    if data:
        try:
            root = ElementTree.fromstring(data)
            code = root.findtext("Code") or ""
            message = root.findtext("Message") or ""
        except ElementTree.ParseError:
            message = data[:200].decode("utf-8", "replace")
    if not code:  # a HEAD's error has no body
        code = "NoSuchKey" if response.status == 404 else str(response.status)
    return {
        "Error": {"Code": code, "Message": message or response.reason},
        "ResponseMetadata": {"HTTPStatusCode": response.status, "HTTPHeaders": dict(response.headers.items())},
    }


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
