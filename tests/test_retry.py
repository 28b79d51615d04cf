"""s3s3.retry: what is transient, how long to wait, when to give up."""

from __future__ import annotations

import http.client
import ssl
import time
from xml.etree.ElementTree import ParseError

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError

from s3s3 import retry
from s3s3.retry import Budget, RetryPolicy, backoff, is_transient
from tests.helpers import client_error

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
        TimeoutError("timed out"),
        ParseError("no element found: line 1, column 40"),  # an XML answer cut short
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ResponseStreamingError(error=ProtocolError("Connection broken: IncompleteRead")),
        ProtocolError("Connection broken"),
        client_error("SlowDown", 503, "PutObject"),
        client_error("ServiceUnavailable", 503, "GetObject"),
        client_error("InternalError", 500, "UploadPart"),
        client_error("502", 502, "HeadObject"),
        client_error("RequestTimeout", 400, "PutObject"),
        client_error("TooManyRequests", 429, "GetObject"),
    ],
    ids=lambda e: type(e).__name__ + (f"-{e.response['Error']['Code']}" if isinstance(e, ClientError) else ""),
)
def test_cut_refused_reset_and_throttled_requests_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error("NoSuchKey", 404, "GetObject"),
        client_error("AccessDenied", 403, "PutObject"),
        client_error("InvalidArgument", 400, "PutObject"),
        client_error("BadDigest", 400, "PutObject"),
        client_error("PreconditionFailed", 412, "GetObject"),
        ssl.SSLCertVerificationError("certificate verify failed"),
        http.client.HTTPException("got more than 100 headers"),
        NoCredentialsError(),
        ParamValidationError(report="bad"),
        ValueError("a bug"),
    ],
    ids=lambda e: type(e).__name__ + (f"-{e.response['Error']['Code']}" if isinstance(e, ClientError) else ""),
)
def test_refusals_and_programming_errors_are_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


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
        raise client_error("AccessDenied", 403, "PutObject")

    tries = []
    with pytest.raises(Exception, match="AccessDenied"):
        retry.call(lambda: tries.append(1) or refused(), Budget(RetryPolicy(max_seconds=5)), what="refused")
    assert tries == [1]  # a refusal is not tried again

    with pytest.raises(ConnectionResetError):
        retry.call(lambda: (_ for _ in ()).throw(ConnectionResetError("down")), Budget(RetryPolicy(max_seconds=0)),
                   what="down")  # fmt: skip
