"""`s3s3 audit` end to end: after a bucket sync, every key is proven at the destination, and every way a copy
can go wrong is named, on two moto servers with a real redis-server.

What the audit reads is checked against what was written: the verdicts and
evidence of its JSON lines, the lines of its rclone-style combined file, the
requests it made, its exit code. Copies are damaged with a plain boto3
client, as something other than s3s3 would.
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from s3s3.audit.fixity import picked
from s3s3.cli import main
from s3s3.config import Config, MiB
from s3s3.store import META_MD5, META_MD5CHKSUM, Store, b64_md5, open_store
from tests.helpers import data_of, endpoint_section, md5_hex, new_bucket
from tests.servers.base import Server
from tests.servers.redis import RedisServer
from tests.stores import bucket_of, client_of, put_in_parts

pytestmark = pytest.mark.timeout(90)

PARTS_5MIB = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
SMALL = {f"small-{i}.txt": data_of(1000 + i, seed=i) for i in range(6)}
BIG = data_of(11 * MiB, seed=40)  # one PUT at the source; three parts of 5 MiB at the destination
PARTED = data_of(11 * MiB, seed=41)  # in parts of 5 MiB at the source, copied part for part

World = Callable[..., tuple[Config, Store, list[Store]]]
Audited = tuple[int, dict[str, Any], dict[str, Any]]  # exit code, summary, report line by key


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: the bucket sync retries every dead letter it finds."""
    server = RedisServer(str(tmp_path_factory.mktemp("redis-audit"))).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _restore_logging_and_signals() -> Iterator[None]:
    """main() sets up logging and SIGTERM/SIGINT handlers; give the next test what it had."""
    root = logging.getLogger()
    handlers, level, s3s3_level = root.handlers[:], root.level, logging.getLogger("s3s3").level
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("s3s3").setLevel(s3s3_level)
    for signum, handler in signals.items():
        signal.signal(signum, handler)


@pytest.fixture
def world(tmp_path: Path, s3_source: Server, s3_dest: Server, own_redis: RedisServer) -> World:
    """Fresh buckets and an s3s3.ini for them: `world(dests=2, ...)`, each destination in 5 MiB parts past 5 MiB."""

    def make(
        dests: int = 1, source_bucket: str | None = None, dest_extra: dict[str, str] | None = None
    ) -> tuple[Config, Store, list[Store]]:
        text = endpoint_section("source", s3_source, source_bucket or new_bucket(s3_source, "src"))
        for i in range(1, dests + 1):
            text += endpoint_section(f"dest{i}", s3_dest, new_bucket(s3_dest, "dst"), **PARTS_5MIB | (dest_extra or {}))
        text += f"[pubsub]\nurl = {own_redis.url}\nchannel = ch-{uuid.uuid4().hex[:8]}\n"
        path = tmp_path / f"s3s3-{uuid.uuid4().hex[:8]}.ini"
        path.write_text(text)
        config = Config.from_file(path)
        return config, open_store(config.source), [open_store(d) for d in config.dests]

    return make


def run(capsys: pytest.CaptureFixture[str], config: Config, *args: str) -> tuple[int, str, str]:
    """`s3s3 COMMAND --config ... ARGS` in this process: (exit code, stdout, stderr)."""
    code = main([args[0], "--config", str(config.path), *args[1:]])
    out = capsys.readouterr()
    return code, out.out, out.err


def audited(capsys: pytest.CaptureFixture[str], config: Config, tmp_path: Path, *args: str) -> Audited:
    """`s3s3 audit --json --report FILE ARGS`: (exit code, the printed summary, each key's report line by key)."""
    report = tmp_path / f"audit-{uuid.uuid4().hex[:8]}.jsonl"
    code, out, _ = run(capsys, config, "audit", "--json", "--report", str(report), *args)
    *lines, last = [json.loads(line) for line in report.read_text().splitlines()]
    summary = json.loads(out)
    assert last == {**summary, "seconds": last["seconds"]}
    return code, summary, {line["key"]: line for line in lines}


def put(store: Store, key: str, data: bytes, **extra: Any) -> None:
    client_of(store).put_object(Bucket=bucket_of(store), Key=key, Body=data, **extra)


def synced(world: World, capsys: pytest.CaptureFixture[str], dests: int = 1) -> tuple[Config, Store, list[Store]]:
    """Small objects, a big one put whole, one put in parts, synced by `s3s3 bucket`."""
    config, source, stores = world(dests)
    for key, data in SMALL.items():
        put(source, key, data)
    put(source, "big.bin", BIG)
    put_in_parts(source, "parted.bin", PARTED)
    assert run(capsys, config, "bucket")[0] == 0
    return config, source, stores


def verdicts(lines: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {key: (line["verdict"], line["evidence"]) for key, line in lines.items()}


# -- a backup proven -------------------------------------------------------------------------------


def test_after_a_sync_every_key_is_proven_equal_by_more_than_its_size_and_two_audits_give_one_digest(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given small objects, and big ones copied in parts, synced to the destination
    config, _, (dest,) = synced(world, capsys)

    # When the destination is audited, twice
    code, summary, lines = audited(capsys, config, tmp_path)
    again, second, lines_again = audited(capsys, config, tmp_path)

    # Then every key is equal, each by the strongest evidence its copy carries, none by its size alone
    assert (code, again) == (0, 0)
    expected = {key: ("equal", "etag-md5") for key in SMALL}
    expected |= {"big.bin": ("equal", "s3s3-md5"), "parted.bin": ("equal", "part-etags")}
    assert verdicts(lines) == expected
    assert summary["verdicts"] == {"equal": 8, "differs": 0, "missing": 0, "extra": 0, "unproven": 0, "error": 0}
    assert "size" not in summary["evidence"]
    # And a line names the key, the destination, the size and both ETags
    big = lines["big.bin"]
    assert (big["dest"], big["size"], big["source_etag"]) == (dest.endpoint.label, len(BIG), md5_hex(BIG))
    assert big["dest_etag"].endswith("-3")
    # And only the key the listings could not decide cost a HEAD (of the copy), nothing was read
    assert summary["requests"] == {"list": 2, "head": 1, "get": 0}
    # And the two audits of the unchanged pair agree to the byte
    assert second["digest"] == summary["digest"] and summary["digest"].startswith("sha256:")
    assert lines_again == lines


def test_a_changed_copy_differs_a_deleted_one_is_missing_and_one_at_the_destination_only_is_extra(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a synced destination where one copy was overwritten with other bytes of its size, one deleted,
    # and a key added that the source never had
    config, _, (dest,) = synced(world, capsys)
    put(dest, "small-1.txt", data_of(len(SMALL["small-1.txt"]), seed=99))
    client_of(dest).delete_object(Bucket=bucket_of(dest), Key="small-2.txt")
    put(dest, "only-here.txt", b"extra")
    combined = tmp_path / "combined.txt"

    # When it is audited with rclone's combined report
    code, summary, lines = audited(capsys, config, tmp_path, "--combined", str(combined))

    # Then it exits 3, naming each, and the extra key alone would not fail it
    assert code == 3
    assert verdicts(lines)["small-1.txt"] == ("differs", "etag-md5")
    assert verdicts(lines)["small-2.txt"] == ("missing", "listing")
    assert verdicts(lines)["only-here.txt"] == ("extra", "listing")
    assert lines["only-here.txt"]["source_etag"] is None and lines["small-2.txt"]["dest_etag"] is None
    assert (summary["verdicts"]["equal"], summary["keys"]) == (6, 9)
    # And the combined file says the same in rclone's symbols, one line per path
    assert sorted(combined.read_text().splitlines()) == sorted(
        ["= big.bin", "= parted.bin", "- only-here.txt", "= small-0.txt", "* small-1.txt", "+ small-2.txt",
         "= small-3.txt", "= small-4.txt", "= small-5.txt"]
    )  # fmt: skip


def test_a_copy_in_parts_whose_bytes_were_replaced_under_its_s3s3_md5_passes_the_listings_and_fails_a_read_back(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a copy in parts whose bytes were replaced (same size) and whose s3s3-md5 still claims the original
    config, _, (dest,) = synced(world, capsys)
    forged = data_of(len(BIG), seed=666)
    put_in_parts(dest, "big.bin", forged, metadata={META_MD5: md5_hex(BIG)})

    # When it is audited from listings and HEADs, then read back whole, then a sample picked by a seed
    listed, _, by_listing = audited(capsys, config, tmp_path)
    read, summary, by_reading = audited(capsys, config, tmp_path, "--read-all")
    seed = next(n for n in range(1000) if picked("big.bin", 0.25, n))
    sampled, sample, by_sample = audited(capsys, config, tmp_path, "--read-sample", "25%", "--seed", str(seed))

    # Then the metadata fools the listing audit, and the read-back finds the bytes differ
    assert (listed, verdicts(by_listing)["big.bin"]) == (0, ("equal", "s3s3-md5"))
    assert (read, verdicts(by_reading)["big.bin"]) == (3, ("differs", "read"))
    assert {key: v for key, v in verdicts(by_reading).items() if key != "big.bin"} == {
        key: ("equal", "read") for key in [*SMALL, "parted.bin"]
    }
    assert summary["requests"]["get"] == 16 and summary["bytes_read"] == 2 * (sum(map(len, SMALL.values())) +
                                                                              len(BIG) + len(PARTED))  # fmt: skip
    # And the sample picked by that seed reads it too, and says the seed
    assert (sampled, verdicts(by_sample)["big.bin"]) == (3, ("differs", "read"))
    assert (sample["seed"], sample["read_fraction"]) == (seed, 0.25)
    assert sum(1 for v in verdicts(by_sample).values() if v[1] == "read") < 8


def test_sizes_alone_leave_a_key_unproven_which_fails_unless_allowed_and_a_read_back_proves_it(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given the same bytes on both sides, put in parts of other sizes by something that records no MD5
    config, source, (dest,) = world()
    put_in_parts(source, "video.mp4", PARTED, part=5 * MiB)
    put_in_parts(dest, "video.mp4", PARTED, part=6 * MiB)

    # When it is audited, then with --allow-unproven, then read back
    code, summary, lines = audited(capsys, config, tmp_path)
    allowed, _, _ = audited(capsys, config, tmp_path, "--allow-unproven")
    read, _, by_reading = audited(capsys, config, tmp_path, "--read-all")

    # Then the key is unproven by its size (both sides HEADed, for nothing), which fails the audit unless allowed;
    # the read-back proves it
    assert (code, verdicts(lines)) == (3, {"video.mp4": ("unproven", "size")})
    assert summary["requests"] == {"list": 2, "head": 2, "get": 0}
    assert allowed == 0
    assert (read, verdicts(by_reading)) == (0, {"video.mp4": ("equal", "read")})


def test_an_rclone_md5chksum_and_a_full_object_checksum_each_prove_a_copy_where_no_etag_can(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a source object in parts of 6 MiB that rclone wrote (its MD5 in md5chksum), and one in parts whose
    # store keeps a full-object CRC32 of it, synced to a destination of 5 MiB parts past 8 MiB
    config, source, (dest,) = world(dest_extra={"multipart_threshold": "8MiB"})
    put_in_parts(source, "rclone.bin", BIG, part=6 * MiB, metadata={META_MD5CHKSUM: b64_md5(md5_hex(BIG))})
    crc = data_of(5 * MiB + 1000, seed=42)
    put_with_crc32(source, "crc.bin", crc)
    assert run(capsys, config, "bucket")[0] == 0

    # When the destination is audited
    code, _, lines = audited(capsys, config, tmp_path)

    # Then rclone's MD5 proves the first (copied in parts of another size); the source's CRC32, sent with the
    # second's single PUT and kept by the destination, proves the second (its source has no MD5 at all)
    assert code == 0
    assert verdicts(lines) == {"crc.bin": ("equal", "checksum-crc32"), "rclone.bin": ("equal", "md5chksum")}
    crc32 = base64.b64encode(zlib.crc32(crc).to_bytes(4, "big")).decode()
    head = client_of(dest).head_object(Bucket=bucket_of(dest), Key="crc.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32


def put_with_crc32(store: Store, key: str, data: bytes) -> None:
    """Upload `data` in parts of 5 MiB, the store keeping a full-object CRC32 of it (as AWS SDKs ask)."""
    client, bucket = client_of(store), bucket_of(store)
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32",
                                            ChecksumType="FULL_OBJECT")["UploadId"]  # fmt: skip
    parts = []
    for number, start in enumerate(range(0, len(data), 5 * MiB), start=1):
        answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                    Body=data[start : start + 5 * MiB], ChecksumAlgorithm="CRC32")  # fmt: skip
        parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts},
                                     ChecksumType="FULL_OBJECT")  # fmt: skip


# -- exit codes, shards, several destinations, the textfile ----------------------------------------


def test_an_audit_that_cannot_list_the_source_exits_1_and_bad_usage_exits_2_before_anything_is_read(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a configuration whose source bucket does not exist, and one with two destinations
    gone, _, _ = world(source_bucket=f"gone-{uuid.uuid4().hex[:8]}")
    two, _, _ = world(dests=2)

    # When each is audited
    code, out, _ = run(capsys, gone, "audit")
    combined_for_two = run(capsys, two, "audit", "--combined", str(tmp_path / "combined.txt"))

    # Then listing the source fails the audit (1), naming the destination; one combined file cannot hold two
    # destinations (2), and a fraction over 1 is refused (2)
    assert code == 1 and "error: dest1:" in out and "NoSuchBucket" in out
    assert combined_for_two[0] == 2 and "put {dest} in the file name" in combined_for_two[2]
    assert not (tmp_path / "combined.txt").exists()
    with pytest.raises(SystemExit) as usage:
        main(["audit", "--config", str(two.path), "--read-sample", "1.5"])
    assert usage.value.code == 2
    assert "not a fraction of the keys" in capsys.readouterr().err


def test_each_destination_has_its_own_combined_file_and_lines_in_the_report(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given two synced destinations, the second missing a key
    config, _, (first, second) = synced(world, capsys, dests=2)
    client_of(second).delete_object(Bucket=bucket_of(second), Key="small-0.txt")

    # When both are audited, one combined file each
    code, summary, _ = audited(capsys, config, tmp_path, "--combined", str(tmp_path / "{dest}.txt"))

    # Then each file speaks of its destination only, and the summary counts each
    assert code == 3
    assert "+ small-0.txt" not in (tmp_path / "dest1.txt").read_text().splitlines()
    assert "+ small-0.txt" in (tmp_path / "dest2.txt").read_text().splitlines()
    per_dest = summary["destinations"]
    assert per_dest[first.endpoint.label]["verdicts"]["equal"] == 8
    assert per_dest[second.endpoint.label]["verdicts"]["missing"] == 1


def test_shards_together_audit_every_key_once(world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given 40 keys synced
    config, source, _ = world()
    for i in range(40):
        put(source, f"key-{i:02d}", f"{i}".encode())
    assert run(capsys, config, "bucket")[0] == 0

    # When three audits each take one shard of three
    keys: list[str] = []
    for i in range(3):
        code, _, lines = audited(capsys, config, tmp_path, "--shard", f"{i}/3")
        assert code == 0
        keys += lines

    # Then together they audited every key exactly once
    assert sorted(keys) == [f"key-{i:02d}" for i in range(40)]


def test_the_metrics_file_says_whether_the_last_audit_passed(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a synced destination that lost a key
    config, _, (dest,) = synced(world, capsys)
    client_of(dest).delete_object(Bucket=bucket_of(dest), Key="big.bin")
    path = tmp_path / "s3s3-audit.prom"

    # When it is audited with --metrics-file
    assert run(capsys, config, "audit", "--metrics-file", str(path))[0] == 3

    # Then the textfile counts the key missing and the audit failed
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(path.read_text()) for s in family.samples}  # fmt: skip
    label = dest.endpoint.label
    assert samples[("s3s3_audit_keys", (("dest", label), ("verdict", "missing")))] == 1
    assert samples[("s3s3_audit_keys", (("dest", label), ("verdict", "equal")))] == 7
    assert samples[("s3s3_audit_ok", ())] == 0
    assert samples[("s3s3_audit_requests", (("kind", "list"),))] == 2
