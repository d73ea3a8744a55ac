"""Request rates, counted atomically on the shared Redis cache (config/workstream.yaml `rateLimits`).

- `ClientRateThrottle` (DRF's default throttle): per authenticated client (user or API key),
  `rateLimits.default` with `perRole` overrides.
- `AnonymousRateMiddleware` (api/throttle_middleware.py): per client address,
  `rateLimits.anonymousPerIp`, for API requests that do not authenticate. A request without
  credentials is counted before anything else runs (authentication, the view); one with
  credentials is authenticated first and counted only if they fail, so a valid client is never
  refused because others share its address, and once the address's budget is spent failing
  credentials get 429 instead of 401.
- `TokenRateThrottle` (the token endpoint): per address (`tokenPerIp`), then per username
  (`tokenPerUsername`, across addresses), before the password is checked.

Every limit is a sliding window kept as a Redis sorted set of the accepted requests' times and
checked and recorded in one Lua script, so concurrent requests on any number of workers cannot
both take the last slot (DRF's cache throttle reads the history, decides, and writes it back: two
workers reading the same history both pass). A window never admits more than the limit, also
across its edges (a fixed window admits twice the limit around a boundary); a refused request is
not recorded, so a client over its limit gets back in as its oldest requests age out and
`Retry-After` says when. The cost is one set member per accepted request still in the window (at
most the limit per client). The script reads the Redis server's clock, so the web processes' clocks
do not matter.

The client address is REMOTE_ADDR unless it is one of `rateLimits.trustedProxies`: then
X-Forwarded-For is read from the right, past the trusted proxies, to the first address they did not
add. X-Forwarded-For is never believed by default. IPv6 clients are counted per /64 (one host's
usual allocation). django-axes uses the same address (`AXES_CLIENT_IP_CALLABLE`).

With `CACHE_BACKEND=locmem` (`make run`) the counts live in the process, under a lock.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterable, Mapping

from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from config import wsconfig
from directory.roles import roles_of

log = logging.getLogger(__name__)

ROLE_ORDER = ("admin", "supervisor", "service", "worker")  # the first a client has picks its perRole rate
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE = re.compile(r"^(?P<limit>[0-9]+)/(?P<count>[0-9]*)(?P<unit>s|sec|second|m|min|minute|h|hour|d|day)$")


def parse_rate(rate: str) -> tuple[int, int]:
    """`"100/s"`, `"20/2s"`, `"5/15min"` → (requests, window in milliseconds)."""
    match = RATE.match(rate)
    if match is None:
        raise ValueError(f"not a rate: {rate!r}")
    count = int(match["count"] or 1)
    if count < 1:
        raise ValueError(f"not a rate: {rate!r}")
    return int(match["limit"]), count * _UNITS[match["unit"][0]] * 1000


# KEYS[1]: the window's sorted set; ARGV: limit, window (ms), a member unique to this request.
# Returns 0 when the request is accepted (and recorded), else the milliseconds until a slot frees.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] == nil then
  return window
end
return tonumber(oldest[2]) + window - now
"""
_script = None
_local_lock = threading.Lock()


def _redis_hit(backend: RedisCache, name: str, limit: int, window_ms: int) -> int:
    global _script
    key = backend.make_key(name)
    client = backend._cache.get_client(key, write=True)  # Django's RedisCache keeps its redis-py client there
    if _script is None:
        _script = client.register_script(_SLIDING_WINDOW)
    return int(_script(keys=[key], args=[limit, window_ms, uuid.uuid4().hex], client=client))


def _local_hit(backend, name: str, limit: int, window_ms: int) -> int:
    # A process-local cache (locmem) is only ever seen by this process: a lock makes it atomic.
    with _local_lock:
        now = time.monotonic() * 1000
        times = [t for t in backend.get(name, []) if t > now - window_ms]
        if len(times) >= limit:
            return int(times[0] + window_ms - now) + 1 if times else window_ms
        backend.set(name, [*times, now], timeout=math.ceil(window_ms / 1000))
        return 0


def hit(name: str, rate: str) -> int | None:
    """Count one request against `name`'s window of `rate`: None if accepted, else seconds to wait."""
    limit, window_ms = parse_rate(rate)
    backend = caches["default"]
    count = _redis_hit if isinstance(backend, RedisCache) else _local_hit
    try:
        wait_ms = count(backend, f"throttle:{name}", limit, window_ms)
    except Exception:  # the limiter must not take the API down with the cache: fail open, loudly
        log.exception("rate limit %s not checked: the cache is unavailable", name)
        return None
    return None if wait_ms <= 0 else max(1, math.ceil(wait_ms / 1000))


# --- the client's address ---------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    if getattr(addr, "scope_id", None):  # fe80::1%eth0: the zone names our interface, not the client
        addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
    return mapped or addr


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind `rateLimits.trustedProxies` the X-Forwarded-For
    hop that the nearest untrusted party connected from; None when the server was given none
    (django-axes stores it as an address, so nothing else may come out)."""
    peer = _address(request.META.get("REMOTE_ADDR") or "")
    if peer is None:
        return None
    trusted = _networks(tuple(wsconfig.get().rateLimits.trustedProxies))

    def is_trusted(addr) -> bool:
        return any(addr in net for net in trusted)

    if not is_trusted(peer):
        return str(peer)
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:  # not an address a proxy of ours wrote: the last proxy is the client
            break
        peer = addr
        if not is_trusted(addr):
            break
    return str(peer)


def throttle_ip(request) -> str:
    """The address a per-address limit counts: an IPv4 address, an IPv6 address's /64, or
    "unknown" (every request without an address shares one window)."""
    addr = _address(client_ip(request) or "")
    if addr is None:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


# --- DRF throttles ----------------------------------------------------------------------------


class _WindowThrottle(BaseThrottle):
    """A DRF throttle over `hit`: subclasses name the windows a request counts against."""

    _wait: int | None = None

    def windows(self, request, view) -> Iterable[tuple[str, str]]:
        """(name, rate) of each window, checked in order; the first that refuses stops the rest."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        for name, rate in self.windows(request, view):
            self._wait = hit(name, rate)
            if self._wait is not None:
                return False
        return True

    def wait(self):
        return self._wait


class ClientRateThrottle(_WindowThrottle):
    """Per authenticated client: `rateLimits.default`, or the first of its roles in `perRole`
    (admin, supervisor, service, worker). Unauthenticated requests are the middleware's."""

    def windows(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return []
        limits = wsconfig.get().rateLimits
        per_role = limits.perRole.as_dict()
        roles = roles_of(user)
        rate = next((per_role[r] for r in ROLE_ORDER if r in roles and r in per_role), limits.default)
        return [(f"user:{user.pk}", rate)]


def _username_key(request) -> str | None:
    try:
        data = request.data
    except exceptions.APIException:  # unparsable, or not JSON: the view reports it
        return None
    name = data.get(get_user_model().USERNAME_FIELD) if isinstance(data, Mapping) else None
    if not isinstance(name, str) or not name.strip():
        return None
    # Spellings a directory may take for one account share a window.
    folded = unicodedata.normalize("NFKC", name.strip()).casefold()
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()[:32]  # lone surrogates too


class TokenRateThrottle(_WindowThrottle):
    """The token endpoint: per address (`tokenPerIp`; a password spray from one address), then per
    username (`tokenPerUsername`; one account tried from many addresses). A request refused by its
    address is not counted against the username, so a spray cannot lock its victims out elsewhere."""

    def windows(self, request, view):
        limits = wsconfig.get().rateLimits
        yield f"token-ip:{throttle_ip(request)}", limits.tokenPerIp
        username = _username_key(request)  # the body is read only once the address has passed
        if username is not None:
            yield f"token-user:{username}", limits.tokenPerUsername
