"""One request rate per store, shared by every process that uses it: the fleet backs off together.

The store's transports take a turn before each request and report each
throttled answer through a `RequestLimit` (s3s3.store.throttle). `SharedLimit`
is that limit held in Redis, in one hash per store (named by its URL, as its
facts are), by one server-side script: each turn is a slot 1/rate after the
last one given to any process (Redis's clock orders them), and a throttled
answer lowers the one rate every process reads. No library fitted: the
rate-limit libraries with Redis storage (limits, pyrate-limiter) take a fixed
rate from each caller and answer allowed or not, where this needs a rate that
moves and is kept in Redis, and the wait until a turn, in one round trip.

When Redis cannot be reached the process carries on with its own `LocalLimit`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import redis

from s3s3 import names
from s3s3.store.throttle import LocalLimit, Pace

logger = logging.getLogger(__name__)

TTL_SECONDS = 86_400  # a store's hash outlives its last request by this much

# KEYS[1]: the store's hash; ARGV: what ("turn" or "throttled"), most, floor, decrease, increase, cooldown, ttl.
# Returns {seconds to wait, rate in force} as strings (Lua numbers would come back as integers).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local most, floor = tonumber(ARGV[2]), tonumber(ARGV[3])
local decrease, increase, cooldown = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local s = redis.call('HMGET', KEYS[1], 'rate', 'next', 'grown', 'lowered')
local rate = math.min(tonumber(s[1]) or most, most)
local nxt = tonumber(s[2]) or now
local grown = tonumber(s[3]) or now
local lowered = tonumber(s[4]) or (now - cooldown)
local since = math.max(grown, lowered + cooldown)
if now > since and rate < most then rate = math.min(most, rate + increase * most * (now - since)) end
grown = math.max(grown, now)
local wait = 0
if ARGV[1] == 'throttled' then
  redis.call('HINCRBY', KEYS[1], 'throttled', 1)
  if now - lowered >= cooldown then
    rate = math.max(floor, rate * decrease)
    lowered = now
  end
else
  local start = math.max(nxt, now)
  nxt = start + 1 / rate
  wait = start - now
end
local function f(x) return string.format('%.6f', x) end
redis.call('HSET', KEYS[1], 'rate', f(rate), 'next', f(nxt), 'grown', f(grown), 'lowered', f(lowered), 'most', f(most))
redis.call('EXPIRE', KEYS[1], ARGV[7])
return {f(wait), f(rate)}
"""


def rate_key(store: str) -> str:
    """The hash holding the shared rate of `store` (its URL, as s3s3.store.facts names it)."""
    return names.RATE_PREFIX + hashlib.sha1(store.encode()).hexdigest()[:16]


class SharedLimit:
    """A store's request rate held in Redis for every process; this process's own while Redis is away."""

    def __init__(self, client: redis.Redis, store: str, pace: Pace) -> None:
        self.key = rate_key(store)
        self.store = store
        self.pace = pace
        self.local = LocalLimit(pace)  # while Redis cannot be reached
        self.sleep = time.sleep  # tests shrink waits by replacing it
        self._script = client.register_script(_SCRIPT)
        self._rate = pace.most
        self._away = False

    @property
    def rate(self) -> float:
        return self.local.rate if self._away else self._rate

    def wait(self) -> None:
        wait = self._run("turn")
        if wait is None:
            self.local.wait()
        elif wait > 0:
            self.sleep(wait)

    def throttled(self) -> None:
        if self._run("throttled") is None:
            self.local.throttled()

    def _run(self, what: str) -> float | None:
        """Take a turn or report throttling in Redis; the seconds to wait, or None when Redis is away."""
        p = self.pace
        try:
            wait, rate = self._script(keys=[self.key], args=[what, p.most, p.floor, p.decrease, p.increase,
                                                             p.cooldown, TTL_SECONDS])  # fmt: skip
        except redis.RedisError as e:
            if not self._away:
                logger.warning("Cannot share the request rate of %s through Redis (%s): limiting this process alone",
                               self.store, e)  # fmt: skip
                self._away = True
            return None
        if self._away:
            logger.info("Sharing the request rate of %s through Redis again", self.store)
            self._away = False
        self._rate = float(rate)
        return float(wait)


@dataclass(frozen=True)
class Reading:
    """What Redis holds of one store's shared rate, for `s3s3 status`."""

    store: str
    rate: float | None  # the rate in force (None: no process has sent a request lately)
    most: float | None  # max_requests_per_second, as the last process to send one had it
    throttled: int  # throttled answers the fleet reported


def read(client: redis.Redis, store: str) -> Reading:
    """The shared rate of `store` as Redis holds it now."""
    raw = client.hmget(rate_key(store), ["rate", "most", "throttled"])
    rate, most, throttled = (None if v is None else float(v) for v in raw)
    return Reading(store, rate, most, int(throttled or 0))
