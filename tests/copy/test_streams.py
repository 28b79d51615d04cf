"""s3s3.copy.streams: a source body read in blocks, ahead of the sender, its early end or break a failed copy."""

from __future__ import annotations

import hashlib
import io
import threading
from typing import Any

import pytest

from s3s3.copy.limits import Bandwidth
from s3s3.copy.streams import READ_BLOCK, check_read, read_ahead, read_blocks, read_exactly
from s3s3.errors import IntegrityError
from s3s3.store import ObjectInfo
from tests.helpers import data_of, md5_hex, wait_until

pytestmark = pytest.mark.timeout(30)


class _Body(io.BytesIO):
    """A source body that hands out at most `chunk` bytes per read, then fails after `fail_at` bytes if asked."""

    def __init__(self, data: bytes, chunk: int, fail_at: int | None = None) -> None:
        super().__init__(data)
        self.chunk, self.fail_at = chunk, fail_at

    def readinto(self, buffer: Any) -> int:
        if self.fail_at is not None and self.tell() >= self.fail_at:
            raise ConnectionResetError("cut")
        view = memoryview(buffer)[: self.chunk]
        return super().readinto(view)


def test_read_ahead_hands_out_every_byte_in_order_and_fails_a_body_that_ends_early_or_breaks() -> None:
    data = data_of(3 * READ_BLOCK + 12345, seed=7)
    sent = b"".join(bytes(block) for block in read_ahead(_Body(data, 300_000), len(data)))
    assert sent == data

    with pytest.raises(IntegrityError, match="ended 100 bytes early"):
        b"".join(bytes(b) for b in read_ahead(_Body(data[:-100], 1 << 20), len(data)))
    with pytest.raises(ConnectionResetError):
        b"".join(bytes(b) for b in read_ahead(_Body(data, 1 << 20, fail_at=2 << 20), len(data)))


def test_read_ahead_stops_reading_when_the_sender_stops() -> None:
    data = data_of(8 * READ_BLOCK, seed=8)
    body = _Body(data, 1 << 20)
    blocks = read_ahead(body, len(data), depth=2)
    next(blocks)
    blocks.close()  # the PUT failed: nothing more is sent
    wait_until(lambda: not any(t.name == "s3s3-read-ahead" for t in threading.enumerate()), timeout=5)
    assert body.tell() <= 4 * READ_BLOCK  # at most the blocks read ahead, never the whole body


def test_read_blocks_hashes_every_byte_in_order_and_fails_a_body_that_ends_early() -> None:
    data = data_of(2 * READ_BLOCK + 777, seed=9)
    digest = hashlib.md5()
    sent = b"".join(bytes(b) for b in read_blocks(_Body(data, 100_000), len(data), digest, bandwidth=Bandwidth()))
    assert sent == data and digest.hexdigest() == md5_hex(data)
    with pytest.raises(IntegrityError, match="ended 7 bytes early"):
        b"".join(bytes(b) for b in read_blocks(_Body(data[:-7], 1 << 20), len(data)))


def test_read_exactly_reads_across_short_reads_and_stops_at_the_end() -> None:
    body = _Body(b"abcdefghij", 3)
    assert (read_exactly(body, 7), read_exactly(body, 7), read_exactly(body, 7)) == (b"abcdefg", b"hij", b"")


def test_check_read_fails_a_read_of_another_size_or_md5_than_the_source_says() -> None:
    info = ObjectInfo("k", 3, md5_hex(b"abc"))
    check_read(info, 3, md5_hex(b"abc"))
    with pytest.raises(IntegrityError, match="read 2 bytes, the source says 3"):
        check_read(info, 2, md5_hex(b"ab"))
    with pytest.raises(IntegrityError, match="read MD5"):
        check_read(info, 3, md5_hex(b"abd"))
