"""KV reuse across positions: which runs of the cached sequence can serve a new prompt, and where.

The live KV sequence holds the last prompt (and answer), each token at its position.  A new prompt
shares a prefix with it while the user types; after a cursor jump it shares long runs *elsewhere*:
the same lines, moved by the text added or removed before them (the window's first lines, the
``<|fim_suffix|>`` token that moved with the cursor).  ``plan`` finds those runs, in order, so the
backend can move their cells to the new positions (llama.cpp re-rotates their keys) and evaluate
only the tokens between them, the *gaps*, and then the rest of the prompt in order.

A moved run keeps what it computed after its old preceding text, so reuse is an approximation
(llama-server's ``--cache-reuse`` makes the same one); its cost in pass rate is measured in
docs/BENCHMARKS.md section 15.  Runs shorter than ``min_run`` tokens are not worth a gap's extra
forward pass and are evaluated instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_GAPS = 8  # gaps a plan leaves between runs (the backend evaluates each in its own scratch sequence)


@dataclass(frozen=True)
class Run:
    """``length`` tokens of the new prompt from ``new`` on, cached at ``old`` on."""

    new: int
    old: int
    length: int

    @property
    def shift(self) -> int:
        return self.new - self.old


@dataclass(frozen=True)
class Plan:
    """How a new prompt of ``size`` tokens is served: the runs kept from the cache, in order."""

    runs: tuple[Run, ...]
    size: int

    @property
    def reused(self) -> int:
        return sum(run.length for run in self.runs)

    @property
    def shifted(self) -> int:
        """Tokens reused out of place: outside the common prefix, so computed after other preceding text
        (moved to a new position, or at the same one behind changed text)."""
        return self.reused - self.prefix

    @property
    def prefix(self) -> int:
        """Tokens reused in place from position 0 (the common prefix)."""
        first = self.runs[0] if self.runs else None
        return first.length if first is not None and first.new == first.old == 0 else 0

    def kept_old(self) -> list[tuple[int, int]]:
        """The ranges of the cached sequence the runs keep, in order."""
        return sorted((run.old, run.old + run.length) for run in self.runs)

    @property
    def end(self) -> int:
        """Where the last run ends: the new prompt from here on is evaluated in order."""
        return self.runs[-1].new + self.runs[-1].length if self.runs else 0

    def gaps(self) -> list[tuple[int, int]]:
        """The ranges of the new prompt before ``end`` that no run covers, to be evaluated in place."""
        out = []
        at = 0
        for run in self.runs:
            if run.new > at:
                out.append((at, run.new))
            at = run.new + run.length
        return out


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def plan(
    old: Sequence[int], new: Sequence[int], min_run: int = 0, max_gaps: int = MAX_GAPS, max_gap_tokens: int = 64
) -> Plan:
    """The runs of ``old`` that serve ``new``: its common prefix, then (``min_run > 0``) each later
    run of at least ``min_run`` equal tokens, found greedily along ``new``.  A run may come from
    anywhere in ``old`` (text that moved above other text, an accepted answer now in the suffix),
    each cached token serving once; the continuation of the previous run is preferred, then the
    longest.  At most ``max_gaps`` gaps, of ``max_gap_tokens`` in all, are left between runs: gaps are
    evaluated before the rest, in one batch that a keystroke does not cancel (the runs after a half-filled
    gap would be lost), so they stay small, and text mostly new is evaluated in order instead.  The last token of
    ``new`` is never covered: its logits are needed."""
    limit = len(new) - 1
    head = min(common_prefix(old, new), limit)
    runs: list[Run] = [Run(0, 0, head)] if head > 0 else []
    if min_run <= 0 or limit - head < min_run:
        return Plan(tuple(runs), len(new))
    starts: dict[tuple[int, ...], list[int]] = {}
    for j in range(head, len(old) - min_run + 1):
        starts.setdefault(tuple(old[j : j + min_run]), []).append(j)
    used = [False] * len(old)
    i, follow, gaps, gap_tokens = head, head, 0, 0
    while i + min_run <= limit:
        best, best_n = -1, 0
        for at in starts.get(tuple(new[i : i + min_run]), ())[:_CANDIDATES]:
            n = 0
            while i + n < limit and at + n < len(old) and not used[at + n] and old[at + n] == new[i + n]:
                n += 1
            if n > best_n or (n == best_n and at == follow):
                best, best_n = at, n
        if best_n < min_run:
            i += 1
            continue
        gap = i - (runs[-1].new + runs[-1].length if runs else 0)
        gaps, gap_tokens = gaps + (gap > 0), gap_tokens + gap
        if gaps > max_gaps or gap_tokens > max_gap_tokens:
            break
        runs.append(Run(i, best, best_n))
        used[best : best + best_n] = [True] * best_n
        i, follow = i + best_n, best + best_n
    return Plan(tuple(runs), len(new))


_CANDIDATES = 16  # places a run's first tokens are looked up at (code repeats itself; a bound keeps it linear)
