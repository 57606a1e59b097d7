"""The llama.cpp backend (llama-cpp-python).  The only module that runs llama.cpp (``tools.py`` borrows the
binding's pure-Python JSON-schema-to-grammar converter).

We use ``Llama`` to load the model, tokenize and evaluate batches, and run our
own sampling loop so that prefill can be cancelled between batches, decode
between tokens, and the reused prefix of the KV cache is reported.
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals

from codespark.engine import reuse
from codespark.engine.backend import (
    MAX_PARALLEL,
    BackendInfo,
    CancelToken,
    GenerationStats,
    Grammar,
    SamplingParams,
    Snapshot,
)
from codespark.engine.mask import Guide, Silent, Vocabulary, apply
from codespark.engine.speculative import DraftBudget, Drafter
from codespark.errors import EngineError, InvalidRequestError

_RANDOM_SEED = 0xFFFFFFFF  # llama.cpp: pick a random seed
_RESAMPLES = 8


@dataclass(frozen=True)
class LlamaOptions:
    """Load-time options (all from ``Settings``)."""

    n_ctx: int = 8192
    n_batch: int = 512
    n_threads: int | None = None
    flash_attn: bool = True
    repack: bool = False
    reuse_min_run: int = 0  # requests with ``reuse_runs`` reuse cached runs of this many tokens out of place


def system_info() -> str:
    """llama.cpp's feature line (``AVX512 = 1 | AMX_INT8 = 0 | ...``)."""
    raw: bytes = llama_cpp.llama_print_system_info()
    return raw.decode(errors="replace")


@contextmanager
def _load_params(repack: bool) -> Iterator[None]:
    """Load with llama.cpp's extra buffer types (weight repacking) on or off, and a context of several
    sequences over one unified KV buffer (sequence 0 is the cache; the others are scratch space for ``_fill``
    and the answers of ``generate_many``).

    llama-cpp-python 0.3.36 exposes neither ``use_extra_bufts`` nor ``n_seq_max``/``kv_unified``;
    ``Llama`` reads its parameters from ``llama_model_default_params()`` and
    ``llama_context_default_params()``, so we wrap those for the duration of one load.
    """
    lib = llama_cpp.llama_cpp  # the ctypes module that ``Llama`` calls
    model_defaults, context_defaults = lib.llama_model_default_params, lib.llama_context_default_params

    def model_params() -> Any:
        params = model_defaults()
        params.use_extra_bufts = repack
        return params

    def context_params() -> Any:
        params = context_defaults()
        params.n_seq_max = 1 + max(reuse.MAX_GAPS, MAX_PARALLEL)  # one scratch sequence per gap or answer
        params.kv_unified = True  # one buffer: a sequence may use the whole context
        return params

    lib.llama_model_default_params, lib.llama_context_default_params = model_params, context_params
    try:
        yield
    finally:
        lib.llama_model_default_params, lib.llama_context_default_params = model_defaults, context_defaults


class LlamaBackend:
    """A GGUF model loaded in-process with one KV-cache sequence."""

    def __init__(self, path: Path, model_id: str, options: LlamaOptions, drafter: Drafter | None = None) -> None:
        if not path.is_file():
            raise EngineError(f"Model file {path} does not exist. Run `codespark models --pull` first.")
        threads = options.n_threads or os.cpu_count() or 1
        try:
            with _load_params(options.repack):
                self._llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=options.n_ctx,
                    n_batch=options.n_batch,
                    n_ubatch=options.n_batch,
                    n_threads=threads,
                    n_threads_batch=threads,
                    flash_attn=options.flash_attn,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"llama.cpp could not load {path}: {exc}. Is it a valid GGUF file?") from exc
        self._n_batch = options.n_batch
        self.drafter = drafter
        memory = llama_cpp.llama_get_memory(self._llm._ctx.ctx)
        self._min_run = options.reuse_min_run if llama_cpp.llama_memory_can_shift(memory) else 0
        # Checked by llama.cpp between graph nodes: a cancelled prefill stops inside its batch.
        self._prefill_cancel: CancelToken | None = None
        self._abort = llama_cpp.ggml_abort_callback(lambda _data: self._prefill_aborted())
        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, self._abort, None)
        model = self._llm._model
        self._control: dict[int, bool] = {}
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._vocabulary: Vocabulary | None = None
        self.vocabulary()  # the identifier-mask index, built at load: never inside a timed generation
        meta: dict[str, Any] = dict(self._llm.metadata)
        self._info = BackendInfo(
            model_id=model_id,
            path=str(path),
            n_ctx=self._llm.n_ctx(),
            n_ctx_train=int(model.n_ctx_train()),
            chat_template=meta.get("tokenizer.chat_template"),
            bos_token=self._text_of(model.token_bos()),
            eos_token=self._text_of(model.token_eos()),
        )

    def _prefill_aborted(self) -> bool:
        cancel = self._prefill_cancel
        return cancel is not None and cancel.cancelled

    def _splice(self, kept: reuse.Plan, tokens: list[int], cancel: CancelToken | None = None) -> None:
        """Make the KV sequence hold ``tokens[:kept.end]``: drop the cells no run keeps, move each run to
        its new positions, evaluate the gaps between runs (``cancel``: see ``_fill``)."""
        llm = self._llm
        memory = llama_cpp.llama_get_memory(llm._ctx.ctx)
        at = 0
        for start, end in kept.kept_old():
            if start > at:
                llama_cpp.llama_memory_seq_rm(memory, 0, at, start)
            at = end
        llama_cpp.llama_memory_seq_rm(memory, 0, at, -1)
        # Every moved run goes out past the context first, then to its place: no run lands on another.
        # llama.cpp adds the two shifts up per cell and re-rotates each key once, by the sum.
        away = 2 * llm.n_ctx()
        moved = [run for run in kept.runs if run.shift]
        for run in moved:
            llama_cpp.llama_memory_seq_add(memory, 0, run.old, run.old + run.length, away)
        for run in moved:
            llama_cpp.llama_memory_seq_add(memory, 0, run.old + away, run.old + away + run.length, run.shift - away)
        try:
            self._fill(memory, tokens, kept.gaps(), cancel)
        except RuntimeError:
            # A cancelled warm-up stopped inside the gaps, or llama.cpp failed: keep only the common prefix.
            keep = kept.prefix if cancel is not None and cancel.cancelled else 0
            llama_cpp.llama_memory_seq_rm(memory, 0, keep, -1)
            llm.n_tokens = keep
            raise
        llm.input_ids[: kept.end] = tokens[: kept.end]
        llm.n_tokens = kept.end

    def _fill(self, memory: Any, tokens: list[int], gaps: list[tuple[int, int]], cancel: CancelToken | None) -> None:
        """Evaluate the ``gaps`` of ``tokens`` at their positions, in front of cells already at later positions,
        all in one batch (small batches cost more per token: six small decodes were most of a jump's time).

        llama.cpp accepts a sequence's tokens only right after its last position, so gap ``k`` is evaluated
        in scratch sequence ``k``, which shares sequence 0's cells before the gap (what it attends to; not the
        other gaps of the batch, which is the same approximation the moved runs make), and its cells are then
        given to sequence 0.  ``cancel``: the batch stops when it is cancelled (a background warm-up)."""
        if not gaps:
            return
        for k, (start, _) in enumerate(gaps, 1):
            llama_cpp.llama_memory_seq_rm(memory, k, -1, -1)
            if start > 0:
                llama_cpp.llama_memory_seq_cp(memory, 0, k, 0, start)
        batch = self._llm._batch
        raw = batch.batch
        n = 0
        for k, (start, end) in enumerate(gaps, 1):
            for position in range(start, end):
                raw.token[n], raw.pos[n], raw.n_seq_id[n], raw.logits[n] = tokens[position], position, 1, False
                raw.seq_id[n][0] = k
                n += 1
        raw.logits[n - 1] = True
        raw.n_tokens = n
        self._prefill_cancel = cancel
        try:
            self._llm._ctx.decode(batch)
            for k, (start, end) in enumerate(gaps, 1):
                llama_cpp.llama_memory_seq_cp(memory, k, 0, start, end)
        finally:
            self._prefill_cancel = None
            for k in range(1, len(gaps) + 1):
                llama_cpp.llama_memory_seq_rm(memory, k, -1, -1)

    def _text_of(self, token: int) -> str:
        if token < 0:
            return ""
        text: str = self._llm._model.token_get_text(token)
        return text

    @property
    def info(self) -> BackendInfo:
        return self._info

    def tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        tokens: list[int] = self._llm.tokenize(text.encode(), add_bos=False, special=False)
        return tokens

    def special_token(self, name: str) -> int | None:
        ids: list[int] = self._llm.tokenize(name.encode(), add_bos=False, special=True)
        if len(ids) == 1 and self._is_control(ids[0]):
            return ids[0]
        return None

    def token_bytes(self, token: int) -> bytes:
        if token not in self._pieces:
            vocab = self._llm._model.vocab
            n = llama_cpp.llama_token_to_piece(vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
            if n < 0:  # buffer too small: -n is the size needed
                self._piece_buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(vocab, token, self._piece_buf, -n, 0, False)
            self._pieces[token] = self._piece_buf.raw[:n]
        return self._pieces[token]

    def vocabulary(self) -> Vocabulary:
        """The token index identifier masks use (one pass over the vocabulary, at load)."""
        if self._vocabulary is None:
            n = self._llm.n_vocab()
            self._vocabulary = Vocabulary([b"" if self._is_control(t) else self.token_bytes(t) for t in range(n)])
        return self._vocabulary

    def _pick(self, sampler: _internals.LlamaSampler, guide: Guide | None, index: int) -> int:
        """Sample at batch position ``index``, under the monitor's mask when it constrains this step.

        A token the monitor refuses inside it (``.Age`` after an alias without that column) is masked
        out and the step sampled again (at most ``_RESAMPLES`` times).
        """
        ctx = self._llm._ctx
        if guide is None:
            return int(sampler.sample(ctx, index))
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, index), shape=(guide.vocabulary.size,))
        mask = guide.mask()
        if mask is not None:
            apply(logits, mask)
        token = int(sampler.sample(ctx, index))
        for _ in range(_RESAMPLES):
            if guide.accepts(self.token_bytes(token)):
                break
            logits[token] = -np.inf
            token = int(sampler.sample(ctx, index))
        guide.push(self.token_bytes(token))
        return token

    def _is_control(self, token: int) -> bool:
        if token not in self._control:
            attr = self._llm._model.token_get_attr(token)
            self._control[token] = bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL)
        return self._control[token]

    def is_stop_token(self, token: int) -> bool:
        vocab = self._llm._model.vocab
        return bool(llama_cpp.llama_vocab_is_eog(vocab, token)) or self._is_control(token)

    def _grammar_sampler(self, grammar: Grammar) -> Any:
        """llama.cpp's grammar sampler (lazy from ``grammar.triggers`` when set); a 400 if it cannot parse."""
        vocab = self._llm._model.vocab
        text, root = grammar.gbnf.encode(), b"root"
        if not grammar.triggers:
            handle = llama_cpp.llama_sampler_init_grammar(vocab, text, root)
        else:
            # A trigger that is one token (Qwen's <tool_call>) triggers on the token, others on the text.
            ids = [self.tokenize(t) for t in grammar.triggers]
            tokens = [i[0] for i in ids if len(i) == 1]
            words = [b"[\\s\\S]*?(" + re.escape(t).encode() + b")" for t, i in zip(grammar.triggers, ids, strict=True)
                     if len(i) != 1]  # fmt: skip
            patterns = (ctypes.c_char_p * max(1, len(words)))(*words)
            token_array = (llama_cpp.llama_token * max(1, len(tokens)))(*tokens)
            handle = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
                vocab, text, root, patterns, len(words), token_array, len(tokens)
            )
        if not handle:
            raise InvalidRequestError("llama.cpp could not parse the grammar built for this request.")
        return handle

    def _sampler(self, params: SamplingParams) -> _internals.LlamaSampler:
        sampler = _internals.LlamaSampler()
        if params.grammar is not None:  # first: the samplers after it choose among the allowed tokens
            llama_cpp.llama_sampler_chain_add(sampler.sampler, self._grammar_sampler(params.grammar))
        if params.repeat_penalty != 1.0:
            sampler.add_penalties(
                n_vocab=self._llm.n_vocab(),
                penalty_last_n=64,
                penalty_repeat=params.repeat_penalty,
                penalty_freq=0.0,
                penalty_present=0.0,
            )
        if params.temperature <= 0.0:
            sampler.add_greedy()
            return sampler
        if params.top_k > 0:
            sampler.add_top_k(params.top_k)
        if params.top_p < 1.0:
            sampler.add_top_p(params.top_p, 1)
        if params.min_p > 0.0:
            sampler.add_min_p(params.min_p, 1)
        sampler.add_temp(params.temperature)
        sampler.add_dist(_RANDOM_SEED if params.seed is None else params.seed & 0xFFFFFFFF)
        return sampler

    def snapshot(self) -> Snapshot:
        llm = self._llm
        ctx = llm._ctx.ctx
        tokens: list[int] = llm.input_ids[: llm.n_tokens].tolist()
        if not tokens:
            return Snapshot([], None, 0)
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = int(llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0))
        return Snapshot(tokens, buf, n)

    def restore(self, snapshot: Snapshot) -> None:
        llm = self._llm
        memory = llama_cpp.llama_get_memory(llm._ctx.ctx)
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        llm.n_tokens = 0
        if not snapshot.tokens:
            return
        if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, snapshot.data, snapshot.nbytes, 0) == 0:
            return  # could not restore: start from an empty sequence
        llm.input_ids[: len(snapshot.tokens)] = snapshot.tokens
        llm.n_tokens = len(snapshot.tokens)

    def _prefill(
        self, old: list[int], tokens: list[int], params: SamplingParams, cancel: CancelToken, stats: GenerationStats
    ) -> bool:
        """Bring the KV sequence to ``tokens``, reusing what ``old`` (the cached tokens) allows; False when
        cancelled first."""
        llm = self._llm
        if params.max_tokens <= 0 and old[: len(tokens)] == tokens:
            llm.n_tokens = len(tokens)  # a warm-up that is cached already: nothing to do
            stats.cached_tokens = len(tokens)
            return True
        kept = reuse.plan(old, tokens, self._min_run if params.reuse_runs else 0, max_gap_tokens=min(64, self._n_batch))
        stats.cached_tokens, stats.shifted_tokens = kept.reused, kept.shifted
        # The gaps (small: ``reuse.plan``) are not cancelled when an answer is wanted: a superseded keystroke's
        # runs stay valid for the next one.  A warm-up's are: nobody waits for it, and the next keystroke does.
        try:
            self._splice(kept, tokens, cancel if params.max_tokens <= 0 else None)
        except RuntimeError:
            if cancel.cancelled:
                return False
            raise
        todo = tokens[kept.end :]
        self._prefill_cancel = cancel  # from here on a cancel stops inside a batch, keeping a valid prefix
        try:
            for i in range(0, len(todo), self._n_batch):
                if cancel.cancelled:
                    return False
                llm.eval(todo[i : i + self._n_batch])  # drops the KV cache past llm.n_tokens first
        except RuntimeError:
            if cancel.cancelled:  # aborted inside a batch: llama.cpp dropped that batch's cells
                return False
            raise
        finally:
            self._prefill_cancel = None
        return True

    def generate(
        self,
        tokens: Sequence[int],
        params: SamplingParams,
        cancel: CancelToken,
        stats: GenerationStats,
    ) -> Iterator[int]:
        llm = self._llm
        tokens = list(tokens)
        if not tokens:
            raise EngineError("Empty prompt: nothing to evaluate.")
        old = llm.input_ids[: llm.n_tokens].tolist()
        stats.prompt_tokens = len(tokens)
        if not self._prefill(old, tokens, params, cancel, stats):
            return
        stats.prefill_done = time.perf_counter()
        if params.max_tokens <= 0:
            return
        sampler = self._sampler(params)
        guide = None
        if params.monitor is not None or params.heal:
            guide = Guide(params.monitor or Silent(), self.vocabulary(), heal=params.heal.encode())
        speculate = (
            self.drafter is not None
            and params.temperature <= 0.0
            and params.repeat_penalty == 1.0
            and params.grammar is None
        )
        try:
            if speculate:
                assert self.drafter is not None
                yield from self._speculative(sampler, params, cancel, stats, self.drafter, guide)
                return
            for produced in range(params.max_tokens):
                if cancel.cancelled or llm.n_tokens >= llm.n_ctx():
                    return
                token = self._pick(sampler, guide, -1)
                yield token
                if self.is_stop_token(token) or produced + 1 == params.max_tokens:
                    return
                llm.eval([token])
        finally:
            sampler.close()
            if guide is not None:
                guide.report(stats)

    def generate_many(
        self,
        tokens: Sequence[int],
        params: Sequence[SamplingParams],
        cancel: CancelToken,
        stats: GenerationStats,
        ended: Sequence[CancelToken],
    ) -> Iterator[tuple[int, int]]:
        """The prompt is evaluated once, in sequence 0 (the cache, as ``generate`` leaves it); answer ``i``
        grows in scratch sequence ``i + 1``, which shares the prompt's cells, and one batch per step carries
        the next token of every answer still running.  On a 2-core Xeon a step of 4 answers costs 2.1 times
        a step of one (the weights are read once per step), so 4 answers take about half the time of 4 in a row."""
        llm = self._llm
        tokens = list(tokens)
        if not tokens:
            raise EngineError("Empty prompt: nothing to evaluate.")
        if not 0 < len(params) <= MAX_PARALLEL:
            raise EngineError(f"generate_many samples 1 to {MAX_PARALLEL} answers, not {len(params)}.")
        if any(p.grammar is not None or p.monitor is not None or p.heal or p.max_tokens <= 0 for p in params):
            raise EngineError("generate_many samples free answers of one token or more (no grammar, monitor, heal).")
        old = llm.input_ids[: llm.n_tokens].tolist()
        stats.prompt_tokens = len(tokens)
        if not self._prefill(old, tokens, params[0], cancel, stats):
            return
        stats.prefill_done = time.perf_counter()
        ctx = llm._ctx
        memory = llama_cpp.llama_get_memory(ctx.ctx)
        start = len(tokens)
        samplers = [self._sampler(p) for p in params]
        produced = [0] * len(params)
        running: dict[int, int] = {}  # answer -> its last token, still to be evaluated
        try:
            for i, sampler in enumerate(samplers):  # the first tokens all come from the prompt's last logits
                llama_cpp.llama_memory_seq_rm(memory, i + 1, -1, -1)
                llama_cpp.llama_memory_seq_cp(memory, 0, i + 1, 0, start)
                token = int(sampler.sample(ctx, -1))
                produced[i] = 1
                yield i, token
                running[i] = token
            raw = llm._batch.batch
            while not cancel.cancelled:
                running = {
                    i: t for i, t in running.items()
                    if not (self.is_stop_token(t) or ended[i].cancelled or produced[i] >= params[i].max_tokens
                            or start + produced[i] >= llm.n_ctx())
                }  # fmt: skip
                if not running:
                    return
                order = list(running)
                for n, i in enumerate(order):  # answer i's last token, at its position in sequence i + 1
                    raw.token[n], raw.pos[n], raw.n_seq_id[n], raw.logits[n] = running[i], start + produced[i] - 1, 1, 1
                    raw.seq_id[n][0] = i + 1
                raw.n_tokens = len(order)
                ctx.decode(llm._batch)
                for n, i in enumerate(order):
                    token = int(samplers[i].sample(ctx, n))
                    produced[i] += 1
                    running[i] = token
                    yield i, token
        finally:
            for i, sampler in enumerate(samplers):
                sampler.close()
                llama_cpp.llama_memory_seq_rm(memory, i + 1, -1, -1)

    def _speculative(
        self,
        sampler: _internals.LlamaSampler,
        params: SamplingParams,
        cancel: CancelToken,
        stats: GenerationStats,
        drafter: Drafter,
        guide: Guide | None,
    ) -> Iterator[int]:
        """Greedy decoding with drafts verified in one batch: token-identical to plain greedy.

        Under a monitor, each position of the batch is masked from the text up to it (the drafts
        accepted before it), exactly as plain decoding would mask that step."""
        llm = self._llm
        budget = DraftBudget()
        stats.drafter = drafter.name
        token = self._pick(sampler, guide, -1)
        produced = 1
        yield token
        while not self.is_stop_token(token) and produced < params.max_tokens and not cancel.cancelled:
            round_started = time.perf_counter()
            n_past = llm.n_tokens
            room = min(params.max_tokens - produced - 1, llm.n_ctx() - n_past - 2, self._n_batch - 1)
            drafts: list[int] = []
            if budget.enabled and room > 0:
                context = [*llm.input_ids[:n_past].tolist(), token]
                drafts = drafter.draft(context, min(room, budget.length()))[:room]
            batch = [token, *drafts]
            llm._batch.set_batch(batch=batch, n_past=n_past, logits_all=True)
            llm._ctx.decode(llm._batch)
            llm.input_ids[n_past : n_past + len(batch)] = batch
            accepted = 0
            for i in range(len(batch)):
                token = self._pick(sampler, guide, i)
                produced += 1
                if i < len(drafts) and token == drafts[i] and not self.is_stop_token(token):
                    accepted += 1
                    yield token
                    if produced >= params.max_tokens or cancel.cancelled:
                        break
                    continue
                yield token  # the model's own token after the accepted drafts
                break
            budget.record(len(drafts), accepted, time.perf_counter() - round_started)
            stats.drafted, stats.accepted = budget.drafted, budget.accepted
            # Keep the evaluated token and the accepted drafts; drop the rejected rest.
            llm.n_tokens = n_past + 1 + accepted
            llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
