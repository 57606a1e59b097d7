"""An Engine runs generation requests on one backend, one at a time, off the event loop.

The backend's blocking loop runs in the engine's single worker thread; tokens
cross to the event loop through an ``asyncio.Queue``.  Text assembly (UTF-8,
stop strings, suffix echo) and the ``t_max_predict_ms`` budget are applied in
the worker, so a stop takes effect within one token.  Closing the async
iterator early (client gone) cancels the generation, also within one token.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from codespark.engine.backend import MAX_PARALLEL, Backend, CancelToken, GenerationStats, SamplingParams
from codespark.engine.mask import Names
from codespark.engine.prompt import Prompt, Special
from codespark.engine.session import SessionCache
from codespark.engine.text import StopPolicy, TextAssembler
from codespark.engine.tools import ToolCall
from codespark.errors import (
    CodesparkError,
    ContextLengthExceededError,
    EngineError,
    InvalidRequestError,
    OverloadedError,
)


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a prompt, sampling, and when to stop."""

    prompt: Prompt
    params: SamplingParams
    stops: tuple[str, ...] = ()
    policy: StopPolicy | None = None
    heal: str = ""
    t_max_predict_ms: float | None = None


class Place:
    """A request's place in an engine's queue, held from ``prepare`` until its stream ends.

    Taken before any response starts, so a burst of requests is counted (and shed) as it
    arrives; given back once, by the stream or, for a prepared request that never ran (the
    client left before the body was sent), when it is dropped.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine: Engine | None = engine
        self.cancel: CancelToken | None = None  # set by the stream; a cancelled waiter no longer counts
        engine._places.add(self)

    @property
    def released(self) -> bool:
        return self._engine is None

    @property
    def counts(self) -> bool:
        """Whether this place still counts against the queue (not released, not cancelled while waiting)."""
        return self._engine is not None and not (self.cancel is not None and self.cancel.cancelled)

    def release(self) -> None:
        if self._engine is not None:
            self._engine._places.discard(self)
            self._engine = None

    def __del__(self) -> None:
        self.release()


@dataclass(frozen=True)
class Prepared:
    """A request whose prompt is tokenized and known to fit the context, with its place in the queue."""

    request: GenerationRequest
    tokens: list[int]
    place: Place | None = None


@dataclass(frozen=True)
class Timings:
    """What one generation cost.  Times are milliseconds."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    prefill_ms: float
    ttft_ms: float
    decode_ms: float
    swap_ms: float = 0.0
    typed_ahead: bool = False
    drafter: str | None = None
    drafted: int = 0
    accepted: int = 0
    masked_steps: int = 0
    triggers: str = ""  # monitor triggers by kind, e.g. "sql.column=3 sql.table=1"
    shifted_tokens: int = 0  # of ``cached_tokens``, those reused out of place (not the common prefix)
    queue_ms: float = 0.0  # from arrival until the engine started it (waiting behind other work)

    @property
    def prompt_per_second(self) -> float:
        evaluated = self.prompt_tokens - self.cached_tokens
        return evaluated / (self.prefill_ms / 1000) if self.prefill_ms > 0 else 0.0

    @property
    def decode_per_second(self) -> float:
        # The first token comes with prefill; decode speed counts the rest.
        n = self.completion_tokens - 1
        return n / (self.decode_ms / 1000) if n > 0 and self.decode_ms > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "prompt_n": self.prompt_tokens,
            "cache_n": self.cached_tokens,
            "cache_shift_n": self.shifted_tokens,
            "prompt_ms": round(self.prefill_ms, 3),
            "prompt_per_token_ms": round(self.prefill_ms / max(1, self.prompt_tokens - self.cached_tokens), 3),
            "prompt_per_second": round(self.prompt_per_second, 3),
            "ttft_ms": round(self.ttft_ms, 3),
            "predicted_n": self.completion_tokens,
            "predicted_ms": round(self.decode_ms, 3),
            "predicted_per_token_ms": round(self.decode_ms / max(1, self.completion_tokens - 1), 3),
            "predicted_per_second": round(self.decode_per_second, 3),
            "session_swap_ms": round(self.swap_ms, 3),
            "queue_ms": round(self.queue_ms, 3),
            "typed_ahead": self.typed_ahead,
            "draft_n": self.drafted,
            "draft_n_accepted": self.accepted,
            "drafter": self.drafter,
            "mgd_masked_n": self.masked_steps,
            "mgd_triggers": self.triggers,
        }


@dataclass(frozen=True)
class Delta:
    """A piece of generated text, safe to send."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: its ``id`` and ``name`` first (once), then ``arguments`` text as written."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Finished:
    """The end of a generation."""

    text: str
    finish_reason: str  # "stop" | "length" | "cancelled" | "tool_calls"
    timings: Timings
    tool_calls: tuple[ToolCall, ...] = ()
    monitor_trail: tuple[tuple[str, Names], ...] = ()  # where a monitor constrained names, and to what
    checks: tuple[str, ...] = ()  # after generation: what the answer names that does not exist (chat)


Event = Delta | ToolCallDelta | Finished


@dataclass
class _Failure:
    error: BaseException


@dataclass
class _Run:
    """State shared between the event loop and the worker for one request."""

    request: GenerationRequest
    cancel: CancelToken
    session: str | None
    emit: Callable[[Event | _Failure], None]
    stats: GenerationStats = field(default_factory=GenerationStats)
    arrived: float = field(default_factory=time.perf_counter)


class Engine:
    """A named engine (``spark``/``codex``) bound to one loaded backend."""

    def __init__(self, backend: Backend, session_budget_bytes: int = 256 * 2**20, max_queue: int = 16) -> None:
        self.backend = backend
        self.sessions = SessionCache(backend, session_budget_bytes)
        self.max_queue = max_queue
        # Requests prepared or in ``stream`` (the running one and the waiting).  Weak: a prepared request that
        # is dropped unstreamed (its client left) gives its place back when it is collected.
        self._places: weakref.WeakSet[Place] = weakref.WeakSet()
        self._mean_s = 1.0  # moving mean of a request's time on the engine, for Retry-After
        self._lock = asyncio.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codespark-engine")
        self._specials: dict[str, int] = {}
        self._background: CancelToken | None = None  # the running ``warm`` job: any other request stops it

    @property
    def n_ctx(self) -> int:
        return self.backend.info.n_ctx

    async def expire_sessions(self, ttl_s: float) -> int:
        """Drop KV caches idle for ``ttl_s`` (in the worker, so never under a running generation)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._worker, self.sessions.expire, ttl_s)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def count_tokens(self, text: str) -> int:
        return len(self.backend.tokenize(text))

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """Tokens for a prompt: text as plain text, ``Special`` parts as control tokens."""
        tokens: list[int] = []
        for part in prompt:
            if isinstance(part, Special):
                tokens.append(self._special(part.name))
            else:
                tokens.extend(self.backend.tokenize(part))
        return tokens

    def _special(self, name: str) -> int:
        if name not in self._specials:
            token = self.backend.special_token(name)
            if token is None:
                raise InvalidRequestError(
                    f"Model {self.backend.info.model_id} has no {name} token, so it cannot do this task. "
                    "Use a Qwen2.5-Coder model for fill-in-the-middle."
                )
            self._specials[name] = token
        return self._specials[name]

    def check_fits(self, n_prompt: int, max_tokens: int) -> None:
        if n_prompt + max_tokens > self.n_ctx:
            raise ContextLengthExceededError(
                f"This model's maximum context length is {self.n_ctx} tokens, but the request needs "
                f"{n_prompt + max_tokens} ({n_prompt} in the prompt, {max_tokens} to generate). "
                "Shorten the prompt or lower max_tokens.",
                param="max_tokens" if max_tokens else "prompt",
            )

    @property
    def pending(self) -> int:
        """Requests running or waiting on this engine (superseded waiters, about to leave, not counted)."""
        return sum(place.counts for place in list(self._places))

    def admit(self, max_queue: int | None = None) -> None:
        """``OverloadedError`` (503, Retry-After) when ``max_queue`` (default: the engine's) requests already
        wait for this engine."""
        limit = self.max_queue if max_queue is None else max_queue
        pending = self.pending
        if pending > limit:
            wait = max(1.0, self._mean_s * pending)
            raise OverloadedError(
                f"{self.backend.info.model_id} has {pending - 1} requests waiting, the limit for this "
                f"request ({limit}); retry in {wait:.0f} s.",
                retry_after=wait,
            )

    def prepare(
        self, request: GenerationRequest, tokens: list[int] | None = None, max_queue: int | None = None
    ) -> Prepared:
        """Tokenize (unless the caller has the prompt's ``tokens`` already), check the size and take a place
        in the queue (at most ``max_queue`` waiting, default the engine's): bad input and overload fail
        before any response starts."""
        if tokens is None:
            tokens = self.tokenize_prompt(request.prompt)
        if not tokens:
            raise InvalidRequestError("The prompt is empty.", param="prompt")
        self.check_fits(len(tokens), request.params.max_tokens)
        self.admit(max_queue)
        return Prepared(request, tokens, Place(self))

    async def stream(
        self, job: GenerationRequest | Prepared, cancel: CancelToken | None = None, session: str | None = None
    ) -> AsyncGenerator[Event, None]:
        """Run a request; yield ``Delta`` pieces and then one ``Finished``.

        Leaving the loop early (``aclose()``, task cancellation) cancels the
        generation and waits, at most one token, for the worker to stop.
        """
        if isinstance(job, GenerationRequest) or job.place is None or job.place.released:
            job = self.prepare(job if isinstance(job, GenerationRequest) else job.request)  # a fresh place
        request, tokens, place = job.request, job.tokens, job.place
        assert place is not None
        if self._background is not None and self._background is not cancel:
            self._background.cancel("preempted")  # background work never delays a request
        cancel = cancel or CancelToken()
        place.cancel = cancel
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | _Failure] = asyncio.Queue()

        def emit(item: Event | _Failure) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        run = _Run(request, cancel, session, emit)
        try:
            async with self._lock:
                if cancel.cancelled:  # superseded while it waited: it ends as cancelled, not as an error
                    yield Finished("", "cancelled", Timings(len(tokens), 0, 0, 0.0, 0.0, 0.0))
                    return
                started = time.perf_counter()
                future = loop.run_in_executor(self._worker, self._generate, run, tokens)
                try:
                    while True:
                        item = await queue.get()
                        if isinstance(item, _Failure):
                            if isinstance(item.error, CodesparkError):
                                raise item.error
                            raise EngineError(f"Generation failed: {item.error}") from item.error
                        yield item
                        if isinstance(item, Finished):
                            break
                finally:
                    cancel.cancel("client gone")
                    await asyncio.shield(future)
                    self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - started)
        finally:
            place.release()

    async def warm(self, job: Prepared, cancel: CancelToken | None = None, session: str | None = None) -> bool:
        """Prefill ``job`` (``max_tokens`` 0) in the background, only while the engine is idle: it does not
        start when anything runs or waits, and any request that arrives here (or ``cancel``) stops it within
        a graph node; the KV it filled stays cached.  True when the prompt was fully evaluated."""
        cancel = cancel or CancelToken()
        if self.busy or self.pending > 1 or cancel.cancelled:
            if job.place is not None:
                job.place.release()
            return False
        self._background = cancel
        try:
            return (await self.run(job, cancel, session)).finish_reason != "cancelled"
        except CodesparkError:
            return False  # nobody waits for a warm-up: a failure only means the next request evaluates more
        finally:
            if self._background is cancel:
                self._background = None

    async def run(
        self, job: GenerationRequest | Prepared, cancel: CancelToken | None = None, session: str | None = None
    ) -> Finished:
        """Run a request to the end and return the result."""
        async for event in self.stream(job, cancel, session):
            if isinstance(event, Finished):
                return event
        raise EngineError("Generation ended without a result.")

    async def run_many(
        self, job: Prepared, params: Sequence[SamplingParams], cancel: CancelToken | None = None
    ) -> list[Finished]:
        """Sample one answer per ``params`` from ``job``'s prompt, side by side on the backend (the prompt is
        evaluated once; ``Backend.generate_many``), each with the request's stop strings; in ``params``'s
        order.  Leaving early (task cancelled) stops them all within one step."""
        if not params:
            return []
        if job.place is None or job.place.released:
            job = self.prepare(job.request, job.tokens)
        place = job.place
        assert place is not None
        if self._background is not None:
            self._background.cancel("preempted")
        cancel = cancel or CancelToken()
        place.cancel = cancel
        loop = asyncio.get_running_loop()
        try:
            async with self._lock:
                started = time.perf_counter()
                future = loop.run_in_executor(self._worker, self._generate_many, job, list(params), cancel)
                try:
                    return await asyncio.shield(future)
                except asyncio.CancelledError:
                    cancel.cancel("client gone")
                    await asyncio.gather(future, return_exceptions=True)
                    raise
                except CodesparkError:
                    raise
                except Exception as exc:
                    raise EngineError(f"Generation failed: {exc}") from exc
                finally:
                    self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - started)
        finally:
            place.release()

    def _generate_many(self, job: Prepared, params: list[SamplingParams], cancel: CancelToken) -> list[Finished]:
        """Worker thread: ``run_many``'s generation, in groups of at most ``MAX_PARALLEL`` answers whose
        tokens fit the context beside the prompt."""
        self.sessions.activate(None)
        room = max(1, self.n_ctx - len(job.tokens))
        out: list[Finished] = []
        while len(out) < len(params) and not cancel.cancelled:
            group: list[SamplingParams] = []
            for p in params[len(out) :]:
                if len(group) == MAX_PARALLEL or (group and sum(q.max_tokens for q in group) + p.max_tokens > room):
                    break
                group.append(p)
            out.extend(self._generate_group(job, group, cancel))
        return out

    def _generate_group(self, job: Prepared, params: list[SamplingParams], cancel: CancelToken) -> list[Finished]:
        req = job.request
        stats = GenerationStats()
        ended = [CancelToken() for _ in params]
        texts = [TextAssembler(req.stops, req.policy) for _ in params]
        reasons = ["length"] * len(params)
        counts = [0] * len(params)
        for i, token in self.backend.generate_many(job.tokens, params, cancel, stats, ended):
            counts[i] += 1
            if self.backend.is_stop_token(token):
                reasons[i] = "stop"
                ended[i].cancel("stop token")
                continue
            texts[i].push(self.backend.token_bytes(token))
            if texts[i].stopped:
                reasons[i] = "stop"
                ended[i].cancel("stop string")
        end = time.perf_counter()
        prefill_done = stats.prefill_done or end
        out = []
        for i, text in enumerate(texts):
            text.finish()
            timings = Timings(
                prompt_tokens=stats.prompt_tokens,
                cached_tokens=stats.cached_tokens,
                completion_tokens=counts[i],
                prefill_ms=(prefill_done - stats.started) * 1000,
                ttft_ms=(prefill_done - stats.started) * 1000,
                decode_ms=(end - prefill_done) * 1000,
            )
            out.append(Finished(text.text, "cancelled" if cancel.cancelled else reasons[i], timings))
        return out

    def _generate(self, run: _Run, tokens: list[int]) -> None:
        """Worker thread: the whole generation loop."""
        try:
            run.emit(self._generate_inner(run, tokens))
        except BaseException as exc:  # delivered to the awaiting request
            run.emit(_Failure(exc))

    def _generate_inner(self, run: _Run, tokens: list[int]) -> Finished:
        req, stats, cancel = run.request, run.stats, run.cancel
        swap_ms = self.sessions.activate(run.session)
        stats.started = time.perf_counter()
        text = TextAssembler(req.stops, req.policy, req.heal)
        backend = self.backend
        n_out = 0
        first: float | None = None
        reason = "length"
        for token in backend.generate(tokens, req.params, cancel, stats):
            now = time.perf_counter()
            first = first or now
            n_out += 1
            if backend.is_stop_token(token):
                reason = "stop"
                break
            piece = text.push(backend.token_bytes(token))
            if piece:
                run.emit(Delta(piece))
            if text.stopped:
                reason = "stop"
                cancel.cancel("stop string")
                break
            if (
                req.t_max_predict_ms is not None
                and "\n" in text.text
                and (now - (stats.prefill_done or now)) * 1000 > req.t_max_predict_ms
            ):
                cancel.cancel("time budget")
                break
        if cancel.cancelled and cancel.reason not in ("stop string", "time budget"):
            reason = "cancelled"
        tail = text.finish()
        if tail:
            run.emit(Delta(tail))
        end = time.perf_counter()
        prefill_done = stats.prefill_done or end
        timings = Timings(
            prompt_tokens=stats.prompt_tokens,
            cached_tokens=stats.cached_tokens,
            shifted_tokens=stats.shifted_tokens,
            completion_tokens=n_out,
            prefill_ms=(prefill_done - stats.started) * 1000,
            ttft_ms=((first or end) - run.arrived) * 1000,  # includes waiting for the engine
            decode_ms=(end - (first or end)) * 1000,
            swap_ms=swap_ms,
            queue_ms=(stats.started - run.arrived) * 1000 - swap_ms,
            drafter=stats.drafter,
            drafted=stats.drafted,
            accepted=stats.accepted,
            masked_steps=stats.masked_steps,
            triggers=" ".join(f"{kind}={n}" for kind, n in sorted(stats.triggers.items())),
        )
        return Finished(text.text, reason, timings, monitor_trail=tuple(stats.monitor_trail))
