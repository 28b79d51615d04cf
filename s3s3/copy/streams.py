"""Reading a source body as it streams: in blocks, ahead of the sender, or in whole parts.

Every executor that streams a GET's body into a PUT or an UploadPart reads it
here, so a body that ends early fails the copy the same way everywhere, and
every block sent is counted against the process's bandwidth.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator

from s3s3.copy.limits import Bandwidth
from s3s3.errors import IntegrityError
from s3s3.store import Body, ObjectInfo

READ_BLOCK = 1024 * 1024  # how much a streamed body reads at a time


def check_read(info: ObjectInfo, size: int, md5: str | None) -> None:
    """Fail the copy when what was read is not what the source says it holds."""
    if size != info.size:
        raise IntegrityError(f"{info.key!r}: read {size} bytes, the source says {info.size}")
    if info.md5 and info.md5 != md5:
        raise IntegrityError(f"{info.key!r}: read MD5 {md5}, the source says {info.md5}")


def read_blocks(
    body: Body, length: int, digest: hashlib._Hash | None = None, *, bandwidth: Bandwidth | None = None
) -> Iterator[memoryview]:
    """`length` bytes of `body`, a block at a time (into `digest`, if given); an early end fails the copy."""
    view = memoryview(bytearray(min(READ_BLOCK, length) or 1))
    left = length
    while left:
        n = body.readinto(view[: min(left, len(view))])
        if not n:
            raise IntegrityError(f"the source ended {left} bytes early")
        if digest is not None:
            digest.update(view[:n])
        left -= n
        if bandwidth is not None:
            bandwidth.take(n)
        yield view[:n]


def read_exactly(body: Body, size: int) -> bytes:
    """`size` bytes of `body`, fewer only at its end."""
    data = body.read(size)
    while data and len(data) < size:
        more = body.read(size - len(data))
        if not more:
            break
        data += more
    return data


def read_ahead(
    body: Body, length: int, depth: int = 2, *, bandwidth: Bandwidth | None = None
) -> Iterator[memoryview]:
    """read_blocks, with a thread reading the next `depth` blocks while the current one is sent."""
    free: queue.Queue[bytearray | None] = queue.Queue()
    for _ in range(depth + 1):
        free.put(bytearray(min(READ_BLOCK, length) or 1))
    filled: queue.Queue[tuple[bytearray, int] | BaseException | None] = queue.Queue()

    def read() -> None:
        left = length
        try:
            while left:
                buffer = free.get()
                if buffer is None:
                    return  # the sender stopped
                n = body.readinto(memoryview(buffer)[: min(left, len(buffer))])
                if not n:
                    raise IntegrityError(f"the source ended {left} bytes early")
                left -= n
                filled.put((buffer, n))
            filled.put(None)
        except BaseException as e:
            filled.put(e)

    threading.Thread(target=read, name="s3s3-read-ahead", daemon=True).start()
    try:
        while (item := filled.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            buffer, n = item
            if bandwidth is not None:
                bandwidth.take(n)
            yield memoryview(buffer)[:n]
            free.put(buffer)
    finally:
        free.put(None)
