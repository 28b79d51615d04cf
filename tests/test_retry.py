"""s3s3.retry: what is transient, how long to wait, when to give up."""

from __future__ import annotations

import http.client
import ssl
import time
from xml.etree.ElementTree import ParseError

import pytest

from s3s3 import retry
from s3s3.retry import Budget, RetryPolicy, backoff, is_transient, transient_answer, transient_failure
from s3s3.store.base import store_error

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "error",
    [
        http.client.IncompleteRead(b"half", 100),  # a body cut by a clean close
        http.client.RemoteDisconnected("Remote end closed connection without response"),
        http.client.BadStatusLine("garbage"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        ParseError("no element found: line 1, column 40"),  # an XML answer cut short
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_connection_refused_reset_closed_or_cut_short_is_a_transient_failure(error: BaseException) -> None:
    assert transient_failure(error)
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ssl.SSLCertVerificationError("certificate verify failed"),
        http.client.HTTPException("got more than 100 headers"),
        ValueError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_certificate_refused_an_answer_too_big_to_read_and_a_bug_are_not(error: BaseException) -> None:
    assert not transient_failure(error)


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (503, "SlowDown", True),
        (503, "ServiceUnavailable", True),
        (500, "InternalError", True),
        (502, "502", True),
        (504, "504", True),
        (400, "RequestTimeout", True),
        (429, "TooManyRequests", True),
        (404, "NoSuchKey", False),
        (403, "AccessDenied", False),
        (400, "InvalidArgument", False),
        (400, "BadDigest", False),
        (412, "PreconditionFailed", False),
    ],
)
def test_5xx_429_and_throttling_answers_are_transient_and_refusals_are_not(
    status: int, code: str, transient: bool
) -> None:
    assert transient_answer(status, code) is transient
    assert is_transient(store_error("GetObject", status, code, "")) is transient


def test_backoff_doubles_from_the_first_delay_to_the_cap_with_jitter_of_up_to_half() -> None:
    for attempt, full in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (20, 30.0)]:
        waits = [backoff(attempt, 0.5, 30.0) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > full / 10  # jittered, not one value


def test_a_policy_retries_until_its_time_is_spent_not_a_fixed_count() -> None:
    policy = RetryPolicy(max_seconds=300.0)
    now = time.monotonic()
    assert policy.next_delay(50, now) is not None  # fifty tries in, and time left: go on
    assert policy.next_delay(1, now - 299.9) is None  # the wait would pass the budget
    assert RetryPolicy(max_seconds=300.0, attempts=3).next_delay(3, now) is None  # a bound on tries, when asked


def test_call_retries_transient_failures_then_returns_and_raises_the_last_error_when_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry, "backoff", lambda attempt, first, cap: 0.0)
    failures = [ConnectionResetError("reset"), http.client.IncompleteRead(b"", 5)]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert retry.call(flaky, Budget(RetryPolicy(max_seconds=5)), what="flaky") == "done"

    def refused() -> str:
        raise store_error("PutObject", 403, "AccessDenied", "no")

    tries = []
    with pytest.raises(Exception, match="AccessDenied"):
        retry.call(lambda: tries.append(1) or refused(), Budget(RetryPolicy(max_seconds=5)), what="refused")
    assert tries == [1]  # a refusal is not tried again

    with pytest.raises(ConnectionResetError):
        retry.call(lambda: (_ for _ in ()).throw(ConnectionResetError("down")), Budget(RetryPolicy(max_seconds=0)),
                   what="down")  # fmt: skip
