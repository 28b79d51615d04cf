"""s3s3.store.probes: what a copy's plan asks of a store, answered from its Facts before it is ever probed."""

from __future__ import annotations

import pytest

from s3s3.config import Endpoint
from s3s3.store import Fact, Facts, ObjectInfo
from s3s3.store.probes import checks_content_md5, etags_are_md5s, part_count, source_part_size

pytestmark = pytest.mark.timeout(30)


class Untouchable:
    """A store whose facts are all that may be read: any request fails the test."""

    def __init__(self, **endpoint: object) -> None:
        self.endpoint = Endpoint(name="dest1", bucket="b", endpoint_url="http://127.0.0.1:9", **endpoint)  # type: ignore[arg-type]
        self.facts = Facts("http://127.0.0.1:9")
        self.label = "dest1:b"

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the probe sent {name}")


@pytest.mark.parametrize(
    ("etag", "count"),
    [("0123456789abcdef0123456789abcdef-3", 3), ("0123456789abcdef0123456789abcdef", None), ("x-0", None),
     ("x-10001", None), ("x-y", None)],
)  # fmt: skip
def test_a_multipart_etag_says_how_many_parts_and_nothing_else_does(etag: str, count: int | None) -> None:
    assert part_count(etag) == count


def test_etags_are_not_md5s_under_kms_or_once_a_copy_found_out() -> None:
    assert etags_are_md5s(Untouchable()) is True  # type: ignore[arg-type]
    assert etags_are_md5s(Untouchable(sse="aws:kms")) is False  # type: ignore[arg-type]
    learnt = Untouchable()
    learnt.facts.learn(Fact.PART_ETAGS_NOT_MD5)
    assert etags_are_md5s(learnt) is False  # type: ignore[arg-type]


def test_what_is_known_of_content_md5_is_answered_without_a_request() -> None:
    checks, ignores = Untouchable(), Untouchable()
    checks.facts.learn(Fact.CHECKS_CONTENT_MD5)
    ignores.facts.learn(Fact.IGNORES_CONTENT_MD5)
    assert checks_content_md5(checks) is True  # type: ignore[arg-type]
    assert checks_content_md5(ignores) is False  # type: ignore[arg-type]


def test_a_source_known_to_answer_for_the_whole_object_is_not_asked_for_its_parts() -> None:
    source, dest = Untouchable(), Untouchable()
    source.facts.learn(Fact.NO_PART_NUMBER)
    info = ObjectInfo("k", 20 << 20, "0123456789abcdef0123456789abcdef-4")
    assert source_part_size(source, dest, info) is None  # type: ignore[arg-type]
    assert source_part_size(Untouchable(), dest, ObjectInfo("k", 1, "0" * 32)) is None  # type: ignore[arg-type]
