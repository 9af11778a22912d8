"""Requests a minute per caller, under a ceiling per ISP, so that one runaway script cannot
starve every desk of the database.

Every authenticated request is charged, once its token checks out and before its view runs:
to its caller (RATE_LIMIT_PER_USER a minute for a person; for an API key its own rate_limit,
or RATE_LIMIT_PER_KEY) and to the caller's ISP (RATE_LIMIT_PER_ISP, over
all its callers). Both counts are taken together, and only when both have room: a refused
request uses up neither, so the headers never promise what the other count would refuse.

- The counts are fixed one-minute windows. With REDIS_URL they live in Redis, shared by every
  worker and instance (SharedCounts): far from its limits a request is counted in memory and
  added to Redis by a thread within SYNC_INTERVAL; near a limit, it is charged in Redis itself
  (one round trip: a script that checks both counts and adds to both). Without REDIS_URL each
  process counts its own requests (a development setting: N processes allow N times).
- If Redis stops answering, each process counts on its own until it answers again; the outage
  and the recovery are logged once each, and no request fails for it.
- Every authenticated answer carries RateLimit-Limit (the caller's limit), RateLimit-Remaining
  (what both counts still allow) and RateLimit-Reset (seconds until the window turns). Over
  the limit: 429 in the envelope with Retry-After, and the view never runs.
"""

import logging
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass

from flask import current_app, g
from werkzeug.exceptions import TooManyRequests

from .scope import current_scope

log = logging.getLogger(__name__)

WINDOW = 60  # seconds
# After Redis failed, how long the processes count on their own before they try it again.
REDIS_RETRY_SECONDS = 5.0

# Adds this process's requests not yet counted (ARGV[4], ARGV[5]: already let through), then
# checks both counts of this window and adds one to both only when both have room; returns
# {allowed, caller's count, ISP's count}. The keys share a hash tag (the ISP), so they live on
# one node of a Redis Cluster too.
_CHARGE = """
local caller = redis.call('INCRBY', KEYS[1], ARGV[4])
local isp = redis.call('INCRBY', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if caller >= tonumber(ARGV[1]) or isp >= tonumber(ARGV[2]) then
  return {0, caller, isp}
end
caller = redis.call('INCR', KEYS[1])
isp = redis.call('INCR', KEYS[2])
return {1, caller, isp}
"""
# How often each process adds the requests it let through to Redis and reads the counts back,
# and how long it keeps reading back a count it no longer charges.
SYNC_INTERVAL = 0.05  # seconds
IDLE_SECONDS = 2.0
# A count is charged in memory while more than this is left of its limit (a quarter, at least
# 50); closer to the limit every request is charged in Redis. Other processes' requests reach
# a process's view within about two intervals: the headroom covers what a caller can send
# meanwhile (150 of a user's 600 a minute: 1,500 a second), so no count passes its limit.
MIN_HEADROOM = 50


def headroom(limit: int) -> int:
    return max(limit // 4, MIN_HEADROOM)


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


class SharedCounts:
    """The counts in Redis, shared by every process, and charged in memory while they are far
    from their limits.

    A request whose caller and ISP both have more than headroom(limit) left, as this process
    last read them plus what it let through since, is let through in memory (a count this
    process has not read yet is read first, in Redis); a thread adds
    those requests to Redis and reads the counts back every SYNC_INTERVAL. Closer to a limit,
    each request is charged in Redis (with this process's uncounted ones first), exactly. So a
    count can pass its limit only by what other processes let through in memory within one
    interval, which they do only while the count they read was more than its headroom away.
    """

    def __init__(self, url: str, on_error, on_answer):
        import redis  # only where REDIS_URL is set

        self.errors = redis.RedisError
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(_CHARGE)
        self._on_error, self._on_answer = on_error, on_answer  # Redis failed / answered
        self._lock = threading.Lock()
        self._window = 0
        self._known: dict[str, int] = {}  # each count as Redis last said, this window
        self._pending: dict[str, int] = {}  # let through here since, not yet in Redis
        self._sending: dict[str, int] = {}  # on their way to Redis (counted until it answers)
        self._used: dict[str, float] = {}  # when this process last charged each count
        self._syncing = False
        forked = weakref.WeakMethod(self._forked)
        os.register_at_fork(after_in_child=lambda: (method := forked()) and method())

    def _forked(self) -> None:
        """A forked worker has none of its parent's threads, nor its uncounted requests."""
        self._lock = threading.Lock()
        self._syncing, self._known, self._pending, self._sending = False, {}, {}, {}
        self._used = {}

    def charge(self, keys: tuple[str, str], limits: tuple[int, int], window: int) -> tuple:
        self._keep_syncing()
        now = time.time()
        with self._lock:
            if window != self._window:
                self._window, self._known, self._pending, self._sending = window, {}, {}, {}
            counts = [self._count(key) for key in keys]
            far = zip(counts, limits, strict=True)
            read = all(key in self._known for key in keys)  # else: first read it from Redis
            if read and all(limit - count > headroom(limit) for count, limit in far):
                for key in keys:
                    self._pending[key] = self._pending.get(key, 0) + 1
                    self._used[key] = now
                return True, counts[0] + 1, counts[1] + 1
            sent = self._send(keys)
        windowed = [f"{key}:{window}" for key in keys]
        try:
            allowed, caller, isp = self.script(
                keys=windowed, args=[*limits, WINDOW * 2, *(sent.get(key, 0) for key in keys)]
            )
        except self.errors:
            self._landed(window, sent, None)
            raise
        self._on_answer()
        self._landed(window, sent, {keys[0]: int(caller), keys[1]: int(isp)}, now)
        return bool(allowed), int(caller), int(isp)

    def _count(self, key: str) -> int:
        """A count as this process knows it (under the lock): what Redis last said, what is
        on its way there, and what was let through since."""
        return self._known.get(key, 0) + self._sending.get(key, 0) + self._pending.get(key, 0)

    def _send(self, keys) -> dict:
        """Under the lock: these counts' uncounted requests, now on their way to Redis."""
        sent = {key: self._pending.pop(key) for key in keys if key in self._pending}
        for key, count in sent.items():
            self._sending[key] = self._sending.get(key, 0) + count
        return sent

    def _landed(self, window: int, sent: dict, totals: dict | None, now=None) -> None:
        """Redis took what was sent and now holds `totals`, charged now (or, now None, read
        back by the sync, which an idle count has left meanwhile); or (totals None) it did
        not answer, and what was sent waits for the next try."""
        with self._lock:
            if window != self._window:
                return
            for key, count in sent.items():
                left = self._sending.get(key, 0) - count
                if left > 0:
                    self._sending[key] = left
                else:
                    self._sending.pop(key, None)
                if totals is None:
                    self._pending[key] = self._pending.get(key, 0) + count
            if totals is None:
                return
            if now is None:
                totals = {key: count for key, count in totals.items() if key in self._used}
            else:
                self._used.update(dict.fromkeys(totals, now))
            self._known.update(totals)

    # --- The sync thread ------------------------------------------------------------------

    def _keep_syncing(self) -> None:
        """Start this process's sync thread, once."""
        if self._syncing:
            return
        with self._lock:
            if not self._syncing:
                self._syncing = True
                threading.Thread(target=self._sync_forever, name="rate-limits", daemon=True).start()

    def _sync_forever(self) -> None:
        while True:
            time.sleep(SYNC_INTERVAL)
            try:
                self.sync()
            except self.errors as err:
                self._on_error(err)
            except Exception:  # the thread must outlive any surprise; the next sync retries
                log.exception("rate limits: sync failed")

    def sync(self) -> None:
        """Add the requests let through here to Redis, and read back every count this process
        charged in the last IDLE_SECONDS."""
        now = time.time()
        with self._lock:
            window = self._window
            idle = [key for key, at in self._used.items() if now - at >= IDLE_SECONDS]
            for key in idle:  # no longer read back: read afresh at its next charge
                del self._used[key]
                self._known.pop(key, None)
            flushed = self._send(list(self._pending))
            keys = list(self._used.keys() | flushed.keys())
        if not keys:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.incrby(f"{key}:{window}", flushed.get(key, 0))
        for key in keys:
            pipe.expire(f"{key}:{window}", WINDOW * 2)
        try:
            totals = pipe.execute()[: len(keys)]
        except self.errors:
            self._landed(window, flushed, None)
            raise
        self._on_answer()
        self._landed(window, flushed, dict(zip(keys, map(int, totals), strict=True)))


class RateLimits:
    """The app's limits: charge() a caller for its request."""

    def __init__(self, config: dict):
        self.per_user = config["RATE_LIMIT_PER_USER"]
        self.per_key = config["RATE_LIMIT_PER_KEY"]
        self.per_isp = config["RATE_LIMIT_PER_ISP"]
        self.local = LocalCounts()
        url = config["REDIS_URL"]
        self.shared = SharedCounts(url, self._redis_failed, self._redis_answered) if url else None
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
            return self.shared.charge(keys, limits, window)
        except self.shared.errors as err:
            self._redis_failed(err)
            return self.local.charge(keys, limits, window)

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
        """Redis answered a charge or a sync (not merely a charge made in memory)."""
        if not self._redis_down_until:
            return
        with self._redis_lock:
            recovered, self._redis_down_until = self._redis_down_until != 0.0, 0.0
        if recovered:
            log.warning("rate limits: Redis answers again; counts are shared once more")


def init_app(app) -> None:
    """The app's limits, unless RATE_LIMITS is off; the headers on every charged answer."""
    if not app.config["RATE_LIMITS"]:
        return
    app.extensions["rate_limits"] = RateLimits(app.config)

    @app.after_request
    def _rate_limit_headers(response):
        verdict = g.get("rate_limit")
        if verdict is not None:  # set nowhere else: added, not replaced
            response.headers.extend(verdict.headers())
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
