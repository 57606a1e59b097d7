"""The Backend protocol: the one seam between codespark and an inference library.

A backend tokenizes, streams sampled tokens for a prompt, and stops when its
cancel token is set.  It is driven from one worker thread at a time (see
``engine.Engine``), so implementations need no locking of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from codespark.engine.mask import Monitor, Names

MAX_PARALLEL = 8  # answers ``Backend.generate_many`` samples side by side from one prompt


@dataclass(frozen=True)
class Grammar:
    """A GBNF grammar the answer must follow (``root`` is its start rule).  With ``triggers``, it is lazy:
    the text is free until the model writes one of them, and constrained from there on."""

    gbnf: str
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token.  ``temperature == 0`` means greedy."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 40
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    seed: int | None = None
    grammar: Grammar | None = None
    monitor: Monitor | None = None  # masks invented identifiers at its trigger points (engine/mask.py)
    # Reuse cached runs out of place (engine/reuse.py: faster after a cursor jump, answers can differ);
    # off: only the common prefix is reused, and the result is exactly a fresh evaluation's.
    reuse_runs: bool = False
    # Token healing: text the prompt held back from its end; the first tokens must spell it (engine/mask.py).
    heal: str = ""


class CancelToken:
    """A thread-safe flag that asks a running generation to stop.

    Backends check it between tokens and between prefill batches, so a
    generation stops within one token (or one batch) of ``cancel()``.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class GenerationStats:
    """Filled in by the backend while it generates."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    shifted_tokens: int = 0  # of the cached tokens, those reused out of place (engine/reuse.py)
    started: float = field(default_factory=time.perf_counter)
    prefill_done: float | None = None
    drafter: str | None = None
    drafted: int = 0
    accepted: int = 0
    masked_steps: int = 0
    triggers: dict[str, int] = field(default_factory=dict)
    monitor_trail: list[tuple[str, Names]] = field(default_factory=list)  # (text so far, allowed) per trigger


@dataclass(frozen=True)
class Snapshot:
    """A parked copy of the live KV sequence: its tokens and the backend's bytes."""

    tokens: list[int]
    data: object
    nbytes: int


@dataclass(frozen=True)
class BackendInfo:
    """What a loaded model is."""

    model_id: str
    path: str
    n_ctx: int
    n_ctx_train: int
    chat_template: str | None
    bos_token: str
    eos_token: str


class Backend(Protocol):
    """A loaded model that can tokenize and stream tokens."""

    @property
    def info(self) -> BackendInfo: ...

    def tokenize(self, text: str) -> list[int]:
        """Tokenize plain text: special-token names in ``text`` stay plain text."""
        ...

    def special_token(self, name: str) -> int | None:
        """The id of a control token such as ``<|fim_prefix|>``, or None if absent."""
        ...

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token stands for (control tokens give b'')."""
        ...

    def is_stop_token(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, FIM and file separators)."""
        ...

    def snapshot(self) -> Snapshot:
        """Copy the live KV sequence out (to park a session)."""
        ...

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the live KV sequence with a parked one."""
        ...

    def generate(
        self,
        tokens: Sequence[int],
        params: SamplingParams,
        cancel: CancelToken,
        stats: GenerationStats,
    ) -> Iterator[int]:
        """Evaluate ``tokens`` (reusing any cached prefix) and yield sampled tokens.

        Sets ``stats.prompt_tokens``, ``stats.cached_tokens`` and
        ``stats.prefill_done`` before the first token.  Stops when ``cancel`` is
        set, after ``params.max_tokens`` tokens, or after a stop token (which is
        yielded).
        """
        ...

    def generate_many(
        self,
        tokens: Sequence[int],
        params: Sequence[SamplingParams],
        cancel: CancelToken,
        stats: GenerationStats,
        ended: Sequence[CancelToken],
    ) -> Iterator[tuple[int, int]]:
        """Evaluate ``tokens`` once and sample ``len(params)`` answers from it side by side (at most
        ``MAX_PARALLEL``): yields ``(answer index, token)`` pairs.  Answer ``i`` stops after a stop token,
        ``params[i].max_tokens`` tokens, or when the consumer sets ``ended[i]`` (its stop string); all stop
        when ``cancel`` is set.  Grammars, monitors and healing are not supported here."""
        ...
