"""Parsing announcements: bare keys, our JSON, and AWS, MinIO and Ceph RGW notifications."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from s3s3.errors import BadMessage
from s3s3.listen.messages import MAX_KEY_BYTES, Event, parse

pytestmark = pytest.mark.timeout(30)

BUCKET = "photos"

# Shortened from what each store really sends; the fields we read are untouched.
AWS_PUT = {
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
    "eventTime": "2024-01-01T12:00:00.000Z", "eventName": "ObjectCreated:Put",
    "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
    "s3": {
        "s3SchemaVersion": "1.0", "configurationId": "s3s3",
        "bucket": {"name": BUCKET, "arn": "arn:aws:s3:::photos"},
        "object": {
            "key": "2024/red+flower%2Bleaf+caf%C3%A9.jpg", "size": 1024,
            "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0055AED6DCD90281E5",
        },
    },
}  # fmt: skip
AWS_DELETE = {
    "eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2024-01-01T12:00:01.500Z",
    "eventName": "ObjectRemoved:Delete",
    "s3": {"bucket": {"name": BUCKET}, "object": {"key": "old.jpg", "sequencer": "00A1"}},
}  # fmt: skip
AWS_TEST_EVENT = {
    "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-01T11:59:00.000Z",
    "Bucket": BUCKET, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkw",
}  # fmt: skip
MINIO_PUT = {
    "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
    "eventTime": "2019-10-22T09:27:27.123Z", "eventName": "s3:ObjectCreated:Put",
    "userIdentity": {"principalId": "minioadmin"},
    "responseElements": {"x-minio-origin-endpoint": "http://10.0.0.2:9000"},
    "s3": {
        "s3SchemaVersion": "1.0", "configurationId": "Config",
        "bucket": {"name": BUCKET, "arn": "arn:aws:s3:::photos"},
        "object": {
            "key": "dir%2Fsub%2Fa+b%2Bc%25d+%E2%9C%93.txt", "size": 7,
            "eTag": "5fc7298143efe1276d39a3466d4e255f-1", "contentType": "text/plain",
        },
    },
    "source": {"host": "10.0.0.9", "userAgent": "MinIO (linux; amd64) minio-go/v7"},
}  # fmt: skip
MINIO_WEBHOOK = {"EventName": "s3:ObjectCreated:Put", "Key": "photos/dir/sub/a b+c%d ✓.txt",
                 "Records": [MINIO_PUT]}  # fmt: skip
CEPH_PUT = {
    "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "default",
    "eventTime": "2021-02-19 02:03:08.330496Z", "eventName": "s3:ObjectCreated:Put",
    "s3": {
        "s3SchemaVersion": "1.0", "configurationId": "s3s3",
        "bucket": {"name": BUCKET, "id": "f089746f.24152.1"},
        "object": {
            "key": "raw/a+b%2B ü.jpg", "size": "108622",
            "eTag": "819c1e1c1b4c7b9853301ba2e6c300f1", "versionId": "", "metadata": [],
        },
    },
    "eventId": "1613700188.340.819c1e1c", "opaqueData": "",
}  # fmt: skip


def record(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a sample record with some fields of s3.object or of the record changed."""
    rec = json.loads(json.dumps(base))
    for name, value in changes.items():
        target = rec["s3"]["object"] if name in ("key", "size", "eTag", "versionId") else rec
        target[name] = value
    return rec


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def reason(message: bytes) -> str:
    with pytest.raises(BadMessage) as caught:
        parse(message, BUCKET)
    return str(caught.value)


def test_bare_key_is_a_put_event_keeping_every_space():
    assert parse(b" holiday photos/a b.jpg ", BUCKET) == [Event(" holiday photos/a b.jpg ", "put")]


def test_bare_key_loses_only_one_trailing_newline():
    assert parse(b"a.jpg\n", BUCKET)[0].key == "a.jpg"
    assert parse(b"a.jpg\r\n", BUCKET)[0].key == "a.jpg"
    assert parse(b"a.jpg\n\n", BUCKET)[0].key == "a.jpg\n"
    assert parse(b"a.jpg\r", BUCKET)[0].key == "a.jpg\r"


def test_bare_key_keeps_plus_percent_and_unicode_as_they_are():
    assert parse("a+b%2B/ü ✓".encode(), BUCKET)[0].key == "a+b%2B/ü ✓"


def test_bare_key_that_is_not_utf8_is_rejected():
    assert reason(b"caf\xe9.jpg").startswith("not UTF-8 at byte 3")


def test_empty_message_or_key_is_rejected():
    assert reason(b"") == "empty key"
    assert reason(b"\n") == "empty key"
    assert reason(raw({"key": ""})) == "empty key"


def test_key_of_1024_bytes_is_accepted_and_1025_bytes_rejected():
    longest = "é" * (MAX_KEY_BYTES // 2)
    assert parse(longest.encode(), BUCKET)[0].key == longest
    assert "1025 bytes" in reason((longest + "x").encode())


def test_text_starting_with_a_bracket_that_is_not_json_is_rejected_as_broken_json():
    for broken in (b'{"key": ', b"[draft] notes.txt", b'  {"Records": [}', b"[{'Event': []}]"):
        assert reason(broken).startswith("broken JSON (Expecting"), broken


def test_a_key_that_starts_with_a_bracket_is_announced_in_the_json_form():
    assert parse(raw({"key": "[draft] notes.txt"}), BUCKET) == [Event("[draft] notes.txt", "put", source="json")]
    assert parse(b"notes [draft].txt", BUCKET)[0].key == "notes [draft].txt"


def test_json_of_no_known_shape_is_rejected():
    for doc in ({"name": "a.jpg"}, [1, 2], [], {"Type": "SubscriptionConfirmation"}):
        assert reason(raw(doc)).startswith("unknown JSON message shape")


def test_json_message_is_a_put_unless_it_says_delete():
    assert parse(raw({"key": "a b.jpg"}), BUCKET) == [Event("a b.jpg", "put", source="json")]
    deleted = parse(raw({"key": "a", "event": "delete", "bucket": BUCKET}), BUCKET)
    assert deleted == [Event("a", "delete", source="json")]


def test_json_message_with_a_bad_field_is_rejected():
    assert reason(raw({"key": "a", "bucket": "other"})) == ("event for bucket 'other', not the source bucket 'photos'")
    assert reason(raw({"key": "a", "event": "copy"})).startswith("unknown event 'copy'")
    assert reason(raw({"key": 7})).startswith("key must be a string")


def test_aws_record_key_is_form_decoded():
    assert parse(raw({"Records": [AWS_PUT]}), BUCKET) == [
        Event("2024/red flower+leaf café.jpg", "put", epoch("2024-01-01T12:00:00"), 1024,
              "d41d8cd98f00b204e9800998ecf8427e", "aws")
    ]  # fmt: skip
    assert parse(raw({"Records": [record(AWS_PUT, key="a+b%2Bc")]}), BUCKET)[0].key == "a b+c"


def test_aws_delete_is_a_delete_without_size_or_etag():
    assert parse(raw({"Records": [AWS_DELETE]}), BUCKET) == [
        Event("old.jpg", "delete", epoch("2024-01-01T12:00:01.500"), source="aws")
    ]


def test_aws_versioned_put_keeps_the_version_it_made():
    (event,) = parse(raw({"Records": [record(AWS_PUT, versionId="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")]}), BUCKET)
    assert (event.action, event.version_id) == ("put", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    assert parse(raw({"Records": [AWS_PUT]}), BUCKET)[0].version_id is None


def test_aws_delete_marker_created_is_a_marker_with_the_marker_version():
    marker = record(AWS_DELETE, eventName="ObjectRemoved:DeleteMarkerCreated", versionId="dm-1")
    assert parse(raw({"Records": [marker]}), BUCKET) == [
        Event("old.jpg", "marker", epoch("2024-01-01T12:00:01.500"), source="aws", version_id="dm-1")
    ]


def test_aws_delete_naming_a_version_is_a_purge_and_without_one_a_delete():
    purged = record(AWS_DELETE, versionId="v-1")
    assert [(e.action, e.version_id) for e in parse(raw({"Records": [purged, AWS_DELETE]}), BUCKET)] == [
        ("purge", "v-1"),
        ("delete", None),
    ]


def test_minio_version_events_read_as_aws_ones():
    put = record(MINIO_PUT, versionId="0b9dc9ac-4d5b-4c8e-9d5d-7d8c1b0b8f11")
    marker = record(MINIO_PUT, eventName="s3:ObjectRemoved:DeleteMarkerCreated", versionId="a-marker")
    purged = record(MINIO_PUT, eventName="s3:ObjectRemoved:Delete", versionId="0b9dc9ac")
    events = parse(raw({"Records": [put, marker, purged]}), BUCKET)
    assert [(e.action, e.version_id) for e in events] == [
        ("put", "0b9dc9ac-4d5b-4c8e-9d5d-7d8c1b0b8f11"),
        ("marker", "a-marker"),
        ("purge", "0b9dc9ac"),
    ]


def test_ceph_empty_version_id_means_none_and_null_is_a_version():
    assert parse(raw({"Records": [CEPH_PUT]}), BUCKET)[0].version_id is None
    removed = record(CEPH_PUT, eventName="s3:ObjectRemoved:Delete", versionId="")
    assert parse(raw({"Records": [removed]}), BUCKET)[0].action == "delete"
    null = record(CEPH_PUT, eventName="ObjectRemoved:Delete", versionId="null")
    assert [(e.action, e.version_id) for e in parse(raw({"Records": [null]}), BUCKET)] == [("purge", "null")]


def test_record_with_a_bad_version_id_is_rejected():
    for bad in (7, ["v"], "v" * 1025, "v\n1"):
        assert reason(raw({"Records": [record(AWS_PUT, versionId=bad)]})).startswith(
            "s3.object.versionId is not a version ID"
        ), bad


def test_json_message_carries_a_version_id_and_a_delete_naming_one_is_a_purge():
    assert parse(raw({"key": "a", "version_id": "v2"}), BUCKET) == [Event("a", "put", source="json", version_id="v2")]
    assert parse(raw({"key": "a", "event": "delete", "version_id": "v1"}), BUCKET) == [
        Event("a", "purge", source="json", version_id="v1")
    ]
    assert parse(raw({"key": "a", "event": "purge", "version_id": "v1"}), BUCKET)[0].action == "purge"
    assert parse(raw({"key": "a", "event": "marker"}), BUCKET) == [Event("a", "marker", source="json")]


def test_json_purge_without_a_version_or_with_a_bad_one_is_rejected():
    assert reason(raw({"key": "a", "event": "purge"})).startswith("event 'purge' names no version_id")
    assert reason(raw({"key": "a", "version_id": 3})).startswith("version_id is not a version ID")
    assert reason(raw({"key": "a", "event": "copy"})) == (
        "unknown event 'copy': must be 'put', 'delete', 'marker' or 'purge'"
    )


def test_bare_key_names_no_version():
    assert parse(b"a.jpg", BUCKET) == [Event("a.jpg", "put", version_id=None)]


def test_aws_test_event_is_acknowledged_and_ignored():
    assert parse(raw(AWS_TEST_EVENT), BUCKET) == []


def test_aws_notification_inside_an_sns_envelope_is_unwrapped():
    message = json.dumps({"Records": [AWS_PUT]})
    envelope = {"Type": "Notification", "Subject": "Amazon S3 Notification", "Message": message}
    assert parse(raw(envelope), BUCKET)[0].key == "2024/red flower+leaf café.jpg"
    assert reason(raw({**envelope, "Message": "hello"})).startswith("SNS Message is not JSON")


def test_minio_webhook_body_key_is_query_unescaped():
    assert parse(raw(MINIO_WEBHOOK), BUCKET) == [
        Event("dir/sub/a b+c%d ✓.txt", "put", epoch("2019-10-22T09:27:27.123"), 7,
              "5fc7298143efe1276d39a3466d4e255f-1", "minio")
    ]  # fmt: skip


def test_minio_redis_access_format_yields_every_record_in_order():
    deleted = record(MINIO_PUT, eventName="s3:ObjectRemoved:Delete", key="gone")
    access = [{"Event": [MINIO_PUT], "EventTime": "2019-10-22T09:27:27.123Z"},
              {"Event": [deleted], "EventTime": "2019-10-22T09:27:28.000Z"}]  # fmt: skip
    events = parse(raw(access), BUCKET)
    assert [(e.key, e.action) for e in events] == [
        ("dir/sub/a b+c%d ✓.txt", "put"),
        ("gone", "delete"),
    ]


def test_minio_accessed_event_is_rejected():
    message = raw({"Records": [record(MINIO_PUT, eventName="s3:ObjectAccessed:Get")]})
    assert reason(message).startswith("unknown event 's3:ObjectAccessed:Get'")


def test_minio_empty_event_time_means_unknown():
    assert parse(raw({"Records": [record(MINIO_PUT, eventTime="")]}), BUCKET)[0].event_time is None


def test_ceph_key_is_used_raw_and_its_string_size_is_a_number():
    assert parse(raw({"Records": [CEPH_PUT]}), BUCKET) == [
        Event("raw/a+b%2B ü.jpg", "put", epoch("2021-02-19T02:03:08.330496"), 108622,
              "819c1e1c1b4c7b9853301ba2e6c300f1", "ceph")
    ]  # fmt: skip


def test_early_ceph_post_without_s3_prefix_and_lowercase_etag_is_a_put():
    early = record(CEPH_PUT, eventName="ObjectCreated:Post")
    early["s3"]["object"]["etag"] = early["s3"]["object"].pop("eTag")
    event = parse(raw({"Records": [early]}), BUCKET)[0]
    assert (event.action, event.etag) == ("put", "819c1e1c1b4c7b9853301ba2e6c300f1")


def test_several_records_yield_one_event_each_in_order():
    message = raw({"Records": [AWS_PUT, AWS_DELETE, record(AWS_PUT, key="z")]})
    keys = [e.key for e in parse(message, BUCKET)]
    assert keys == ["2024/red flower+leaf café.jpg", "old.jpg", "z"]


def test_record_for_a_foreign_bucket_is_rejected():
    foreign = record(CEPH_PUT)
    foreign["s3"]["bucket"]["name"] = "videos"
    assert reason(raw({"Records": [foreign]})) == ("event for bucket 'videos', not the source bucket 'photos'")


@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({"eventSource": "gcs"}, "unknown eventSource 'gcs'"),
        ({"eventSource": None}, "unknown eventSource None"),
        ({"eventSource": ["aws:s3"]}, "unknown eventSource ['aws:s3']"),
        ({"eventName": "ObjectRestore:Post"}, "unknown event 'ObjectRestore:Post'"),
        ({"size": "12kB"}, "s3.object.size is not a byte count"),
        ({"size": -1}, "s3.object.size is not a byte count"),
        ({"eventTime": "yesterday"}, "eventTime is not an ISO 8601 time"),
        ({"key": "%FF"}, "aws:s3 key does not decode to UTF-8"),
        ({"key": "\ud800"}, "key is not valid Unicode"),
        ({"key": 12}, "s3.object.key must be a string"),
        ({"s3": []}, "record's 's3' is not an object"),
    ],
)
def test_record_with_a_bad_field_is_rejected(changes: dict[str, Any], start: str):
    assert reason(raw({"Records": [record(AWS_PUT, **changes)]})).startswith(start)


def test_records_that_are_not_a_list_of_objects_are_rejected():
    assert reason(raw({"Records": []})).startswith("Records must be a non-empty list")
    assert reason(raw({"Records": ["a.jpg"]})).startswith("record is not an object")


def test_rejection_reason_is_one_short_line():
    message = raw({"unknown": "x\n" * 5000})
    text = reason(message)
    assert "\n" not in text and len(text) < 150


def test_random_bytes_only_ever_raise_bad_message():
    rng = random.Random(20240101)
    samples = [raw({"Records": [AWS_PUT, CEPH_PUT]}), raw(MINIO_WEBHOOK), raw(AWS_TEST_EVENT)]
    for i in range(2000):
        if i % 2:
            message = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:  # a real message with a few bytes changed, to reach the JSON paths
            message = bytearray(rng.choice(samples))
            for _ in range(rng.randrange(1, 4)):
                message[rng.randrange(len(message))] = rng.choice(b'{}[]":,\\%+0a \xff')
        try:
            events = parse(bytes(message), BUCKET)
        except BadMessage as e:
            assert "\n" not in str(e)
        else:
            assert all(isinstance(e, Event) and e.key for e in events)
