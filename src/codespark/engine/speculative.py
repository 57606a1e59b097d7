"""Drafters for lossless speculative decoding.

A drafter proposes the next few tokens cheaply; the target model checks them
all in one batch and keeps the longest prefix it would have produced itself
(greedy), plus one token of its own.  Output is token-identical to plain greedy
decoding; only the speed changes.

- ``NgramDrafter`` (prompt lookup): if the last few tokens appeared earlier in
  the prompt or output, propose what followed them then.  Near-free; pays when
  the output repeats the input (edits, renames, refactors).
- ``ModelDrafter``: a smaller model with the same tokenizer (the 0.5B for the
  1.5B) drafts greedily.

``DraftBudget`` adapts the draft length to the measured acceptance and stops
drafting in a generation where it does not pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from codespark.engine.backend import Backend, CancelToken, GenerationStats, SamplingParams


class Drafter(Protocol):
    """Proposes up to ``n`` tokens to follow ``tokens``."""

    name: str

    def draft(self, tokens: Sequence[int], n: int) -> list[int]: ...


class NgramDrafter:
    """Prompt-lookup drafting: continue the most recent earlier match of the last n-gram."""

    name = "ngram"

    def __init__(self, max_ngram: int = 4, min_ngram: int = 3) -> None:
        self._max = max_ngram
        self._min = min_ngram

    def draft(self, tokens: Sequence[int], n: int) -> list[int]:
        seq = list(tokens)
        for k in range(self._max, self._min - 1, -1):
            if len(seq) <= k:
                continue
            key = seq[-k:]
            first = key[0]
            for start in range(len(seq) - k - 1, -1, -1):
                if seq[start] == first and seq[start : start + k] == key:
                    return seq[start + k : start + k + n]
        return []


class ModelDrafter:
    """Greedy drafts from a smaller model that shares the target's tokenizer."""

    name = "model"

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def draft(self, tokens: Sequence[int], n: int) -> list[int]:
        params = SamplingParams(max_tokens=n)
        out: list[int] = []
        for token in self._backend.generate(tokens, params, CancelToken(), GenerationStats()):
            if self._backend.is_stop_token(token):
                break
            out.append(token)
        return out


class DraftBudget:
    """Draft length and pauses from the acceptance so far; off when drafting stops paying.

    The length doubles after a fully accepted draft (up to ``max_draft``) and
    falls back to what was accepted after a partial one.  A draft with nothing
    accepted pauses drafting for ``cooldown`` tokens.  A verify batch costs more
    than one decode step on a CPU, so once ``min_rate`` of the drafted tokens is
    not being accepted (after ``warmup`` drafted tokens), drafting stops for the
    rest of the generation.
    """

    def __init__(self, max_draft: int = 8, min_rate: float = 0.4, warmup: int = 24, cooldown: int = 4) -> None:
        self._max = max_draft
        self._min_rate = min_rate
        self._warmup = warmup
        self._cooldown = cooldown
        self._length = 2
        self._pause = 0
        self.drafted = 0
        self.accepted = 0

    @property
    def enabled(self) -> bool:
        if self.drafted >= self._warmup and self.accepted < self._min_rate * self.drafted:
            return False
        if self._pause > 0:
            self._pause -= 1
            return False
        return True

    def length(self) -> int:
        return self._length

    def record(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            return
        self.drafted += drafted
        self.accepted += accepted
        if accepted == drafted:
            self._length = min(self._max, self._length * 2)
        elif accepted == 0:
            self._length = 1
            self._pause = self._cooldown
        else:
            self._length = max(1, accepted)
