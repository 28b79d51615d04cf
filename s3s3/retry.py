"""What counts as a transient failure, how long to wait before trying again, and for how long in all.

One definition of "transient", used by every loop that retries: a connection
refused, reset or closed at any point of any request (including a body cut
short, which http.client reports as IncompleteRead), a timeout, a 5xx answer
or a throttling code. One backoff function, doubling to a cap with jitter,
used by every loop that waits.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from xml.etree.ElementTree import ParseError

from s3s3.errors import StoreError

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Codes botocore's standard retry mode tries again (throttling and transient errors).
TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
     "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "BandwidthLimitExceeded",
     "ProvisionedThroughputExceededException", "TooManyRequestsException"}
)  # fmt: skip
# Resets, refusals, timeouts (OSError); answers cut short (http.client's, and an XML document cut mid-way).
_CUT = (OSError, http.client.IncompleteRead, http.client.BadStatusLine, http.client.ResponseNotReady, ParseError)


def transient_answer(status: int, code: str) -> bool:
    """True for an S3 answer worth sending again: a 5xx, or a throttling or timeout code."""
    # 501 NotImplemented (Swift, to SSE and tagging headers) will not be implemented by the next try.
    return (status >= 500 and status != 501) or status == 429 or code in TRANSIENT_CODES


def is_transient(error: BaseException) -> bool:
    """True when `error` says the store or the network failed for now, not that the request was wrong."""
    if isinstance(error, StoreError):
        return error.transient
    return transient_failure(error)


def transient_failure(error: BaseException) -> bool:
    """True when the connection, not the request, failed: what a transport sees before it wraps it.

    The lean transport meets these as they are; the boto3 transport meets
    them inside botocore's own exceptions, and says which of those are
    connection failures (s3s3.store.boto) before asking here.
    """
    if isinstance(error, ssl.SSLCertVerificationError):
        return False  # a certificate that does not verify will not verify next time either
    return isinstance(error, _CUT)


def backoff(attempt: int, first: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): doubling from `first` to `cap`, jittered.

    The jitter keeps many copies that failed together (a store that went
    away for a moment) from all coming back at the same instant.
    """
    return min(cap, first * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How long, and how often, one key (or one part of it) is tried again after a transient failure.

    Tries go on, backing off, until `max_seconds` have passed since the first
    (so a short outage of the store is ridden out whatever its length below
    that); `attempts`, when set, also bounds their number.
    """

    max_seconds: float = 300.0
    attempts: int = 0  # 0: no bound but the time
    first_delay: float = 0.5  # seconds before the second try; doubles each time
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt`."""
        return backoff(attempt, self.first_delay, self.max_delay)

    def next_delay(self, attempt: int, started: float) -> float | None:
        """The wait before trying again after attempt `attempt` of a task begun at `started`, or None: give up."""
        if self.attempts and attempt >= self.attempts:
            return None
        delay = self.delay(attempt)
        if time.monotonic() - started + delay > self.max_seconds:
            return None
        return delay


DEFAULT_RETRY = RetryPolicy()
ABORT_RETRY = RetryPolicy(max_seconds=30.0)  # an abort refused for now is asked again this long


@dataclass(frozen=True)
class Budget:
    """A RetryPolicy's time, counted from when a task began: what is left for the tries of its parts."""

    policy: RetryPolicy = DEFAULT_RETRY
    started: float = field(default_factory=time.monotonic)

    def next_delay(self, attempt: int) -> float | None:
        """The wait before trying again after failed attempt `attempt`, or None when the budget is spent."""
        return self.policy.next_delay(attempt, self.started)

    def spent(self) -> bool:
        """True once the policy's time is up."""
        return time.monotonic() - self.started >= self.policy.max_seconds


def call(
    fn: Callable[[], T],
    budget: Budget,
    *,
    what: str,
    retryable: Callable[[BaseException], bool] = is_transient,
) -> T:
    """`fn()`, tried again after each retryable failure until the budget is spent; then its last error is raised."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as e:
            delay = budget.next_delay(attempt) if retryable(e) else None
            if delay is None:
                raise
            logger.warning("Retrying %s in %.1fs after: %s", what, delay, describe(e))
            time.sleep(delay)


def describe(error: BaseException | None) -> str:
    """An error as one line of at most 300 characters, for logs and the dead-letter stream."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]
