"""Requests a minute per caller, under a ceiling per ISP, so that one runaway script cannot
starve every desk of the database.

Every authenticated request is charged, once its token checks out and before its view runs:
to its caller (RATE_LIMIT_PER_USER a minute for a person; for an API key its own rate_limit,
or RATE_LIMIT_PER_KEY) and to the caller's ISP (RATE_LIMIT_PER_ISP, over
all its callers). Both counts are taken together, and only when both have room: a refused
request uses up neither, so the headers never promise what the other count would refuse.

- The counts are fixed one-minute windows. With REDIS_URL they live in Redis, shared by every
  worker and instance (one round trip: a script that checks both and adds to both); without it
  each process counts its own requests (a development setting: N processes allow N times).
- If Redis stops answering, each process counts on its own until it answers again; the outage
  and the recovery are logged once each, and no request fails for it.
- Every authenticated answer carries RateLimit-Limit (the caller's limit), RateLimit-Remaining
  (what both counts still allow) and RateLimit-Reset (seconds until the window turns). Over
  the limit: 429 in the envelope with Retry-After, and the view never runs.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass

from flask import current_app, g
from werkzeug.exceptions import TooManyRequests

from .scope import current_scope

log = logging.getLogger(__name__)

WINDOW = 60  # seconds
# After Redis failed, how long the processes count on their own before they try it again.
REDIS_RETRY_SECONDS = 5.0

# Checks both counts of this window and adds one to both only when both have room; returns
# {allowed, caller's count, ISP's count}. The keys share a hash tag (the ISP), so they live on
# one node of a Redis Cluster too.
_CHARGE = """
local caller = tonumber(redis.call('GET', KEYS[1]) or '0')
local isp = tonumber(redis.call('GET', KEYS[2]) or '0')
if caller >= tonumber(ARGV[1]) or isp >= tonumber(ARGV[2]) then
  return {0, caller, isp}
end
caller = redis.call('INCR', KEYS[1])
isp = redis.call('INCR', KEYS[2])
if caller == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if isp == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return {1, caller, isp}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A request's charge: whether it may go on, and what its headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class LocalCounts:
    """This process's counts of the current window."""

    def __init__(self):
        self._lock = threading.Lock()
        self._window = 0
        self._counts: dict[str, int] = {}

    def charge(self, keys: tuple[str, str], limits: tuple[int, int], window: int) -> tuple:
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            caller, isp = self._counts.get(keys[0], 0), self._counts.get(keys[1], 0)
            if caller >= limits[0] or isp >= limits[1]:
                return False, caller, isp
            self._counts[keys[0]], self._counts[keys[1]] = caller + 1, isp + 1
            return True, caller + 1, isp + 1


class RedisCounts:
    """The counts in Redis, shared by every process."""

    def __init__(self, url: str):
        import redis  # only where REDIS_URL is set

        self.errors = redis.RedisError
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(_CHARGE)

    def charge(self, keys: tuple[str, str], limits: tuple[int, int], window: int) -> tuple:
        windowed = [f"{key}:{window}" for key in keys]
        allowed, caller, isp = self.script(keys=windowed, args=[*limits, WINDOW * 2])
        return bool(allowed), int(caller), int(isp)


class RateLimits:
    """The app's limits: charge() a caller for its request."""

    def __init__(self, config: dict):
        self.per_user = config["RATE_LIMIT_PER_USER"]
        self.per_key = config["RATE_LIMIT_PER_KEY"]
        self.per_isp = config["RATE_LIMIT_PER_ISP"]
        self.local = LocalCounts()
        self.shared = RedisCounts(config["REDIS_URL"]) if config["REDIS_URL"] else None
        self._redis_down_until = 0.0
        self._redis_lock = threading.Lock()

    def charge(self, scope) -> Verdict:
        now = time.time()
        window = int(now // WINDOW)
        reset = max(1, math.ceil(WINDOW - now % WINDOW))
        # The ISP in braces: Redis Cluster's hash tag, so both keys sit on one node.
        if scope.key_id is not None:
            limits = (scope.rate_limit or self.per_key, self.per_isp)
            caller = f"key:{scope.key_id}"
        else:
            limits, caller = (self.per_user, self.per_isp), f"user:{scope.principal_id}"
        keys = (f"rl:{{{scope.isp_id}}}:{caller}", f"rl:{{{scope.isp_id}}}:isp")
        allowed, caller, isp = self._charge(keys, limits, window, now)
        remaining = max(0, min(limits[0] - caller, limits[1] - isp))
        return Verdict(allowed, limits[0], remaining, reset)

    def _charge(self, keys, limits, window, now) -> tuple:
        """In Redis when there is one and it answers; in this process otherwise."""
        if self.shared is None or now < self._redis_down_until:
            return self.local.charge(keys, limits, window)
        try:
            charged = self.shared.charge(keys, limits, window)
        except self.shared.errors as err:
            self._redis_failed(err)
            return self.local.charge(keys, limits, window)
        if self._redis_down_until:
            self._redis_answered()
        return charged

    def _redis_failed(self, err: Exception) -> None:
        with self._redis_lock:
            first = self._redis_down_until == 0.0
            self._redis_down_until = time.time() + REDIS_RETRY_SECONDS
        if first:
            log.error(
                "rate limits: Redis unavailable (%s); each process counts on its own until it "
                "answers again",
                type(err).__name__,
            )

    def _redis_answered(self) -> None:
        with self._redis_lock:
            recovered, self._redis_down_until = self._redis_down_until != 0.0, 0.0
        if recovered:
            log.warning("rate limits: Redis answers again; counts are shared once more")


def init_app(app) -> None:
    """The app's limits, when RATE_LIMITS is on; the headers on every charged answer."""
    if not app.config["RATE_LIMITS"]:
        return
    app.extensions["rate_limits"] = RateLimits(app.config)

    @app.after_request
    def _rate_limit_headers(response):
        verdict = g.get("rate_limit")
        if verdict is not None:
            response.headers.update(verdict.headers())
        return response


def charge() -> None:
    """Charge this request to its caller and ISP; 429 when either is over its limit."""
    limits = current_app.extensions.get("rate_limits")
    if limits is None:
        return
    verdict = limits.charge(current_scope())
    g.rate_limit = verdict
    if not verdict.allowed:
        raise TooManyRequests(
            "Too many requests: retry after the Retry-After delay.", retry_after=verdict.reset
        )
