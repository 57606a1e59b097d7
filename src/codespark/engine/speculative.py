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
    falls back to what was accepted after a partial one; a draft with nothing
    accepted pauses drafting for ``cooldown`` steps.  On a small CPU a verify
    batch of k tokens can cost nearly k decode steps, so acceptance alone does
    not say whether drafting pays: the budget times plain steps (the first
    ``baseline`` steps and every pause) against drafting rounds, and switches
    drafting off for the rest of the generation once drafting rounds produce
    tokens more slowly than plain steps.
    """

    def __init__(self, max_draft: int = 32, cooldown: int = 4, baseline: int = 2, min_rounds: int = 3) -> None:
        self._max = max_draft
        self._cooldown = cooldown
        self._min_rounds = min_rounds
        self._length = 2
        self._pause = baseline
        self._off = False
        self.drafted = 0
        self.accepted = 0
        self._plain = [0.0, 0]  # seconds, tokens
        self._draft = [0.0, 0, 0]  # seconds, tokens, rounds

    @property
    def enabled(self) -> bool:
        if self._off:
            return False
        if self._pause > 0:
            self._pause -= 1
            return False
        return True

    def length(self) -> int:
        return self._length

    def record(self, drafted: int, accepted: int, seconds: float) -> None:
        """One round: ``drafted`` proposed, ``accepted`` kept, ``seconds`` spent (drafting + verifying)."""
        produced = accepted + 1
        if drafted == 0:
            self._plain[0] += seconds
            self._plain[1] += produced
            return
        self.drafted += drafted
        self.accepted += accepted
        self._draft[0] += seconds
        self._draft[1] += produced
        self._draft[2] += 1
        if accepted == drafted:
            self._length = min(self._max, self._length * 2)
        elif accepted == 0:
            self._length = 1
            self._pause = self._cooldown
        else:
            self._length = max(1, accepted)
        if self._draft[2] >= self._min_rounds and self._plain[1] > 0:
            plain_rate = self._plain[1] / self._plain[0]
            draft_rate = self._draft[1] / self._draft[0]
            self._off = draft_rate < plain_rate
