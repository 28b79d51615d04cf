"""s3s3.store.throttle: turns at the configured rate, lowered by throttled answers and grown back after."""

from __future__ import annotations

import pytest

from s3s3.config import endpoint_from_options
from s3s3.store import Attributes, open_store
from s3s3.store.throttle import LocalLimit, Pace, Throttle, throttling
from tests.faults import FaultProxy
from tests.helpers import new_bucket
from tests.servers.base import Server

pytestmark = pytest.mark.timeout(60)


class Clock:
    """A clock that moves only when a limit sleeps, or a test says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limit_on(clock: Clock, most: float) -> LocalLimit:
    limit = LocalLimit(Pace(most))
    limit.now, limit.sleep = (lambda: clock.now), clock.sleep
    return limit


def test_turns_are_spaced_one_over_the_rate_apart() -> None:
    # Given a limit of 10 requests per second
    clock = Clock()
    limit = limit_on(clock, 10)

    # When 11 requests take their turns back to back
    for _ in range(11):
        limit.wait()

    # Then the first goes at once and each of the others a tenth of a second after the one before
    assert clock.slept == pytest.approx([0.1] * 10)


def test_a_throttled_answer_lowers_the_rate_once_a_cooldown_and_never_below_the_floor() -> None:
    # Given a limit of 100 requests per second
    clock = Clock()
    limit = limit_on(clock, 100)

    # When the store throttles three times at once
    for _ in range(3):
        limit.throttled()

    # Then the rate fell once, by the decrease factor
    assert limit.rate == pytest.approx(70)

    # When it throttles once a cooldown for a long while
    for _ in range(30):
        clock.now += limit.pace.cooldown
        limit.throttled()

    # Then the rate rests on the floor
    assert limit.rate == pytest.approx(limit.pace.floor) and limit.pace.floor == 5


def test_the_rate_grows_back_additively_while_nothing_is_throttled() -> None:
    # Given a limit lowered by throttling to 70 of its 100 requests per second
    clock = Clock()
    limit = limit_on(clock, 100)
    limit.throttled()

    # When four seconds pass after the cooldown without throttling
    clock.now += limit.pace.cooldown + 4
    limit.wait()

    # Then it grew by 5 % of the most each second, and no further than the most
    assert limit.rate == pytest.approx(90)
    clock.now += 60
    limit.wait()
    assert limit.rate == pytest.approx(100)


def test_slowdown_503_and_429_count_as_throttling_and_other_errors_do_not() -> None:
    assert throttling(503, "SlowDown") and throttling(503, "") and throttling(429, "") and throttling(400, "SlowDown")
    assert not throttling(500, "InternalError") and not throttling(404, "NoSuchKey") and not throttling(403, "")


def test_a_store_without_a_limit_waits_for_nothing_and_still_counts_throttled_answers() -> None:
    # Given the throttle of a store without max_requests_per_second
    throttle = Throttle.of(0)

    # When requests take turns and one is throttled
    throttle.before()
    throttle.answered(503, "SlowDown")

    # Then there is no limit to lower, and the answer is counted
    assert throttle.limit is None and throttle.rate is None and throttle.throttled == 1


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_both_transports_take_a_turn_for_every_attempt_and_report_slowdown(
    s3_source: Server, transport: str
) -> None:
    # Given a store behind a proxy that answers SlowDown above 5 requests a second, limited to 1000 a second
    bucket = new_bucket(s3_source)
    proxy = FaultProxy(s3_source.endpoint_url).start()
    try:
        options = {"bucket_name": bucket, "endpoint_url": proxy.url, "aws_access_key_id": s3_source.access_key,
                   "aws_secret_access_key": s3_source.secret_key, "max_requests_per_second": "1000"}  # fmt: skip
        if transport == "boto3":
            options["signature_version"] = "s3"
        store = open_store(endpoint_from_options("dest1", options))
        turns: list[int] = []
        assert store.throttle.limit is not None
        real_wait = store.throttle.limit.wait
        store.throttle.limit.wait = lambda: turns.append(1) or real_wait()  # type: ignore[method-assign]
        proxy.max_rate = 5

        # When ten objects are written at once
        for i in range(10):
            store.put(f"k{i}", b"x", length=1, md5=None, attrs=Attributes())

        # Then every request sent (retries included) took a turn, and the SlowDowns lowered the rate
        sent = sum(proxy.counts.values())
        assert proxy.counts["slowdown"] > 0 and len(turns) == sent
        assert store.throttle.throttled == proxy.counts["slowdown"]
        assert store.throttle.rate is not None and store.throttle.rate < 1000
    finally:
        proxy.stop()

