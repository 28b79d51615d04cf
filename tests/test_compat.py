"""s3s3 against real stores: Ceph RGW, OpenStack Swift, SeaweedFS, and moto standing in for AWS.

Every store starts once per session (tests/conftest.py). The matrix copies one set of objects
(small, empty, multipart-uploaded, awkward key names, every standard header,
user metadata near Swift's limit) from each source to each destination, once
with the listener and once with the bucket sync, and checks bytes and metadata
at the destination. The quirk tests each show a store's misbehaviour with
stock botocore (or with s3s3's fix taken out) and s3s3 working past it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from s3s3 import cli
from s3s3.config import Config, Endpoint, endpoint_from_options
from s3s3.copy import copy_key
from s3s3.errors import StoreError
from s3s3.outcome import Action
from s3s3.store import META_ETAG, Attributes, b64_md5, multipart_etag, open_store
from s3s3.store.boto import _content_md5_instead_of_crc32, _sigv2_bucket_path, _sigv2_metadata_dashes, create_client
from s3s3.store.facts import Fact
from s3s3.store.probes import source_part_size
from s3s3.sync.bucket import duplicate_bucket
from tests.helpers import new_bucket, wait_until
from tests.servers.base import Server, stop_process
from tests.servers.redis import RedisServer
from tests.stores import FaultyStore, answering, first

pytestmark = [pytest.mark.compat, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).resolve().parent / "compat"
MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part every store accepts before the last

# Every standard header a copy must carry over.
HEADERS = {
    "ContentType": "text/plain; charset=utf-8",
    "CacheControl": "max-age=60, private",
    "ContentDisposition": 'attachment; filename="report.txt"',
    "ContentEncoding": "gzip",
    "ContentLanguage": "fr-CA",
}
# User metadata: a key with `_` (Ceph turns it into `-`) and a value near Swift's 256-byte limit.
METADATA = {"plain": "value", "with_underscore": "kept", "near_limit": "L" * 250}


@dataclass(frozen=True)
class Obj:
    key: str
    body: bytes
    multipart: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def md5(self) -> str:
        return hashlib.md5(self.body).hexdigest()


OBJECTS = (
    Obj("small.txt", b"small object\n" * 40, headers=HEADERS),
    Obj("empty", b""),
    # Three parts of 5 MiB, 5 MiB and 1 KiB at the source: its ETag is md5-of-md5s-3.
    Obj("big/multipart.bin", os.urandom(1024) * (2 * PART // 1024) + b"tail" * 256, multipart=True, headers=HEADERS),
    Obj("dir/with space.txt", b"spaces"),
    Obj("unicode/ünïcødé-日本語.txt", "héllo wörld".encode()),
    Obj("plus+sign=1.txt", b"plus"),
    Obj("100% sure.txt", b"percent"),
    Obj("hash#tag.txt", b"hash"),
    Obj("question?mark.txt", b"question"),
)


# ---------------------------------------------------------------- stores


def _server(request: pytest.FixtureRequest, name: str) -> Server:
    return request.getfixturevalue(name)


# ---------------------------------------------------------------- helpers


def endpoint(section: str, server: Server, bucket: str, signature: str = "s3v4", **extra: str) -> Endpoint:
    """An Endpoint for `bucket` on `server`, path style, as a config file section would give it."""
    options = {
        "endpoint_url": server.endpoint_url,
        "aws_access_key_id": server.access_key,
        "aws_secret_access_key": server.secret_key,
        "bucket_name": bucket,
        "addressing_style": "path",
        "signature_version": signature,
        **extra,
    }
    if server.ca_bundle:
        options["ca_bundle"] = server.ca_bundle
    return endpoint_from_options(section, options)


def stock_client(server: Server, **config: Any) -> Any:
    """boto3 as it comes (default checksums included), path style."""
    config.setdefault("s3", {"addressing_style": "path"})
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        verify=server.ca_bundle or True,
        config=BotoConfig(retries={"max_attempts": 1}, **config),
    )


def upload(server: Server, bucket: str, obj: Obj, metadata: dict[str, str]) -> None:
    """Put `obj` at the source: multipart objects in 5 MiB parts, as a producer would."""
    client = server.client()
    if not obj.multipart:
        client.put_object(Bucket=bucket, Key=obj.key, Body=obj.body, Metadata=metadata, **obj.headers)
        return
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=obj.key, Metadata=metadata, **obj.headers)[
        "UploadId"
    ]
    parts = []
    for number, start in enumerate(range(0, len(obj.body), PART), start=1):
        answer = client.upload_part(
            Bucket=bucket, Key=obj.key, UploadId=upload_id, PartNumber=number, Body=obj.body[start : start + PART]
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=obj.key, UploadId=upload_id, MultipartUpload={"Parts": parts})


def part_md5s(body: bytes, size: int = PART) -> list[bytes]:
    return [hashlib.md5(body[i : i + size]).digest() for i in range(0, len(body), size)]


@pytest.fixture(scope="module")
def sources(request: pytest.FixtureRequest) -> Any:
    """The object set uploaded once per source store: `sources("ceph")` -> (server, bucket)."""
    made: dict[str, tuple[Server, str]] = {}

    def get(name: str) -> tuple[Server, str]:
        if name not in made:
            server = _server(request, name)
            bucket = new_bucket(server, "src")
            for obj in OBJECTS:
                upload(server, bucket, obj, METADATA)
            head = server.client().head_object(Bucket=bucket, Key="big/multipart.bin")
            assert head["ETag"].strip('"') == multipart_etag(part_md5s(OBJECTS[2].body))
            made[name] = (server, bucket)
        return made[name]

    return get


def expected_metadata(dashed: bool) -> dict[str, str]:
    # Ceph turns `_` in metadata keys into `-` (and s3s3 sends `-` with SigV2, see s3s3/s3.py).
    return {k.replace("_", "-"): v for k, v in METADATA.items()} if dashed else dict(METADATA)


def assert_copies(dest_server: Server, dest_bucket: str, dashed: bool, source: str) -> None:
    """Every object is at the destination with its bytes, headers and metadata."""
    client = dest_server.client()
    for obj in OBJECTS:
        got = client.get_object(Bucket=dest_bucket, Key=obj.key)
        assert hashlib.md5(got["Body"].read()).hexdigest() == obj.md5, obj.key
        # Swift keeps `_` in metadata keys, except on objects uploaded in parts.
        dashes = dashed or (source == "swift" and obj.multipart)
        assert expected_metadata(dashes).items() <= got["Metadata"].items(), (obj.key, got["Metadata"])
        assert got["Metadata"][META_ETAG], obj.key
        for header, value in obj.headers.items():
            assert got[header] == value, (obj.key, header)


def run_listener(config: Path, env: dict[str, str], redis_url: str, dest: tuple[Server, str], log: Path) -> None:
    """Run `s3s3 listen` on `config`, announce every key on Redis, stop it once the copies are there."""
    channel = env["S3S3_CHANNEL"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "s3s3", "listen", "--config", str(config), "--workers", "4"],
            env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        publisher = redis.Redis.from_url(redis_url)
        wait_until(lambda: proc.poll() is not None or publisher.pubsub_numsub(channel)[0][1] > 0, timeout=30)
        assert proc.poll() is None, log.read_text()
        for obj in OBJECTS:
            publisher.publish(channel, obj.key.encode())
        server, bucket = dest
        client = server.client()
        wait_until(
            lambda: proc.poll() is not None or client.list_objects_v2(Bucket=bucket).get("KeyCount") == len(OBJECTS),
            timeout=120,
            interval=0.2,
        )
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)  # finishes the copies in flight (verification included)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        stop_process(proc)
    assert "Failed" not in log.read_text(), log.read_text()


# ---------------------------------------------------------------- the matrix

# (source, destination, signature of the Ceph/Swift endpoints for the bucket sync,
# and for the listener). The pairs configured by an example of docs/examples.md load its file instead.
PAIRS = {
    "ceph->moto": ("ceph", "moto", "s3", "s3v4"),
    "swift->moto": ("swift", "moto", "s3", "s3v4"),
    "ceph->swift": ("ceph", "swift", "swift.ini.example", "swift.ini.example"),
    "swift->ceph": ("swift", "ceph", "s3v4", "s3"),
    "seaweedfs->ceph": ("seaweedfs", "ceph", "s3", "s3v4"),
    "ceph->ceph_tls": ("ceph", "ceph_tls", "ceph.ini.example", "ceph.ini.example"),
}
SIGNED = ("ceph", "ceph_tls", "swift")  # stores whose endpoints take the pair's signature
EXAMPLE_PREFIXES = {"ceph": "CEPH", "ceph_tls": "CEPH_DR", "swift": "SWIFT"}  # ${PREFIX_URL} ...


def example_env(**servers: tuple[Server, str]) -> dict[str, str]:
    """Values for the ${...} placeholders of an example in docs/examples.md, for these servers and buckets."""
    env = {}
    for prefix, (server, bucket) in servers.items():
        env.update({
            f"{prefix}_URL": server.endpoint_url,
            f"{prefix}_ACCESS_KEY": server.access_key,
            f"{prefix}_SECRET_KEY": server.secret_key,
            f"{prefix}_BUCKET": bucket,
            f"{prefix}_CA_BUNDLE": server.ca_bundle or "",
        })  # fmt: skip
    return env


def ini_section(name: str, server: Server, bucket: str, signature: str) -> str:
    text = (
        f"[{name}]\nendpoint_url = {server.endpoint_url}\naws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {server.secret_key}\nbucket_name = {bucket}\n"
        f"addressing_style = path\nsignature_version = {signature}\n"
    )
    return text + (f"ca_bundle = {server.ca_bundle}\n" if server.ca_bundle else "")


@dataclass
class Run:
    """One run of the matrix: its configuration file and environment, and where the copies land."""

    config: Path
    env: dict[str, str]
    dest: tuple[Server, str]


def pair_run(pair: str, service: str, request: pytest.FixtureRequest, sources: Any, redis_url: str) -> Run:
    src_name, dst_name, sync_choice, listen_choice = PAIRS[pair]
    src_server, src_bucket = sources(src_name)
    dst_server = _server(request, dst_name)
    dst_bucket = new_bucket(dst_server, "dst")
    choice = sync_choice if service == "bucket" else listen_choice
    env = {"REDIS_URL": redis_url, "S3S3_CHANNEL": f"compat-{uuid.uuid4().hex[:8]}"}
    if choice.endswith(".example"):
        env |= example_env(**{
            EXAMPLE_PREFIXES[src_name]: (src_server, src_bucket),
            EXAMPLE_PREFIXES[dst_name]: (dst_server, dst_bucket),
        })  # fmt: skip
        config = EXAMPLES / choice
    else:
        text = ini_section("source", src_server, src_bucket, choice if src_name in SIGNED else "s3v4")
        text += ini_section("dest", dst_server, dst_bucket, choice if dst_name in SIGNED else "s3v4")
        text += "[pubsub]\nurl = ${REDIS_URL}\nchannel = ${S3S3_CHANNEL}\n"
        config = request.getfixturevalue("tmp_path") / "s3s3.ini"
        config.write_text(text)
    return Run(config, env, (dst_server, dst_bucket))


@pytest.mark.parametrize("service", ["listener", "bucket"])
@pytest.mark.parametrize("pair", list(PAIRS))
def test_objects_are_replicated_intact_between_real_stores(
    pair: str,
    service: str,
    request: pytest.FixtureRequest,
    sources: Any,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Given the object set at the source store, an empty bucket at the destination, and a configuration file
    run = pair_run(pair, service, request, sources, redis_server.url)
    for name, value in run.env.items():
        monkeypatch.setenv(name, value)
    config = Config.from_file(run.config)
    source, dest = open_store(config.source), open_store(config.dests[0])

    # When the listener copies every announced key, or the bucket sync runs
    if service == "listener":
        run_listener(run.config, run.env, redis_server.url, run.dest, tmp_path / "listen.log")
    else:
        summary = duplicate_bucket(source, [dest], verify_md5=True, workers=4)
        assert (summary.copied, summary.failed, summary.failures) == (len(OBJECTS), 0, [])

    # Then the destination holds every object, byte for byte, with its headers and metadata
    src_name, dst_name = PAIRS[pair][:2]
    dashed = src_name == "ceph" or dst_name.startswith("ceph") or config.dests[0].signature_version == "s3"
    assert_copies(*run.dest, dashed=dashed, source=src_name)
    # And a bucket sync afterwards finds nothing to copy (no ETag or metadata quirk looks like a change)
    again = duplicate_bucket(source, [dest], verify_md5=True, workers=4)
    assert (again.checked, again.copied, again.failed) == (len(OBJECTS), 0, 0)


def test_the_examples_page_holds_the_example_configurations_verbatim() -> None:
    page = (ROOT / "docs" / "examples.md").read_text()
    for name in ("ceph.ini.example", "swift.ini.example"):
        assert (EXAMPLES / name).read_text() in page, name


# ---------------------------------------------------------------- SigV2 with path style


@pytest.mark.parametrize("store", ["ceph", "swift"])
def test_sigv2_path_style_bucket_calls_fail_with_stock_botocore(store: str, request: pytest.FixtureRequest) -> None:
    server = _server(request, store)
    bucket = new_bucket(server, "sigv2")
    client = stock_client(server, signature_version="s3", request_checksum_calculation="when_required")

    client.put_object(Bucket=bucket, Key="object-level", Body=b"ok")  # object-level calls work

    with pytest.raises(ClientError) as raised:
        client.list_objects_v2(Bucket=bucket)
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("store", ["ceph", "swift"])
def test_sigv2_path_style_fails_without_s3s3s_signing_fix(store: str, request: pytest.FixtureRequest) -> None:
    server = _server(request, store)
    bucket = new_bucket(server, "sigv2")
    client = create_client(endpoint("source", server, bucket, "s3"), max_attempts=1)
    client.meta.events.unregister("before-sign.s3", _sigv2_bucket_path)

    with pytest.raises(ClientError) as raised:
        client.list_objects(Bucket=bucket)
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("store", ["ceph", "swift"])
def test_sigv2_path_style_bucket_calls_work_with_s3s3s_client(store: str, request: pytest.FixtureRequest) -> None:
    server = _server(request, store)
    bucket = new_bucket(server, "sigv2")
    client = create_client(endpoint("source", server, bucket, "s3"), max_attempts=1)
    keys = [obj.key for obj in OBJECTS if not obj.multipart]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    listed_v2 = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    listed_v1 = [o["Key"] for o in client.list_objects(Bucket=bucket, MaxKeys=3)["Contents"]]
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    other = f"sigv2-made-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=other)
    client.delete_bucket(Bucket=other)

    assert listed_v2 == sorted(keys, key=lambda k: k.encode())
    assert listed_v1 == listed_v2[:3]
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_sigv2_metadata_key_with_underscore_fails_on_ceph_without_s3s3s_fix(ceph: Server) -> None:
    bucket = new_bucket(ceph, "sigv2")
    client = create_client(endpoint("dest", ceph, bucket, "s3"), max_attempts=1)
    client.meta.events.unregister("before-parameter-build.s3.PutObject", _sigv2_metadata_dashes)

    # Ceph turns `_` into `-` before it checks the SigV2 signature, which covered `_`
    with pytest.raises(ClientError) as raised:
        client.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"with_underscore": "v"})
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("store", ["ceph", "swift"])
def test_sigv2_metadata_key_with_underscore_is_sent_with_a_dash_by_s3s3s_client(
    store: str, request: pytest.FixtureRequest
) -> None:
    server = _server(request, store)
    bucket = new_bucket(server, "sigv2")
    client = create_client(endpoint("dest", server, bucket, "s3"), max_attempts=1)

    client.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"with_underscore": "v"})
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="m", Metadata={"with_underscore": "v"})["UploadId"]
    client.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload_id)

    assert client.head_object(Bucket=bucket, Key="k")["Metadata"] == {"with-underscore": "v"}


# ---------------------------------------------------------------- multipart ETags


def test_ceph_complete_multipart_upload_answers_with_an_empty_etag(ceph: Server) -> None:
    client, bucket = ceph.client(), new_bucket(ceph, "mpu")
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = client.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"one part")

    done = client.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )

    assert done.get("ETag", "").strip('"') == ""
    assert client.head_object(Bucket=bucket, Key="k")["ETag"].strip('"') == multipart_etag(part_md5s(b"one part"))


def _multipart_copy_to_ceph(ceph_tls: Server, sources: Any, *, heads: bool = True) -> Any:
    src_server, src_bucket = sources("ceph")  # another cluster: s3s3 streams it, no CopyObject
    source = open_store(endpoint("source", src_server, src_bucket))
    dest = FaultyStore(open_store(endpoint("dest", ceph_tls, new_bucket(ceph_tls, "mpu"), multipart_chunksize="5MiB")))
    if not heads:  # the destination's HEAD taken out: it answers "not there"
        dest.on("head", answering(lambda _: None))
    return copy_key(source, dest, "big/multipart.bin", check_dest=False)


def test_multipart_copy_to_ceph_checks_the_etag_the_store_did_not_return(ceph_tls: Server, sources: Any) -> None:
    # Given Ceph answers CompleteMultipartUpload with no ETag, when s3s3 copies a multipart object there
    outcome = _multipart_copy_to_ceph(ceph_tls, sources)

    # Then the outcome carries the real ETag (HEAD after completing), checked against the parts sent
    assert outcome.action is Action.COPIED, outcome.error
    assert outcome.dest_etag == multipart_etag(part_md5s(OBJECTS[2].body))


def test_multipart_copy_to_ceph_has_no_etag_without_the_head_after_completing(ceph_tls: Server, sources: Any) -> None:
    # Given the HEAD after CompleteMultipartUpload taken out (check_dest=False: no other HEAD runs)
    outcome = _multipart_copy_to_ceph(ceph_tls, sources, heads=False)

    # Then the copy "succeeds" with an empty ETag that nothing could check
    assert (outcome.action, outcome.dest_etag) == (Action.COPIED, "")


@pytest.mark.parametrize("store", ["ceph", "swift"])
def test_server_side_copy_of_a_multipart_object_is_verified_and_not_copied_again(
    store: str, request: pytest.FixtureRequest
) -> None:
    # Given a multipart object and a destination bucket on the same store (so the store copies it itself)
    server = _server(request, store)
    src_bucket, dst_bucket = new_bucket(server, "ss-src"), new_bucket(server, "ss-dst")
    obj = OBJECTS[2]
    upload(server, src_bucket, obj, {"origin": "producer"})
    source = open_store(endpoint("source", server, src_bucket))
    dest = open_store(endpoint("dest", server, dst_bucket))

    # When the bucket sync runs with verify_md5, then again
    first = duplicate_bucket(source, [dest], verify_md5=True, workers=2)
    second = duplicate_bucket(source, [dest], verify_md5=True, workers=2)

    # Then the copy is verified by reading it back, and the second sync copies nothing
    assert (first.copied, first.failed, first.failures) == (1, 0, [])
    assert (second.copied, second.failed) == (0, 0)
    client = server.client()
    assert hashlib.md5(client.get_object(Bucket=dst_bucket, Key=obj.key)["Body"].read()).hexdigest() == obj.md5
    # And the copy keeps the source's -N ETag on HEAD (both stores); Swift's listing shows the MD5 instead
    source_etag = multipart_etag(part_md5s(obj.body))
    assert client.head_object(Bucket=dst_bucket, Key=obj.key)["ETag"].strip('"') == source_etag
    listed = client.list_objects_v2(Bucket=dst_bucket)["Contents"][0]["ETag"].strip('"')
    assert listed == (obj.md5 if store == "swift" else source_etag)


def test_swift_listing_disagreeing_with_head_would_recopy_without_the_head_check(swift: Server) -> None:
    # Given a server-side copy on Swift whose listing ETag (MD5) differs from the source's (-N)
    src_bucket, dst_bucket = new_bucket(swift, "ss-src"), new_bucket(swift, "ss-dst")
    upload(swift, src_bucket, OBJECTS[2], {})
    source = open_store(endpoint("source", swift, src_bucket))
    dest = open_store(endpoint("dest", swift, dst_bucket))
    assert duplicate_bucket(source, [dest], workers=2).copied == 1

    # When the sync trusts the listings alone (its HEAD of the copy taken out: "not there")
    blind = FaultyStore(dest).on("head", answering(lambda _: None, when=first(1)))  # the sync's, not the copy's
    again = duplicate_bucket(source, [blind], workers=2)

    # Then it copies the unchanged object again: every sync would
    assert again.copied == 1


# ---------------------------------------------------------------- metadata


def test_ceph_dashes_in_metadata_keys_do_not_make_a_copy_look_changed(moto: Server, ceph: Server) -> None:
    src_bucket, dst_bucket = new_bucket(moto, "meta"), new_bucket(ceph, "meta")
    upload(moto, src_bucket, OBJECTS[0], METADATA)
    source, dest = open_store(endpoint("source", moto, src_bucket)), open_store(endpoint("dest", ceph, dst_bucket))

    first = copy_key(source, dest, OBJECTS[0].key)
    second = duplicate_bucket(source, [dest], workers=1)

    assert first.action is Action.COPIED
    got = ceph.client().head_object(Bucket=dst_bucket, Key=OBJECTS[0].key)["Metadata"]
    assert got["with-underscore"] == "kept" and "with_underscore" not in got
    assert (second.copied, second.skipped) == (0, 1)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"too_long": "v" * 300}, "metadata value of 300 bytes in 'too-long' (Swift allows 256)"),
        ({f"k{i:02d}": "v" * 200 for i in range(22)}, "bytes in all (Swift allows 4096)"),
        # s3s3 adds three keys. (Past ~95 keys Python's http.client refuses the GET's 100+ headers.)
        ({f"k{i:02d}": "v" for i in range(89)}, "92 metadata keys (Swift allows 90)"),
    ],
    ids=["value", "total", "count"],
)
def test_metadata_over_swifts_limits_fails_the_key_once_with_a_clear_message(
    metadata: dict[str, str], message: str, ceph: Server, swift: Server
) -> None:
    # Given an object whose metadata Ceph takes but Swift does not (Swift answers 500, not 400)
    src_bucket, dst_bucket = new_bucket(ceph, "meta"), new_bucket(swift, "meta")
    ceph.client().put_object(Bucket=src_bucket, Key="k", Body=b"x", Metadata=metadata)
    source = open_store(endpoint("source", ceph, src_bucket))
    dest = open_store(endpoint("dest", swift, dst_bucket))

    # When s3s3 copies it to Swift
    started = time.monotonic()
    outcome = copy_key(source, dest, "k")

    # Then the key fails once (botocore's own retries only), naming the limit
    assert (outcome.action, outcome.attempts) == (Action.FAILED, 1)
    assert message in outcome.error
    assert time.monotonic() - started < 30


def test_metadata_over_swifts_limit_is_an_unexplained_500_without_the_fix(swift: Server) -> None:
    # Given metadata over Swift's limit, sent as it is (no explanation by s3s3's copy engine)
    dest = open_store(endpoint("dest", swift, new_bucket(swift, "meta")))

    # When it is put, then Swift answers 500 InternalError, which says nothing of metadata and reads as an
    # outage: retried to the end of any policy, were it not for the engine's explanation
    with pytest.raises(StoreError) as refused:
        dest.put("k", b"x", length=1, md5=None, attrs=Attributes(metadata={"too-long": "v" * 300}))
    assert (refused.value.status, refused.value.code, refused.value.transient) == (500, "InternalError", True)
    assert "metadata" not in str(refused.value)


@pytest.mark.parametrize("store", ["ceph", "swift"])
def test_a_storage_class_the_store_lacks_fails_the_key_with_a_clear_message(
    store: str, request: pytest.FixtureRequest, moto: Server
) -> None:
    server = _server(request, store)
    src_bucket, dst_bucket = new_bucket(moto, "sc"), new_bucket(server, "sc")
    upload(moto, src_bucket, OBJECTS[0], {})
    source = open_store(endpoint("source", moto, src_bucket))
    dest = open_store(endpoint("dest", server, dst_bucket, storage_class="STANDARD_IA"))

    summary = duplicate_bucket(source, [dest], workers=1)

    assert (summary.copied, summary.failed) == (0, 1)
    assert "storage_class = STANDARD_IA is not offered by this store" in summary.failures[0][2]
    assert "remove it from [dest]" in summary.failures[0][2]


# ---------------------------------------------------------------- checksums


def test_swift_delete_objects_needs_content_md5_that_stock_botocore_does_not_send(swift: Server) -> None:
    bucket = new_bucket(swift, "delete")
    stock = swift.client()  # when_required checksums, as s3s3 asks, yet botocore sends a CRC32
    stock.put_object(Bucket=bucket, Key="k", Body=b"x")

    with pytest.raises(ClientError) as raised:
        stock.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})

    assert "Content-MD5" in str(raised.value)


def test_swift_delete_objects_fails_without_s3s3s_content_md5_fix(swift: Server) -> None:
    bucket = new_bucket(swift, "delete")
    client = create_client(endpoint("dest", swift, bucket), max_attempts=1)
    client.meta.events.unregister("before-call.s3.DeleteObjects", _content_md5_instead_of_crc32)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")

    with pytest.raises(ClientError):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})


@pytest.mark.parametrize("signature", ["s3v4", "s3"])
def test_swift_delete_objects_works_with_s3s3s_client(signature: str, swift: Server) -> None:
    bucket = new_bucket(swift, "delete")
    client = create_client(endpoint("dest", swift, bucket, signature), max_attempts=1)
    for key in ("a", "b c", "d+e"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in ("a", "b c", "d+e")]})

    assert answer.get("Errors", []) == []
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def _single_put(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="single", Body=b"single put")


def _multipart(client: Any, bucket: str) -> None:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    try:
        part = client.upload_part(Bucket=bucket, Key="multi", UploadId=upload_id, PartNumber=1, Body=b"p" * 1024)
        client.complete_multipart_upload(
            Bucket=bucket, Key="multi", UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )  # fmt: skip
    except ClientError:
        client.abort_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload_id)
        raise


def _delete_objects(client: Any, bucket: str) -> None:
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "single"}]})


CHECKSUMMED = {"single-put": _single_put, "multipart": _multipart, "delete-objects": _delete_objects}


@pytest.mark.parametrize("operation", ["single-put", "multipart"])
def test_boto3_default_checksums_over_https_get_411_from_ceph(operation: str, ceph_tls: Server) -> None:
    bucket = new_bucket(ceph_tls, "crc")
    ceph_tls.client().put_object(Bucket=bucket, Key="single", Body=b"x")

    with pytest.raises(ClientError) as raised:
        CHECKSUMMED[operation](stock_client(ceph_tls), bucket)

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 411


def test_boto3_default_checksums_on_delete_objects_are_accepted_by_ceph_over_https(ceph_tls: Server) -> None:
    # Measured: DeleteObjects' small body goes with a Content-Length, so only streamed bodies get 411.
    bucket = new_bucket(ceph_tls, "crc")
    ceph_tls.client().put_object(Bucket=bucket, Key="single", Body=b"x")

    _delete_objects(stock_client(ceph_tls), bucket)


@pytest.mark.parametrize("operation", list(CHECKSUMMED))
def test_s3s3s_client_over_https_works_on_ceph(operation: str, ceph_tls: Server) -> None:
    bucket = new_bucket(ceph_tls, "crc")
    ceph_tls.client().put_object(Bucket=bucket, Key="single", Body=b"x")

    CHECKSUMMED[operation](create_client(endpoint("dest", ceph_tls, bucket), max_attempts=1), bucket)


# ---------------------------------------------------------------- s3s3 doctor


def _doctor_config(tmp_path: Path, sections: dict[str, tuple[Server, str]], extra: str = "") -> Path:
    text = ""
    for name, (server, bucket) in sections.items():
        text += (
            f"[{name}]\nendpoint_url = {server.endpoint_url}\naws_access_key_id = {server.access_key}\n"
            f"aws_secret_access_key = {server.secret_key}\nbucket_name = {bucket}\n"
        )
        if server.ca_bundle:
            text += f"ca_bundle = {server.ca_bundle}\n"
    path = tmp_path / "doctor.ini"
    path.write_text(text + extra + "[pubsub]\nurl = redis://127.0.0.1:1/0\n")
    return path


ALL_CHECKSUMS = "crc64nvme, crc32c, crc32, sha256, sha1"
DOCTOR_FINDINGS = {
    "moto": [
        "Content-MD5                NOT enforced", "metadata values            2048 bytes accepted",
        f"full-object checksums      kept, not checked: {ALL_CHECKSUMS}",
    ],
    "ceph": [
        "Content-MD5                enforced (a wrong MD5 is refused: BadDigest (HTTP 400))",
        "multipart ETag             md5-of-md5s-N; CompleteMultipartUpload answered with an empty ETag",
        "'_' in metadata keys       turned into '-'",
        "storage class STANDARD_IA  refused: InvalidArgument (HTTP 400)",
        f"full-object checksums      ignored (copies to it send none; audits cannot compare them): {ALL_CHECKSUMS}",
    ],
    "ceph_tls": [
        "boto3 default checksums    refused: MissingContentLength (HTTP 411)",
        "    checksums = False\n",
    ],
    "swift": [
        "metadata values            256 bytes accepted (1024 refused: InternalError (HTTP 500))",
        "'_' in metadata keys       kept",
        "storage class STANDARD_IA  refused: InvalidStorageClass (HTTP 400)",
        f"full-object checksums      ignored (copies to it send none; audits cannot compare them): {ALL_CHECKSUMS}",
    ],
    "seaweedfs": [
        "Content-MD5                enforced (a wrong MD5 is refused: BadDigest (HTTP 400))",
        "multipart ETag             md5-of-md5s-N\n",
        "storage class STANDARD_IA  accepted",
        f"full-object checksums      checked (a body unlike it is refused) and kept: {ALL_CHECKSUMS}",
    ],
}
COMMON_FINDINGS = [
    "signature s3v4             works",
    "signature s3               works",
    "addressing path            works",
    "addressing virtual         not testable on an IP endpoint",
    "ListObjectsV2 paging       correct",
    "usable: yes",
    "    signature_version = s3v4\n    addressing_style = path\n",
    "versioning                 off",
    "Object Lock                off",
    "ListObjectVersions         works",
]


@pytest.mark.parametrize("store", list(DOCTOR_FINDINGS))
def test_doctor_reports_what_each_store_accepts_and_cleans_up(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a configuration whose source is a bucket on the store
    server = _server(request, store)
    bucket = new_bucket(server, "doctor")
    path = _doctor_config(tmp_path, {"source": (server, bucket), "dest1": (server, "not-probed")})

    # When `s3s3 doctor` probes it
    code = cli.main(["doctor", "--config", str(path), "source"])

    # Then it says what works, recommends options, exits 0 and leaves nothing behind
    out = capsys.readouterr().out
    print(out)
    assert code == 0
    for finding in COMMON_FINDINGS + DOCTOR_FINDINGS[store]:
        assert finding in out
    assert server.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_doctor_probes_only_the_sections_named_and_exits_1_when_one_is_unusable(
    ceph: Server, swift: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (ceph, new_bucket(ceph, "doctor"))
    wrong_secret = Server("swift", swift.endpoint_url, swift.access_key, "not-the-secret")
    path = _doctor_config(
        tmp_path, {"source": good, "dest_broken": (wrong_secret, "any"), "dest_ceph": (ceph, "not-probed")}
    )

    code = cli.main(["doctor", "--config", str(path), "dest_broken", "source"])

    out = capsys.readouterr().out
    assert code == 1
    assert "[dest_broken]" in out and "[source]" in out and "[dest_ceph]" not in out
    assert "signature s3v4  fails: SignatureDoesNotMatch (HTTP 403)" in out
    assert out.count("usable: no") == 1 and out.count("usable: yes") == 1


def test_doctor_refuses_a_section_that_is_not_in_the_file(
    ceph: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _doctor_config(tmp_path, {"source": (ceph, "any"), "dest1": (ceph, "other")})

    assert cli.main(["doctor", "--config", str(path), "dest9"]) == 2
    assert "no section 'dest9'; it has source, dest1" in capsys.readouterr().err


# ---------------------------------------------------------------- part-for-part copies

# Whether HEAD ?partNumber=1 answers 206 with x-amz-mp-parts-count (so s3s3 copies part for part,
# unhashed): Ceph 16.2 answers for the whole object (200), Swift 2.30 with 405 Method Not Allowed.
KNOWS_PART_NUMBER = {"ceph": False, "swift": False, "seaweedfs": True}


@pytest.mark.parametrize("store", ["ceph", "swift", "seaweedfs"])
def test_a_multipart_source_is_copied_part_for_part_where_the_store_says_its_parts(
    store: str, request: pytest.FixtureRequest, sources: Any, ceph_tls: Server
) -> None:
    # Given a multipart source (parts of 5 MiB, 5 MiB, 1 KiB) on this store
    src_server, src_bucket = sources(store)
    source = open_store(endpoint("source", src_server, src_bucket))
    info = source.head("big/multipart.bin")
    assert info is not None
    dest = open_store(endpoint("dest", ceph_tls, new_bucket(ceph_tls, "p4p")))

    # When its part size is asked, and it is copied to another cluster
    part_size = source_part_size(source, dest, info)
    outcome = copy_key(source, dest, "big/multipart.bin", check_dest=False)

    # Then the store said (or did not say) its part size, and the copy landed intact
    assert part_size == (PART if KNOWS_PART_NUMBER[store] else None)
    # And a store that does not answer it is not asked again
    assert source.facts.knows(Fact.NO_PART_NUMBER) is not KNOWS_PART_NUMBER[store]
    assert outcome.action is Action.COPIED, outcome.error
    copied = ceph_tls.client().get_object(Bucket=dest.endpoint.bucket, Key="big/multipart.bin")
    assert hashlib.md5(copied["Body"].read()).hexdigest() == OBJECTS[2].md5
    # And part for part, the copy has the source's own ETag
    if part_size:
        assert copied["ETag"].strip('"') == info.etag


# ---------------------------------------------------------------- what a backup keeps beyond the bytes

# What each store, as a destination, does with each option: "kept" (it lands and reads back), or the
# code it refuses the copy with (the copy then fails at once, naming the option).
BACKUP_OPTIONS = {
    "ceph": {"tags": "kept", "sse": "InvalidRequest", "acl": "kept", "mtime": "kept"},
    "swift": {"tags": "NotImplemented", "sse": "NotImplemented", "acl": "kept", "mtime": "kept"},
    "seaweedfs": {"tags": "kept", "sse": "kept", "acl": "kept", "mtime": "kept"},
}
OPTION_SETTINGS = {  # one option at a time: tags = false unless tags are what is tried
    "tags": {},
    "sse": {"sse": "AES256", "tags": "false"},
    "acl": {"acl": "bucket-owner-full-control", "tags": "false"},
    "mtime": {"tags": "false"},
}


def _kept(option: str, server: Server, bucket: str) -> bool:
    client = server.client()
    head = client.head_object(Bucket=bucket, Key="kept.txt")
    if option == "tags":
        return client.get_object_tagging(Bucket=bucket, Key="kept.txt")["TagSet"] == [{"Key": "team", "Value": "ops"}]
    if option == "sse":
        return head.get("ServerSideEncryption") == "AES256"
    if option == "acl":
        grants = client.get_object_acl(Bucket=bucket, Key="kept.txt")["Grants"]
        return any(g["Permission"] == "FULL_CONTROL" for g in grants)
    return "mtime" in head["Metadata"]


@pytest.mark.parametrize("option", list(OPTION_SETTINGS))
@pytest.mark.parametrize("store", list(BACKUP_OPTIONS))
def test_each_store_keeps_what_a_backup_asks_or_refuses_it_by_name(
    store: str, option: str, request: pytest.FixtureRequest, moto: Server
) -> None:
    # Given a tagged object at the source, and a destination on this store asking for one option
    server = _server(request, store)
    src_bucket, dst_bucket = new_bucket(moto, "opt"), new_bucket(server, "opt")
    moto.client().put_object(Bucket=src_bucket, Key="kept.txt", Body=b"kept", Tagging="team=ops")
    source = open_store(endpoint("source", moto, src_bucket))
    dest = open_store(endpoint("dest", server, dst_bucket, **OPTION_SETTINGS[option]))

    # When it is copied
    outcome = copy_key(source, dest, "kept.txt")

    # Then the store keeps what was asked, or the copy fails at once, naming the option and the store's code
    expected = BACKUP_OPTIONS[store][option]
    if expected == "kept":
        assert outcome.action is Action.COPIED, outcome.error
        assert _kept(option, server, dst_bucket)
    else:
        assert (outcome.action, outcome.attempts) == (Action.FAILED, 1), outcome.error
        assert f"not offered by this store ({expected})" in (outcome.error or "")


# ---------------------------------------------------------------- proving a backup: s3s3 audit, rclone check

# From a moto source (another moto server than the destination's, when that is moto): objects put whole,
# one in parts nobody recorded the MD5 of, one rclone wrote in parts (its MD5 in md5chksum), and one in parts
# whose store keeps a full-object CRC32 (small enough to go on in one PUT); to each store in parts of 5 MiB
# past 8 MiB.
AUDITED = {
    "small.txt": b"small object\n" * 40,
    "big.bin": OBJECTS[2].body,  # 10 MiB + 1 KiB, put whole
    "parted.bin": OBJECTS[2].body,  # the same, in parts of 5 MiB
    "rclone.bin": OBJECTS[2].body,  # the same, in parts of 6 MiB, with md5chksum
    "crc.bin": OBJECTS[2].body[: 5 * MiB + 1000],  # in parts of 5 MiB, with a full-object CRC32
}
# What evidence each store allows, as an audit after a bucket sync finds it (the table in docs/proving-a-backup.md).
EVIDENCE = {
    "moto": {"small.txt": "etag-md5", "big.bin": "s3s3-md5", "parted.bin": "part-etags", "rclone.bin": "md5chksum",
             "crc.bin": "checksum-crc32"},
    "ceph": {"small.txt": "etag-md5", "big.bin": "etag-md5", "parted.bin": "part-etags", "rclone.bin": "md5chksum",
             "crc.bin": "size"},
    "swift": {"small.txt": "etag-md5", "big.bin": "etag-md5", "parted.bin": "part-etags", "rclone.bin": "md5chksum",
              "crc.bin": "size"},
    "seaweedfs": {"small.txt": "etag-md5", "big.bin": "etag-md5", "parted.bin": "part-etags",
                  "rclone.bin": "md5chksum", "crc.bin": "checksum-crc32"},
}  # fmt: skip


def _audited_source(moto: Server) -> str:
    """A moto bucket holding AUDITED, each object written the way its name says."""
    bucket, client = new_bucket(moto, "audit-src"), moto.client()
    client.put_object(Bucket=bucket, Key="small.txt", Body=AUDITED["small.txt"])
    client.put_object(Bucket=bucket, Key="big.bin", Body=AUDITED["big.bin"])
    for key, part, extra in (
        ("parted.bin", PART, {}),
        ("rclone.bin", 6 * MiB, {"Metadata": {"md5chksum": b64_md5(hashlib.md5(AUDITED["rclone.bin"]).hexdigest())}}),
        ("crc.bin", PART, {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}),
    ):
        body = AUDITED[key]
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
        summed = {"ChecksumAlgorithm": "CRC32"} if key == "crc.bin" else {}
        parts = []
        for number, start in enumerate(range(0, len(body), part), start=1):
            answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                        Body=body[start : start + part], **summed)  # fmt: skip
            parts.append({"PartNumber": number, "ETag": answer["ETag"]} | (
                {"ChecksumCRC32": answer["ChecksumCRC32"]} if summed else {}))  # fmt: skip
        done = {"ChecksumType": "FULL_OBJECT"} if summed else {}
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts}, **done)  # fmt: skip
    return bucket


def _audit_config(tmp_path: Path, moto: Server, src_bucket: str, server: Server, dst_bucket: str, **extra: str) -> Path:
    text = ini_section("source", moto, src_bucket, "s3v4") + ini_section("dest", server, dst_bucket, "s3v4")
    options = {"multipart_threshold": "8MiB", "multipart_chunksize": "5MiB", **extra}
    text += "".join(f"{k} = {v}\n" for k, v in options.items())
    path = tmp_path / f"audit-{uuid.uuid4().hex[:6]}.ini"
    path.write_text(text + "[pubsub]\nurl = redis://127.0.0.1:1/0\n")
    return path


def _audit(path: Path, tmp_path: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]], list[str]]:
    """`s3s3 audit` as a process: (exit code, its report lines by key, its combined lines)."""
    report, combined = tmp_path / f"{uuid.uuid4().hex[:6]}.jsonl", tmp_path / f"{uuid.uuid4().hex[:6]}.txt"
    command = ["audit", "--config", str(path), "--report", str(report), "--combined", str(combined), *args]
    done = subprocess.run([sys.executable, "-m", "s3s3", *command], capture_output=True, text=True, timeout=180)
    assert done.returncode in (0, 3), done.stdout + done.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()[:-1]]
    return done.returncode, {line["key"]: line for line in lines}, sorted(combined.read_text().splitlines())


@pytest.mark.parametrize("store", list(EVIDENCE))
def test_an_audit_after_a_sync_to_each_store_proves_each_key_by_the_evidence_the_store_allows(
    store: str, request: pytest.FixtureRequest, s3_source: Server, tmp_path: Path
) -> None:
    # Given the objects synced from moto to the store
    server = _server(request, store)
    src_bucket, dst_bucket = _audited_source(s3_source), new_bucket(server, "audit-dst")
    path = _audit_config(tmp_path, s3_source, src_bucket, server, dst_bucket)
    synced = subprocess.run([sys.executable, "-m", "s3s3", "bucket", "--config", str(path)], capture_output=True,
                            text=True, timeout=180)  # fmt: skip
    assert synced.returncode == 0, synced.stdout + synced.stderr

    # When the destination is audited, then read back whole
    code, lines, combined = _audit(path, tmp_path)
    read, by_reading, _ = _audit(path, tmp_path, "--read-all")

    # Then each key is proven by what the store allows (sizes alone fail the audit), and the read-back proves all
    found = {key: line["evidence"] for key, line in lines.items()}
    print(store, found)
    assert found == EVIDENCE[store]
    unproven = [key for key, evidence in found.items() if evidence == "size"]
    assert {key for key, line in lines.items() if line["verdict"] == "unproven"} == set(unproven)
    assert code == (3 if unproven else 0)
    assert combined == sorted(f"= {key}" for key in AUDITED)
    assert (read, {key: (line["verdict"], line["evidence"]) for key, line in by_reading.items()}) == (
        0, {key: ("equal", "read") for key in AUDITED})  # fmt: skip


def _rclone_check(remotes: dict[str, tuple[Server, str]], tmp_path: Path) -> tuple[int, str, list[str]]:
    """`rclone check src:BUCKET dst:BUCKET --combined FILE` (no --download): (exit code, its log, the lines)."""
    from tests.servers.rclone import ensure_rclone_installed, rclone_env

    conf, combined = tmp_path / "rclone.conf", tmp_path / "rclone-combined.txt"
    conf.write_text("".join(
        f"[{name}]\ntype = s3\nprovider = Other\nendpoint = {server.endpoint_url}\n"
        f"access_key_id = {server.access_key}\nsecret_access_key = {server.secret_key}\n"
        "region = us-east-1\nforce_path_style = true\n\n"
        for name, (server, _) in remotes.items()
    ))  # fmt: skip
    done = subprocess.run(
        [ensure_rclone_installed(), "check", *(f"{name}:{bucket}" for name, (_, bucket) in remotes.items()),
         "--combined", str(combined), "--log-level", "INFO"],
        env=rclone_env(str(conf)), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr, sorted(combined.read_text().splitlines())


@pytest.mark.parametrize("store", ["ceph", "swift", "seaweedfs"])
def test_rclone_check_without_download_proves_every_copy_s3s3_made_in_parts_by_its_md5chksum(
    store: str, request: pytest.FixtureRequest, s3_source: Server, tmp_path: Path
) -> None:
    # Given objects whose MD5 the source knows (put whole, or by rclone with md5chksum), copied by s3s3 in parts
    # of 5 MiB (verify_md5 on: a store that checks Content-MD5 would otherwise take them in one proven PUT)
    server = _server(request, store)
    src_bucket, dst_bucket = _audited_source(s3_source), new_bucket(server, "rclone-dst")
    client = s3_source.client()
    for key in ("parted.bin", "crc.bin"):  # nothing at the source says their MD5: rclone could not check them
        client.delete_object(Bucket=src_bucket, Key=key)
    path = _audit_config(tmp_path, s3_source, src_bucket, server, dst_bucket, multipart_threshold="5MiB",
                         verify_md5="true")  # fmt: skip
    synced = subprocess.run([sys.executable, "-m", "s3s3", "bucket", "--config", str(path)], capture_output=True,
                            text=True, timeout=180)  # fmt: skip
    assert synced.returncode == 0, synced.stdout + synced.stderr
    copies = server.client().list_objects_v2(Bucket=dst_bucket)["Contents"]
    assert sorted(o["Key"] for o in copies if o["ETag"].strip('"').endswith("-3")) == ["big.bin", "rclone.bin"]

    # When rclone checks the pair by hashes only
    code, log, combined = _rclone_check({"src": (s3_source, src_bucket), "dst": (server, dst_bucket)}, tmp_path)

    # Then it finds no difference and checks every hash, and s3s3's audit says the same in the same words
    assert code == 0, log
    assert "0 differences found" in log and "hashes could not be checked" not in log, log
    assert "3 matching files" in log, log
    assert combined == ["= big.bin", "= rclone.bin", "= small.txt"]
    assert _audit(path, tmp_path)[2] == combined
