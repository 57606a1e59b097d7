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

    def __init__(self, max_ngram: int = 4, min_ngram: int = 2) -> None:
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
    """Draft length from the acceptance so far; off when drafting stops paying."""

    def __init__(self, max_draft: int = 8, min_rate: float = 0.25, patience: int = 4) -> None:
        self._max = max_draft
        self._min_rate = min_rate
        self._patience = patience
        self.drafted = 0
        self.accepted = 0
        self._rounds = 0
        self._misses = 0

    @property
    def enabled(self) -> bool:
        return self._misses < self._patience

    def length(self) -> int:
        if self.drafted == 0:
            return self._max // 2
        rate = self.accepted / self.drafted
        return max(1, min(self._max, round(rate * self._max) + 1))

    def record(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            return
        self.drafted += drafted
        self.accepted += accepted
        self._rounds += 1
        # Several rounds in a row with nothing accepted: this text does not repeat; stop trying.
        self._misses = self._misses + 1 if accepted / drafted < self._min_rate else 0
