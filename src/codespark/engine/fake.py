"""FakeBackend: a scripted, deterministic backend for fast tests.  Ships with the interface.

Text is tokenized one byte per token (ids 0-255); control tokens get ids from
1000.  ``generate`` replays a script: the reply whose trigger is found in the
decoded prompt (the first one matching), else the default reply, one byte per
token, then an end token.  A per-token delay makes cancellation observable.
The KV "cache" is the previous prompt, so cached-token counts behave like the
real backend's (``engine/reuse.py`` plans both).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from codespark.engine import reuse
from codespark.engine.backend import BackendInfo, CancelToken, GenerationStats, SamplingParams, Snapshot
from codespark.engine.fim import FIM_STOP_TOKENS
from codespark.engine.mask import Guide, Vocabulary

_CONTROL = (*FIM_STOP_TOKENS, "<|im_start|>")
_FIRST_CONTROL = 1000
END = _FIRST_CONTROL  # "<|endoftext|>"


def _stand_in(scripted: int, mask: npt.NDArray[np.bool_]) -> int:
    """A masked step: the scripted byte in the other case, else the first allowed letter, else a space, else any."""
    other = ord(chr(scripted).swapcase()) if scripted < 128 else scripted
    letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    return next((t for t in (other, *letters, 32) if t < len(mask) and mask[t]), int(mask.argmax()))


@dataclass
class FakeBackend:
    """A backend that answers from a script."""

    replies: dict[str, str] = field(default_factory=dict)
    default: str = "ok"
    token_delay: float = 0.0
    n_ctx: int = 2048
    reuse_min_run: int = 0  # as ``LlamaOptions.reuse_min_run``: counts what the real backend would reuse
    prefill_delay: float = 0.0  # seconds each prompt takes to evaluate, stopped at once by a cancel
    model_id: str = "fake"
    chat_template: str | None = None  # None: codespark's ChatML fallback
    prompts: list[str] = field(default_factory=list)
    params: list[SamplingParams] = field(default_factory=list)  # what each generation was asked for
    generated_tokens: int = 0
    # Set when a generation has produced its first token: tests wait on it instead of sleeping.
    generating: threading.Event = field(default_factory=threading.Event)
    _cache: list[int] = field(default_factory=list)
    _vocabulary: Vocabulary | None = None

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            model_id=self.model_id,
            path="<fake>",
            n_ctx=self.n_ctx,
            n_ctx_train=self.n_ctx,
            chat_template=self.chat_template,
            bos_token="",
            eos_token="<|endoftext|>",
        )

    def tokenize(self, text: str) -> list[int]:
        return list(text.encode())

    def special_token(self, name: str) -> int | None:
        return _FIRST_CONTROL + _CONTROL.index(name) if name in _CONTROL else None

    def token_bytes(self, token: int) -> bytes:
        return bytes([token]) if token < 256 else b""

    def is_stop_token(self, token: int) -> bool:
        return token >= _FIRST_CONTROL and token != self.special_token("<|im_start|>")

    def __post_init__(self) -> None:
        self.vocabulary()  # built with the backend, as the real one is: never inside a timed generation

    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = Vocabulary([self.token_bytes(t) for t in range(_FIRST_CONTROL + len(_CONTROL))])
        return self._vocabulary

    def decode(self, tokens: Sequence[int]) -> str:
        return "".join(
            _CONTROL[t - _FIRST_CONTROL] if t >= _FIRST_CONTROL else bytes([t]).decode("latin-1") for t in tokens
        )

    def snapshot(self) -> Snapshot:
        return Snapshot(list(self._cache), None, len(self._cache))

    def restore(self, snapshot: Snapshot) -> None:
        self._cache = list(snapshot.tokens)

    def generate(
        self,
        tokens: Sequence[int],
        params: SamplingParams,
        cancel: CancelToken,
        stats: GenerationStats,
    ) -> Iterator[int]:
        tokens = list(tokens)
        kept = reuse.plan(self._cache, tokens, self.reuse_min_run if params.reuse_runs else 0)
        stats.prompt_tokens, stats.cached_tokens, stats.shifted_tokens = len(tokens), kept.reused, kept.shifted
        self._cache = tokens
        prompt = self.decode(tokens)
        self.prompts.append(prompt)
        self.params.append(params)
        until = time.perf_counter() + self.prefill_delay
        while time.perf_counter() < until:
            if cancel.cancelled:
                return
            time.sleep(0.001)
        stats.prefill_done = time.perf_counter()
        reply = next((r for trigger, r in self.replies.items() if trigger in prompt), self.default)
        script = [*reply.encode(), END]
        guide = Guide(params.monitor, self.vocabulary()) if params.monitor is not None else None
        for produced, scripted in enumerate(script):
            if cancel.cancelled or produced >= params.max_tokens:
                return
            token = scripted
            if guide is not None:
                mask = guide.mask()
                if mask is not None and not mask[token]:
                    token = _stand_in(token, mask)
                guide.push(self.token_bytes(token))
                guide.report(stats)
            if self.token_delay:
                time.sleep(self.token_delay)
            self.generated_tokens += 1
            self.generating.set()
            yield token

    def generate_many(
        self,
        tokens: Sequence[int],
        params: Sequence[SamplingParams],
        cancel: CancelToken,
        stats: GenerationStats,
        ended: Sequence[CancelToken],
    ) -> Iterator[tuple[int, int]]:
        """The scripted reply for every answer, a token of each in turn (as the real backend's batches)."""
        longest = replace(params[0], max_tokens=max(p.max_tokens for p in params))
        script = list(self.generate(tokens, longest, cancel, stats))  # the prompt and its reply, once
        self.params.extend(params[1:])
        for produced, token in enumerate(script):
            for i, p in enumerate(params):
                if cancel.cancelled:
                    return
                if produced < p.max_tokens and not ended[i].cancelled:
                    yield i, token
