"""API keys and rate limits.

Keys are random ``csk-…`` strings; settings hold only their SHA-256 (``sha256:<hex>``),
so a leaked config file does not leak a key.  A key is high-entropy, so one
unsalted hash is enough: there is no dictionary to run against it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from codespark.errors import ConfigError

KEY_PREFIX = "csk-"


def new_key() -> str:
    """A fresh API key (32 random bytes)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The form stored in ``api_keys``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class KeyChecker:
    """Which configured key, if any, a presented bearer token is."""

    def __init__(self, hashes: list[str]) -> None:
        self._hashes = list(hashes)

    @property
    def enabled(self) -> bool:
        return bool(self._hashes)

    def identify(self, token: str | None) -> str | None:
        """The matching stored hash (an identity for rate limits and logs), or None."""
        if not token:
            return None
        presented = hash_key(token)
        match = None
        for stored in self._hashes:  # compare against every key, in constant time each
            if hmac.compare_digest(presented, stored):
                match = stored
        return match


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per identity: ``per_minute`` requests, bursting up to the same number."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_identities: int = 10_000
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._max = max_identities

    def acquire(self, identity: str) -> float:
        """0.0 if the request may go ahead, else the seconds until it may."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(identity)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._buckets.pop(next(iter(self._buckets)))
            bucket = self._buckets[identity] = _Bucket(float(self.per_minute), now)
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


def check_exposure(host: str, api_keys: list[str]) -> None:
    """Refuse to serve a non-loopback address without API keys."""
    if api_keys:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"Refusing to listen on {host} without an API key: anyone who can reach it could use the models. "
            "Run `codespark keys new`, put the printed hash in api_keys (config file, or "
            "CODESPARK_API_KEYS='[\"sha256:...\"]'), and send the key as 'Authorization: Bearer <key>'. "
            "Or bind to 127.0.0.1."
        )


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
