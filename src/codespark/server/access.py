"""Who may call the server, how often, and how much: host and origin, API keys, rate limit, body size.

Pure ASGI middlewares, so they run before any body is parsed and can count
the bytes of a chunked upload as they arrive.  ``HostGuard`` is the outermost
layer and covers every path; ``AccessControl`` leaves ``/health`` open for load
balancers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from codespark.errors import (
    AuthenticationError,
    CodesparkError,
    ForbiddenError,
    RateLimitError,
    RequestTooLargeError,
)
from codespark.guard.auth import KeyChecker, RateLimiter
from codespark.guard.hosts import HostPolicy
from codespark.server.errors import error_body, error_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
log = logging.getLogger("codespark.server")


class HostGuard:
    """Refuse (403) requests whose ``Host`` or ``Origin`` the policy does not serve: DNS rebinding, cross-site pages."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self.policy.host_refusal(headers.get("host")) or self.policy.origin_refusal(headers.get("origin"))
        if refusal is not None:
            log.warning("refused a request: %s", refusal)
            await _send_error(send, ForbiddenError(refusal))
            return
        await self.app(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (a repeated header: the first)."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


class AccessControl:
    """API keys (``Authorization: Bearer``), a per-key rate limit (429) and a body size limit (413)."""

    def __init__(
        self, app: ASGIApp, keys: KeyChecker, limiter: RateLimiter, max_body_bytes: int, log_bodies: bool = False
    ) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.log_bodies = log_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            identity = self._identify(scope)
            wait = self.limiter.acquire(identity)
            if wait > 0:
                raise RateLimitError(
                    f"Rate limit of {self.limiter.per_minute} requests per minute reached; retry in {wait:.1f} s.",
                    retry_after=wait,
                )
            self._check_declared_size(scope)
        except CodesparkError as exc:
            await _send_error(send, exc)
            return
        # Who is asking, for the routes: sessions, supersede and typed-ahead are scoped to it.
        scope.setdefault("state", {})["identity"] = identity
        body = await self._read_body(receive)
        if body is None:
            await _send_error(send, _too_large(self.max_body_bytes))
            return
        if self.log_bodies:  # only with zero_retention off (the settings refuse it otherwise)
            raw = b"".join(m.get("body", b"") for m in body)
            log.info("request %s %s", scope["path"], raw.decode("utf-8", "replace"))
        await self.app(scope, _replay(body, receive), send)

    def _identify(self, scope: Scope) -> str:
        if not self.keys.enabled:
            client = scope.get("client")
            return f"client:{client[0]}" if client else "client:unknown"
        # With keys on, the key is the user (its stored hash; the key itself is never kept).
        token = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    token = rest.strip()
        identity = self.keys.identify(token)
        if identity is None:
            hint = "Send 'Authorization: Bearer <key>'" if token is None else "This API key is not configured"
            raise AuthenticationError(f"{hint}; keys are made with `codespark keys new` and listed in api_keys.")
        return identity

    def _check_declared_size(self, scope: Scope) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)

    async def _read_body(self, receive: Receive) -> list[Message] | None:
        """The request's body messages, or None once they pass the limit (chunked uploads declare no length)."""
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that hands out the buffered body first, then the live channel (disconnects)."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The request body is larger than {limit} bytes. Send less context, or raise max_request_bytes."
    )


async def _send_error(send: Send, exc: CodesparkError) -> None:
    body = json.dumps(error_body(exc.message, exc.error_type, exc.param, exc.code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error_headers(exc).items()]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
