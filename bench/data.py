"""The workloads: what they hold, how the source is filled, how a destination is checked.

Bodies are pseudo-random (incompressible) bytes made while they are uploaded,
so even the 1 GiB object is never held in memory; the MD5 of every object is
recorded on the way, so a destination is checked against the bytes written.
"""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from boto3.s3.transfer import TransferConfig

from tests.servers.base import Server

KiB, MiB, GiB = 1024, 1024**2, 1024**3
SOURCE_BUCKET = "bench-source"
_READ_CHUNK = 4 * MiB


@dataclass(frozen=True)
class Workload:
    """N objects of one size under the prefix `NAME/` of the source bucket."""

    name: str
    count: int
    size: int
    single_put: bool = False  # written with one PUT (a plain-MD5 ETag), not in 16 MiB parts

    @property
    def prefix(self) -> str:
        return f"{self.name}/"

    @property
    def total_bytes(self) -> int:
        return self.count * self.size

    def key_names(self) -> list[str]:
        return [f"{self.prefix}{i:05d}" for i in range(self.count)]


WORKLOADS = {
    "A": Workload("A", 2000, 4 * KiB, single_put=True),
    "B1": Workload("B1", 8, 64 * MiB, single_put=True),  # the common case: most objects under 100 MiB
    "B2": Workload("B2", 8, 64 * MiB),  # the same, uploaded in 16 MiB parts (an `md5-4` ETag)
    "C": Workload("C", 1, 1 * GiB),
}

# key -> (size, md5 hex) of what the source holds
Manifest = dict[str, tuple[int, str]]


class VerifyError(Exception):
    """Raised when a destination does not hold exactly the workload's keys, sizes and bytes."""


class RandomStream:
    """A read-only file of `size` pseudo-random bytes that hashes what it hands out."""

    def __init__(self, size: int, seed: str) -> None:
        self.left = size
        self.rng = random.Random(seed)
        self.md5 = hashlib.md5()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        # randbytes takes at most 2**28 bytes at once (its bit count is a C int)
        data = b"".join(self.rng.randbytes(min(n - i, 64 * MiB)) for i in range(0, n, 64 * MiB))
        self.left -= n
        self.md5.update(data)
        return data


def _put(client, key: str, size: int, single_put: bool) -> tuple[int, str]:
    """Upload one object: with one PUT, or in 16 MiB parts so that it carries an `-N` ETag."""
    stream = RandomStream(size, key)
    threshold = size + 1 if single_put else 16 * MiB
    config = TransferConfig(multipart_threshold=threshold, multipart_chunksize=16 * MiB, max_concurrency=4)
    client.upload_fileobj(stream, SOURCE_BUCKET, key, Config=config)
    return size, stream.md5.hexdigest()


def fill_source(server: Server, workloads: list[Workload]) -> Manifest:
    """Create the source bucket and upload every workload into it; return what was written."""
    client = server.client(max_pool_connections=16)
    client.create_bucket(Bucket=SOURCE_BUCKET)
    manifest: Manifest = {}
    for workload in workloads:
        # Big objects go one or two at a time: each upload already runs 4 parts in parallel.
        with ThreadPoolExecutor(16 if workload.size < 16 * MiB else 2) as pool:
            futures = {key: pool.submit(_put, client, key, workload.size, workload.single_put)
                       for key in workload.key_names()}  # fmt: skip
            manifest.update({key: f.result() for key, f in futures.items()})
    return manifest


def list_sizes(server: Server, bucket: str, prefix: str) -> dict[str, int]:
    """Every key under prefix in bucket, with its size."""
    paginator = server.client().get_paginator("list_objects_v2")
    return {
        obj["Key"]: obj["Size"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    }


def _md5_of(client, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.md5()
    while chunk := body.read(_READ_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def verify(server: Server, bucket: str, workload: Workload, manifest: Manifest, *, content: bool = True) -> None:
    """Check that bucket holds exactly the workload's keys and sizes and, with content, the same bytes (MD5)."""
    expected = {key: manifest[key][0] for key in workload.key_names()}
    found = list_sizes(server, bucket, workload.prefix)
    if found != expected:
        missing = sorted(expected.keys() - found.keys())
        extra = sorted(found.keys() - expected.keys())
        wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
        raise VerifyError(f"{bucket}/{workload.prefix}: {len(missing)} missing (e.g. {missing[:2]}), "
                          f"{len(extra)} extra (e.g. {extra[:2]}), {len(wrong)} of the wrong size (e.g. {wrong[:2]})")
    if not content:
        return
    client = server.client(max_pool_connections=16)
    with ThreadPoolExecutor(8) as pool:
        digests = dict(zip(expected, pool.map(lambda k: _md5_of(client, bucket, k), expected), strict=True))
    bad = sorted(k for k, digest in digests.items() if digest != manifest[k][1])
    if bad:
        raise VerifyError(f"{bucket}/{workload.prefix}: {len(bad)} objects with other bytes (e.g. {bad[:2]})")
