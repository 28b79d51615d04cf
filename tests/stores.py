"""Stores for the tests: a plain boto3 client to look at a bucket, and a Store that injects faults.

A fault is injected through the store interface, as production code sees it:
`FaultyStore` wraps the Store `open_store` made and lets a test record each
call, or change its arguments, its answer, or make it fail. Nothing patches
boto3, botocore or a module's globals.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from s3s3.config import Endpoint
from s3s3.errors import StoreError
from s3s3.store import Body, ObjectInfo, Page, Store
from s3s3.store.base import store_error
from s3s3.store.boto import create_client
from s3s3.store.facts import Facts
from tests.servers.base import Server

Opener = Callable[..., Store]  # a Store for a new bucket, or for the one named (tests/store/conftest.py)
Proceed = Callable[..., Any]  # call the wrapped store, with these (or other) arguments
Action = Callable[["Call", Proceed], Any]


@functools.cache
def _client(endpoint: Endpoint) -> Any:
    return create_client(endpoint)


def client_of(store: Store) -> Any:
    """A plain boto3 client for the store's endpoint: for a test to write and read back, not for s3s3."""
    return _client(store.endpoint)


def bucket_of(store: Store) -> str:
    return store.endpoint.bucket


@dataclass
class Call:
    """One call a FaultyStore saw: the operation, its arguments, and (once answered) its answer or error."""

    operation: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    answer: Any = None
    error: BaseException | None = None

    @property
    def key(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class FaultyStore:
    """A Store around another, doing what each operation's action says (by default: passing the call on)."""

    inner: Store
    actions: dict[str, list[Action]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:  # endpoint, facts, label, transport
        return getattr(self.inner, name)

    def on(self, operation: str, action: Action) -> FaultyStore:
        """Run `action(call, proceed)` for every `operation` call (the last added runs first)."""
        self.actions.setdefault(operation, []).append(action)
        return self

    def of(self, operation: str) -> list[Call]:
        """The calls of one operation so far."""
        return [c for c in self.calls if c.operation == operation]

    def _call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        call = Call(operation, args, kwargs)
        self.calls.append(call)
        proceed: Proceed = getattr(self.inner, operation)
        for action in self.actions.get(operation, []):
            proceed = _wrapped(action, call, proceed)
        try:
            call.answer = proceed(*args, **kwargs)
        except BaseException as e:
            call.error = e
            raise
        return call.answer

    def head(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("head", *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("put", *args, **kwargs)

    def create_upload(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("create_upload", *args, **kwargs)

    def upload_part(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("upload_part", *args, **kwargs)

    def complete_upload(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("complete_upload", *args, **kwargs)

    def abort_upload(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("abort_upload", *args, **kwargs)

    def list_uploads(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("list_uploads", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete", *args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete_many", *args, **kwargs)

    def list_page(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("list_page", *args, **kwargs)

    def list_versions_page(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("list_versions_page", *args, **kwargs)

    def versioning(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("versioning", *args, **kwargs)

    def object_lock(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("object_lock", *args, **kwargs)

    def put_lock(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("put_lock", *args, **kwargs)

    def copy_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("copy_object", *args, **kwargs)

    def get_tagging(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get_tagging", *args, **kwargs)

    def put_tagging(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("put_tagging", *args, **kwargs)

    def close(self) -> None:
        self.inner.close()


def _wrapped(action: Action, call: Call, proceed: Proceed) -> Proceed:
    def run(*args: Any, **kwargs: Any) -> Any:
        call.args, call.kwargs = args, kwargs  # as the action after this one passed them on
        return action(call, proceed)

    return run


# --- actions -----------------------------------------------------------------------------------


def passing(call: Call, proceed: Proceed) -> Any:
    """Pass the call on unchanged."""
    return proceed(*call.args, **call.kwargs)


def failing(
    error: Callable[[], BaseException], *, times: int | None = None, when: Callable[[Call], bool] | None = None
) -> Action:
    """Raise `error()` for matching calls (the first `times` of them, if given), instead of passing them on."""
    count = itertools.count()

    def act(call: Call, proceed: Proceed) -> Any:
        if (when is None or when(call)) and (times is None or next(count) < times):
            raise error()
        return proceed(*call.args, **call.kwargs)

    return act


def refusal(operation: str, code: str = "SlowDown", status: int = 503) -> Callable[[], StoreError]:
    """An S3 error answer, as both transports raise it."""
    return lambda: store_error(operation, status, code, "injected")


def answering(change: Callable[[Any], Any], *, when: Callable[[Call], bool] | None = None) -> Action:
    """Pass the call on, and hand back `change(answer)` for matching calls."""

    def act(call: Call, proceed: Proceed) -> Any:
        answer = proceed(*call.args, **call.kwargs)
        return change(answer) if when is None or when(call) else answer

    return act


def checking_content_md5(call: Call, proceed: Proceed) -> Any:
    """An action on put: a store that refuses a body unlike its Content-MD5 (BadDigest), as AWS, Ceph, Swift do."""
    args = list(call.args)
    data = args[1] if isinstance(args[1], bytes) else b"".join(bytes(block) for block in args[1])
    md5 = call.kwargs.get("md5")
    if md5 is not None and hashlib.md5(data).hexdigest() != md5:
        raise store_error("PutObject", 400, "BadDigest", "injected: the Content-MD5 you specified did not match")
    args[1] = data
    return proceed(*args, **call.kwargs)


def flipped_body(*, when: Callable[[Call], bool] | None = None) -> Action:
    """A GET whose body arrives with its first byte flipped: a corrupt read."""
    return answering(lambda answer: (answer[0], _Flipped(answer[1])), when=when)


def flipped_upload(*, when: Callable[[Call], bool] | None = None) -> Action:
    """An upload (put or upload_part) whose body reaches the store with its first byte flipped."""

    def act(call: Call, proceed: Proceed) -> Any:
        if when is not None and not when(call):
            return proceed(*call.args, **call.kwargs)
        args = list(call.args)
        body = args[-1]
        args[-1] = _flip(body) if isinstance(body, bytes) else _flip_first(body)
        return proceed(*args, **call.kwargs)

    return act


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:] if data else data


def _flip_first(chunks: Iterable[Any]) -> Iterator[bytes]:
    for i, chunk in enumerate(chunks):
        data = bytes(chunk)
        yield _flip(data) if i == 0 else data


class _Flipped:
    """A Body whose first byte is flipped."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.first = True

    def read(self, size: int = -1) -> bytes:
        data = self.body.read(size)
        if self.first and data:
            self.first = False
            return _flip(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        n = self.body.readinto(buffer)
        if self.first and n:
            self.first = False
            buffer[0] ^= 0xFF
        return n

    def close(self) -> None:
        self.body.close()


def endpoint_for(server: Server, bucket: str, **extra: str) -> Endpoint:
    """An Endpoint for `bucket` on `server`, path style, as a config file section would give it."""
    from s3s3.config import endpoint_from_options

    options = {
        "endpoint_url": server.endpoint_url,
        "aws_access_key_id": server.access_key,
        "aws_secret_access_key": server.secret_key,
        "bucket_name": bucket,
        "addressing_style": "path",
        **extra,
    }
    if server.ca_bundle:
        options["ca_bundle"] = server.ca_bundle
    return endpoint_from_options("contract", options)


def open_with(endpoint: Endpoint, transport: str) -> Store:
    """The endpoint's Store on the transport named ("http" or "boto3"), whichever open_store would choose."""
    from s3s3.store import open_store, store_name
    from s3s3.store.boto import BotoStore
    from s3s3.store.facts import Facts

    if transport == "boto3":
        return BotoStore(endpoint, Facts(store_name(endpoint)))
    store = open_store(endpoint)
    assert store.transport == transport, f"{endpoint.name} is not on the {transport} transport"
    return store


# --- objects at a store, written and read back through a plain boto3 client ---------------------


def read_back(store: Store, key: str) -> tuple[bytes, dict[str, Any]]:
    """The bytes a GET of `key` returns, and the rest of its GetObject answer."""
    response = client_of(store).get_object(Bucket=bucket_of(store), Key=key)
    return response["Body"].read(), response


def is_absent(store: Store, key: str) -> bool:
    """True when the store holds nothing under `key`."""
    from botocore.exceptions import ClientError

    try:
        client_of(store).head_object(Bucket=bucket_of(store), Key=key)
    except ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey")
    return False


def pending_uploads(store: Store) -> list[dict[str, Any]]:
    """The multipart uploads begun at the store and neither completed nor aborted."""
    return list(client_of(store).list_multipart_uploads(Bucket=bucket_of(store)).get("Uploads", []))


def put_in_parts(
    store: Store, key: str, data: bytes, part: int = 5 * 1024 * 1024, metadata: dict[str, str] | None = None
) -> str:
    """Put `data` as a multipart upload of `part`-byte parts, so its ETag is `...-N`; return that ETag."""
    client, bucket = client_of(store), bucket_of(store)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata or {})["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part), start=1):
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data[start : start + part]
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    done = client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                            MultipartUpload={"Parts": parts})  # fmt: skip
    return str(done["ETag"]).strip('"')


def first(times: int = 1, *, where: Callable[[Call], bool] | None = None) -> Callable[[Call], bool]:
    """A `when` for an action: true for the first `times` calls (of those `where` admits, if given)."""
    count = itertools.count()
    return lambda call: (where is None or where(call)) and next(count) < times


class ListedStore:
    """A store whose only skill is listing these keys, in this order, over two pages."""

    transport = "test"

    def __init__(self, endpoint: Endpoint, keys: list[str]) -> None:
        self.endpoint = endpoint
        self.facts = Facts(endpoint.name)
        self.objects = [ObjectInfo(k, len(k), hashlib.md5(k.encode()).hexdigest()) for k in keys]

    @property
    def label(self) -> str:
        return self.endpoint.label

    def list_page(self, prefix: str, *, start_after: str = "", token: str | None = None, delimiter: str = "") -> Page:
        half = len(self.objects) // 2
        if token is None:
            return Page(self.objects[:half], truncated=True, token="second")
        return Page(self.objects[half:])


class SortedStore:
    """A store that lists these keys as S3 does: in order, by prefix, StartAfter and delimiter, 1000 a page.

    It counts the pages it served (`pages`), to measure what a listing costs.
    """

    transport = "test"

    def __init__(self, endpoint: Endpoint, keys: Iterable[str], page_size: int = 1000) -> None:
        self.endpoint = endpoint
        self.facts = Facts(endpoint.name)
        self.keys = sorted(keys, key=lambda k: k.encode("utf-8", "surrogatepass"))
        self._sort = [k.encode("utf-8", "surrogatepass") for k in self.keys]
        self.page_size = page_size
        self.pages = 0

    @property
    def label(self) -> str:
        return self.endpoint.label

    def list_page(self, prefix: str, *, start_after: str = "", token: str | None = None, delimiter: str = "") -> Page:
        self.pages += 1
        after = max(token or start_after, prefix, key=lambda k: k.encode("utf-8", "surrogatepass"))
        index = bisect.bisect_right(self._sort, after.encode("utf-8", "surrogatepass"))
        if after == prefix and prefix in self.keys:
            index -= 1  # the prefix itself is a key under it
        elif delimiter and after != prefix and after.endswith(delimiter):  # after a common prefix: past it all
            index = bisect.bisect_left(self._sort, (after[:-1] + chr(ord(after[-1]) + 1)).encode())
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        last = ""
        while index < len(self.keys) and len(objects) + len(prefixes) < self.page_size:
            key = self.keys[index]
            if not key.startswith(prefix):
                break
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                prefixes.append(common)
                last = common
                # on past every key under it
                index = bisect.bisect_left(self._sort, (common[:-1] + chr(ord(common[-1]) + 1)).encode())
                continue
            objects.append(ObjectInfo(key, len(key), hashlib.md5(key.encode()).hexdigest()))
            last = key
            index += 1
        more = index < len(self.keys) and self.keys[index].startswith(prefix)
        return Page(objects, prefixes, truncated=more, token=last if more else None)


def listed(keys: list[str], name: str = "source", prefix: str = "") -> Store:
    """A ListedStore named `name` (its bucket too), under `prefix`."""
    return ListedStore(Endpoint(name=name, bucket=name, prefix=prefix), keys)  # type: ignore[return-value]


def mtime_of(store: Store, key: str) -> str:
    """The `mtime` s3s3 records for a copy of `key`, from `store`: its Last-Modified, in Unix seconds."""
    modified = client_of(store).head_object(Bucket=bucket_of(store), Key=key)["LastModified"]
    return f"{modified.timestamp():.9f}"
