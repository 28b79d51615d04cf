"""Which keys an audit reads back, and how (s3s3.audit.fixity)."""

from __future__ import annotations

from collections.abc import Callable

from s3s3.audit.fixity import picked, read_md5
from s3s3.config import Config
from s3s3.copy.limits import Bandwidth
from s3s3.store import open_store
from tests.helpers import data_of, md5_hex, new_bucket
from tests.servers.base import Server
from tests.stores import FaultyStore, client_of

KEYS = [f"photos/{i:05d}.jpg" for i in range(20_000)]


def test_a_fraction_picks_about_that_share_of_keys_the_same_ones_for_the_same_seed() -> None:
    one_percent = {k for k in KEYS if picked(k, 0.01, seed=7)}

    assert 150 <= len(one_percent) <= 250
    assert one_percent == {k for k in reversed(KEYS) if picked(k, 0.01, seed=7)}  # whatever the order
    assert one_percent != {k for k in KEYS if picked(k, 0.01, seed=8)}
    assert all(picked(k, 1.0, seed=7) for k in KEYS[:100])
    assert not any(picked(k, 0.0, seed=7) for k in KEYS[:100])


class CountingBandwidth(Bandwidth):
    """A Bandwidth with no cap that remembers every take."""

    def __init__(self) -> None:
        super().__init__(0)
        self.taken: list[int] = []

    def take(self, size: int) -> None:
        self.taken.append(size)
        super().take(size)


def test_a_read_back_hashes_every_byte_takes_them_from_the_bandwidth_and_closes_its_body(
    make_config: Callable[..., Config], s3_source: Server
) -> None:
    # Given an object of 2.5 MiB
    config = make_config((s3_source, new_bucket(s3_source)), [(s3_source, new_bucket(s3_source))])
    store = FaultyStore(open_store(config.source))
    data = data_of(5 * 512 * 1024, seed=3)
    client_of(store).put_object(Bucket=store.endpoint.bucket, Key="k", Body=data)
    bandwidth = CountingBandwidth()

    # When it is read back
    md5, size = read_md5(store, "k", bandwidth)

    # Then its MD5 and size are the bytes', each block was taken from the bandwidth, and one GET was made
    assert (md5, size) == (md5_hex(data), len(data))
    assert sum(bandwidth.taken) == len(data) and len(bandwidth.taken) == 3
    assert [c.operation for c in store.calls] == ["get"]
