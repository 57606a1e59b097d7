"""Which ``Host`` and ``Origin`` headers the server answers: the defence against DNS rebinding.

A page the user merely visits can point its own name at 127.0.0.1 and then call a
loopback server "same-origin" (Ollama's CVE-2024-28224).  The browser still sends
the attacker's name in ``Host``, so a loopback server answers only loopback names
(``localhost``, ``127.0.0.1``, ``[::1]``, any port) and the ``allowed_hosts``
setting.  A cross-site page can also send requests without rebinding; browsers
mark those with ``Origin``, so a request that carries an ``Origin`` must come
from a loopback page or one listed in ``cors_origins``.  Clients that are not
browsers (editors, curl, the OpenAI SDK) send no ``Origin`` and are unaffected.

On a non-loopback bind API keys are required (``server/access.py``), and
``allowed_hosts``, when set, still limits the names served.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name is this machine only."""
    name = host.strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without port or brackets, lower case: ``[::1]:8080`` -> ``::1``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _matches(name: str, patterns: frozenset[str]) -> bool:
    if "*" in patterns or name in patterns:
        return True
    return any(p.startswith("*.") and name.endswith(p[1:]) for p in patterns)


@dataclass(frozen=True)
class HostPolicy:
    """The hosts and origins one server answers, from its bind address and settings."""

    loopback_bind: bool
    allowed_hosts: frozenset[str]
    cors_origins: frozenset[str]

    @classmethod
    def for_bind(cls, bind: str, allowed_hosts: list[str], cors_origins: list[str]) -> HostPolicy:
        return cls(
            is_loopback(bind),
            frozenset(h.lower().rstrip(".") for h in allowed_hosts),
            frozenset(o.lower().rstrip("/") for o in cors_origins),
        )

    def host_refusal(self, header: str | None) -> str | None:
        """Why a request with this ``Host`` is refused, or None when it is served."""
        if header is None or not header.strip():
            return "The request has no Host header; send one (HTTP/1.1 requires it)."
        name = host_name(header)
        if self.loopback_bind and name in LOOPBACK_NAMES:
            return None
        if _matches(name, self.allowed_hosts) or (not self.loopback_bind and not self.allowed_hosts):
            return None
        served = "localhost, 127.0.0.1 and [::1]" if self.loopback_bind else "the names in allowed_hosts"
        return (
            f"Host {name!r} is not served here: this server answers {served} (a guard against DNS rebinding). "
            "If you reach it under another name, add that name to the allowed_hosts setting."
        )

    def origin_refusal(self, origin: str | None) -> str | None:
        """Why a browser request from ``origin`` is refused, or None (no ``Origin``: not a browser page)."""
        if origin is None:
            return None
        value = origin.strip().lower().rstrip("/")
        if _matches(value, self.cors_origins):
            return None
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname and is_loopback(parts.hostname):
            return None
        return (
            f"Requests from the web page {origin!r} are refused. To let a page call this server, "
            "add its origin to the cors_origins setting."
        )
