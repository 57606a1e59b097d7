"""KV-cache sessions: which editing session the live sequence belongs to, and parked copies of the others.

An engine has one live KV sequence.  When a request for another session comes
in, the live sequence is copied out ("parked") and the requested session's
parked copy, if any, is copied back in, so every session keeps its own prefix
cache.  Parked copies are kept on an LRU bounded in bytes, and dropped after
a TTL (``expire``): prompts live in RAM only, and not for long.  All of this
runs in the engine's worker thread, between generations.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from codespark.engine.backend import Backend, Snapshot


class SessionCache:
    """The live session of one backend and an LRU of parked ones."""

    def __init__(self, backend: Backend, budget_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._backend = backend
        self._budget = budget_bytes
        self._clock = clock
        self._parked: OrderedDict[str, Snapshot] = OrderedDict()
        self._used: dict[str, float] = {}
        self.parked_bytes = 0
        self.live: str | None = None

    def sessions(self) -> list[str]:
        return list(self._parked) + ([self.live] if self.live else [])

    def activate(self, session: str | None) -> float:
        """Make ``session``'s KV live; return the milliseconds spent swapping.

        ``None`` is sessionless work (a chat, a SQL question, a plain completion): the live
        session is parked first, so that work cannot overwrite a keystroke session's cache
        while the session still believes it is cached.
        """
        if session is not None:
            self._used[session] = self._clock()
        if session == self.live:
            return 0.0
        started = time.perf_counter()
        if self.live is not None and self._budget > 0:
            snap = self._backend.snapshot()
            if snap.tokens:
                self._park(self.live, snap)
                self._evict()
        parked = self._parked.pop(session, None) if session is not None else None
        if parked is not None:
            self.parked_bytes -= parked.nbytes
            self._backend.restore(parked)
        # With nothing parked, the live sequence stays: its common prefix may still serve.
        self.live = session
        return (time.perf_counter() - started) * 1000

    def _park(self, session: str, snap: Snapshot) -> None:
        old = self._parked.pop(session, None)
        self.parked_bytes += snap.nbytes - (old.nbytes if old else 0)
        self._parked[session] = snap

    def _evict(self) -> None:
        while self._parked and self.parked_bytes > self._budget:
            name, dropped = self._parked.popitem(last=False)
            self.parked_bytes -= dropped.nbytes
            self._used.pop(name, None)

    def expire(self, ttl_s: float) -> int:
        """Drop every session unused for ``ttl_s``, the live one included; return how many."""
        cutoff = self._clock() - ttl_s
        stale = [name for name, used in self._used.items() if used < cutoff]
        for name in stale:
            del self._used[name]
            parked = self._parked.pop(name, None)
            if parked is not None:
                self.parked_bytes -= parked.nbytes
            if name == self.live:
                self._backend.restore(Snapshot([], None, 0))  # an empty sequence: the KV is cleared
                self.live = None
        return len(stale)
