"""Parse one announcement (a Redis message, list element, stream field or webhook body).

The format is decided by shape, never by configuration:

- text whose first non-space character is ``{`` or ``[`` is a JSON message: it
  must parse and be one of the shapes below, or it is rejected ("broken JSON",
  "unknown JSON message shape"): a store's event cut short, or a misrouted
  message, is far likelier than a key that starts with a bracket (such a key
  is announced in the JSON form, ``{"key": "{odd} name"}``);
- any other UTF-8 text is one bare key name, announced as a put.

JSON shapes: ``{"key": ..., "event": "put", "version_id": ..., "bucket": ...}``
(the events are `Change`'s; "delete" naming a version is a "purge", as S3 has
it); S3 event notifications ``{"Records": [...]}`` from AWS, MinIO and Ceph
RGW, also inside an SNS envelope, a MinIO webhook body or MinIO's Redis
``access`` list; and the AWS ``s3:TestEvent``, which yields no events. A
record's ``s3.object.versionId`` is kept: in a versioned bucket it names the
version (or delete marker) the event made or removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from s3s3.errors import BadMessage

MAX_KEY_BYTES = 1024  # S3's limit on the UTF-8 length of a key
MAX_VERSION_ID = 1024  # longer than any store's version IDs (AWS: 32 characters; Ceph: 32; MinIO: a UUID)


class Change(StrEnum):
    """What an announcement says happened to its key at the source (the JSON form's "event")."""

    PUT = "put"  # written: copy it
    DELETE = "delete"  # deleted: delete it where propagate_deletes says so
    # In a versioned bucket. A destination keeping every version replays the key's history for a
    # marker (as for a put or a delete); one keeping the latest takes a marker as a delete, and a
    # version deleted for good as a change to whatever the source holds now.
    MARKER = "marker"  # a delete marker made (ObjectRemoved:DeleteMarkerCreated): the key reads as deleted
    PURGE = "purge"  # one version deleted for good (ObjectRemoved:Delete with a versionId): history rewritten


_EVENTS = ", ".join(repr(str(c)) for c in tuple(Change)[:-1]) + f" or {str(tuple(Change)[-1])!r}"


class Origin(StrEnum):
    """The format an announcement came in."""

    KEY = "key"  # a bare key name
    JSON = "json"  # s3s3's JSON form, {"key": ...}
    AWS = "aws"  # an S3 event notification from AWS
    MINIO = "minio"  # ... from MinIO
    CEPH = "ceph"  # ... from Ceph RGW


@dataclass(frozen=True)
class Event:
    """One thing that happened to one key at the source."""

    key: str
    action: Change
    event_time: float | None = None  # epoch seconds when the store says, else None
    size: int | None = None
    etag: str | None = None  # without quotes, as the event gives it
    source: Origin = Origin.KEY
    version_id: str | None = None  # the version (or delete marker) it made or removed, in a versioned bucket


def _form_decode(key: str) -> str:
    return unquote_plus(key, errors="strict")


# eventSource -> (Event.source, how that store encodes s3.object.key).
_STORES: dict[str, tuple[Origin, Callable[[str], str]]] = {
    # AWS form-encodes the key: "red flower.jpg" arrives as "red+flower.jpg".
    "aws:s3": (Origin.AWS, _form_decode),
    # MinIO escapes with Go's url.QueryEscape (cmd/event-notification.go, ToEvent),
    # which is form encoding too: space is "+", "+" is "%2B", "/" is "%2F". Its own
    # Redis namespace target decodes with url.QueryUnescape, so unquote_plus it is;
    # plain unquote would leave "+" where the key has a space.
    "minio:s3": (Origin.MINIO, _form_decode),
    # Ceph RGW sends the key raw: decoding would corrupt keys holding "+" or "%".
    "ceph:s3": (Origin.CEPH, str),
}


def parse(raw: bytes, source_bucket: str) -> list[Event]:
    """Return the events one announcement carries, in order.

    Raises BadMessage(reason) for input that must be rejected; returns [] for
    messages to acknowledge and ignore (AWS s3:TestEvent).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadMessage(f"not UTF-8 at byte {e.start}: {_show(raw)}") from None
    if is_json(text):
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise BadMessage(f"broken JSON ({str(e).partition(':')[0]}): {_show(text)}") from None
        return _parse_json(doc, source_bucket, text)
    # redis-cli and echo add a newline; every other character is part of the key.
    key = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    return [Event(_checked_key(key), Change.PUT)]


def is_json(text: str) -> bool:
    """Whether an announcement is meant as JSON: its first character, past spaces, opens an object or a list."""
    return text.lstrip()[:1] in ("{", "[")


def _parse_json(doc: Any, source_bucket: str, text: str, in_sns: bool = False) -> list[Event]:
    if isinstance(doc, list) and doc and all(_is_access_entry(e) for e in doc):
        # MinIO's Redis target, format "access": [{"Event": [records], "EventTime": ...}]
        return _records([r for e in doc for r in e["Event"]], source_bucket)
    if isinstance(doc, dict):
        if "Records" in doc:  # AWS, Ceph, MinIO (whose webhook adds EventName and Key)
            return _records(doc["Records"], source_bucket)
        if doc.get("Event") == "s3:TestEvent":  # AWS sends one when notifications are set up
            return []
        if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str) and not in_sns:
            return _parse_sns(doc["Message"], source_bucket)
        if "key" in doc:
            return [_simple(doc, source_bucket)]
    raise BadMessage(f"unknown JSON message shape: {_show(text)}")


def _is_access_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("Event"), list)


def _parse_sns(message: str, source_bucket: str) -> list[Event]:
    """Unwrap AWS S3 -> SNS -> SQS/HTTP: the S3 notification is a JSON string."""
    try:
        doc = json.loads(message)
    except (ValueError, RecursionError):
        raise BadMessage(f"SNS Message is not JSON: {_show(message)}") from None
    return _parse_json(doc, source_bucket, message, in_sns=True)


def _simple(doc: dict[str, Any], source_bucket: str) -> Event:
    key, name = doc["key"], doc.get("event", "put")
    if not isinstance(key, str):
        raise BadMessage(f"key must be a string, not {_show(key)}")
    if name not in tuple(Change):
        raise BadMessage(f"unknown event {_show(name)}: must be {_EVENTS}")
    if "bucket" in doc:
        _check_bucket(doc["bucket"], source_bucket)
    version_id = _version_id(doc.get("version_id"), "version_id")
    action = Change(name)
    if action is Change.DELETE and version_id is not None:
        action = Change.PURGE  # as S3 has it: a DELETE naming a version removes that version for good
    if action is Change.PURGE and version_id is None:
        raise BadMessage(f"event 'purge' names no version_id: {_show(doc)}")
    return Event(_checked_key(key), action, source=Origin.JSON, version_id=version_id)


def _records(records: Any, source_bucket: str) -> list[Event]:
    if not isinstance(records, list) or not records:
        raise BadMessage(f"Records must be a non-empty list, not {_show(records)}")
    return [_record(r, source_bucket) for r in records]


def _record(record: Any, source_bucket: str) -> Event:
    """Decode one S3 notification record by its eventSource, never by guessing."""
    if not isinstance(record, dict):
        raise BadMessage(f"record is not an object: {_show(record)}")
    origin = record.get("eventSource")
    if not isinstance(origin, str) or origin not in _STORES:
        raise BadMessage(f"unknown eventSource {_show(origin)}: expected one of {sorted(_STORES)}")
    source, decode = _STORES[origin]
    s3 = _member(record, "s3")
    _check_bucket(_member(s3, "bucket").get("name"), source_bucket)
    obj = _member(s3, "object")
    key = obj.get("key")
    if not isinstance(key, str):
        raise BadMessage(f"s3.object.key must be a string, not {_show(key)}")
    try:
        key = decode(key)
    except UnicodeDecodeError:
        raise BadMessage(f"{origin} key does not decode to UTF-8: {_show(key)}") from None
    # Ceph before Quincy spells it "etag"; AWS, MinIO and later Ceph say "eTag".
    etag = obj.get("eTag", obj.get("etag"))
    if etag is not None and not isinstance(etag, str):
        raise BadMessage(f"s3.object.eTag must be a string, not {_show(etag)}")
    version_id = _version_id(obj.get("versionId"), "s3.object.versionId")
    action = _action(record.get("eventName"), version_id)
    when, size = _time(record.get("eventTime")), _size(obj.get("size"))
    return Event(_checked_key(key), action, when, size, etag or None, source, version_id)


def _action(name: Any, version_id: str | None) -> Change:
    # AWS and older Ceph write "ObjectCreated:Put"; MinIO and newer Ceph "s3:ObjectCreated:Put".
    # Ceph also says ObjectCreated:Post on *initiating* a multipart upload, before the
    # object exists: the copy must cope with a put for a key the source lacks.
    kind = name.removeprefix("s3:") if isinstance(name, str) else ""
    if kind.startswith("ObjectCreated:"):
        return Change.PUT
    if kind == "ObjectRemoved:DeleteMarkerCreated":
        return Change.MARKER
    if kind == "ObjectRemoved:Delete" and version_id is not None:
        # A DELETE that named a version: that version (or delete marker) is gone for good. Unversioned, AWS
        # sends no versionId and Ceph an empty one.
        return Change.PURGE
    if kind.startswith("ObjectRemoved:"):
        return Change.DELETE
    raise BadMessage(f"unknown event {_show(name)}: only ObjectCreated:* and ObjectRemoved:* count")


def _version_id(value: Any, name: str) -> str | None:
    # Ceph sends "versionId": "" for a bucket that keeps no versions; "null" is a real version's ID.
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_VERSION_ID or not value.isprintable():
        raise BadMessage(f"{name} is not a version ID: {_show(value)}")
    return value


def _member(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise BadMessage(f"record's {name!r} is not an object: {_show(value)}")
    return value


def _check_bucket(bucket: Any, source_bucket: str) -> None:
    if bucket != source_bucket:
        wrong = _show(bucket)
        raise BadMessage(f"event for bucket {wrong}, not the source bucket {source_bucket!r}")


def _size(value: Any) -> int | None:
    # Ceph sends the size as a string ("1024"); AWS and MinIO as a number.
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        return int(value)
    raise BadMessage(f"s3.object.size is not a byte count: {_show(value)}")


def _time(value: Any) -> float | None:
    if value is None or value == "":  # MinIO has sent "eventTime": ""
        return None
    try:
        # Ceph has written "2021-02-19 02:03:08.330496Z": fromisoformat takes that too.
        when = datetime.fromisoformat(value)
        return when.replace(tzinfo=when.tzinfo or UTC).timestamp()
    except (TypeError, ValueError, OverflowError):
        raise BadMessage(f"eventTime is not an ISO 8601 time: {_show(value)}") from None


def _checked_key(key: str) -> str:
    if not key:
        raise BadMessage("empty key")
    try:
        length = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate, from a JSON "\ud800" escape
        raise BadMessage(f"key is not valid Unicode: {_show(key)}") from None
    if length > MAX_KEY_BYTES:
        raise BadMessage(f"key is {length} bytes of UTF-8, over S3's {MAX_KEY_BYTES}: {_show(key)}")
    return key


def _show(value: Any) -> str:
    """The repr of a bad value, cut to about 100 characters for a one-line reason."""
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
