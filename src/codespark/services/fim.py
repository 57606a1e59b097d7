"""The keystroke FIM pipeline: session, typed-ahead, context, routing, prompt, generation, in that order.

One request walks down it once::

    FimService.complete(call)
      1. the session: the caller's own (its API key or address) + the client's id, file name,
         or a hash of the document's first lines;
      2. settle the session's in-flight request (wait for it, or supersede it), and answer from
         the last completion if the user typed what it predicted (typed-ahead): done, no
         context, no routing, no forward pass;
      3. context: the ``sql_db`` schema for .sql files, the repo's definitions and similar code;
      4. routing: the router's choice from each engine's uncached text;
      5. the anchored prompt on that engine (``engine/spark.py``) and its generation.

A one-shot request (the CLI, ``codespark bench``, the cross-file benchmark) is the same
anchored request on a throwaway session (``one_shot``), so everything measures the prompt the
server sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from codespark import modes
from codespark.config import Settings
from codespark.context.monitor import for_fim
from codespark.context.retrieve import Snippet, merge_by_path
from codespark.context.service import RepoContext
from codespark.engine import remote_fim
from codespark.engine.backend import CancelToken, SamplingParams
from codespark.engine.engine import Delta, Engine, Event, Finished, Prepared, Timings
from codespark.engine.fim import ExtraFile, FimRequest, FimStops
from codespark.engine.spark import JUMP_MIN_NEW_TOKENS, FimSessions
from codespark.engine.text import TextAssembler
from codespark.engine.upstream import Endpoint, Upstream
from codespark.errors import CodesparkError, UpstreamError, UpstreamUnavailable
from codespark.metrics import Metrics
from codespark.router import Decision, Router
from codespark.services.observe import count_redactions, observed
from codespark.services.sql import SqlService

DERIVED = "doc:"  # the mark of a session named after the document's text
COLD_WINDOW_TOKENS = 256  # a cold keystroke's first window on spark (~1.3 s to evaluate on 2 cores)
_DOCUMENT_LINES = 3


@dataclass(frozen=True)
class FimCall:
    """One completion at a cursor."""

    request: FimRequest
    params: SamplingParams
    stops: tuple[str, ...] = ()
    model: str | None = None
    caller: str = "local"  # whose session this is: an API key's identity, or the client's address
    session: str | None = None  # the client's own session id (X-Session, a body field), if it sends one
    t_max_predict_ms: float | None = None
    budget_ms: float | None = None
    min_indent: int = 0  # llama-server's n_indent: a later line indented less ends the answer
    modes: bool = False  # honour [Mode: Spark]/[Mode: Codex] in the text (API requests)


@dataclass
class FimAnswer:
    """The router's decision, the generation's events, and the context snippets the prompt used."""

    decision: Decision
    events: AsyncGenerator[Event, None]
    context: list[Snippet] = field(default_factory=list)


def session_name(call: FimCall) -> str:
    """The editing session of ``call``, always scoped to its caller.

    Within the caller: the client's session id, else the file name, else a hash of the
    document's first complete lines, so two buffers of an editor that sends neither (llama.vim,
    llama.vscode) keep separate caches instead of evicting each other.
    """
    if call.session:
        return f"{call.caller}|id:{call.session[:200]}"
    if call.request.filename:
        return f"{call.caller}|file:{call.request.filename[:500]}"
    return f"{call.caller}|{DERIVED}{_document_key(call.request.prefix)}"


def _document_key(prefix: str) -> str:
    """A short hash of the first complete, non-blank lines of the prefix window: stable while the user types."""
    complete = prefix[: prefix.rfind("\n") + 1].splitlines()  # not the cursor line, which changes per keystroke
    lines = [line for line in complete[: _DOCUMENT_LINES * 4] if line.strip()][:_DOCUMENT_LINES]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


class FimService:
    """Keystroke completion for every engine of a router; owns the FIM sessions."""

    def __init__(
        self,
        router: Router,
        settings: Settings,
        metrics: Metrics | None = None,
        sql: SqlService | None = None,
        repo: RepoContext | None = None,
    ) -> None:
        self.router = router
        self.settings = settings
        self.metrics = metrics
        self.sql = sql
        self.repo = repo
        self.sessions = FimSessions(metrics)
        # Background warm-ups (``_warm``): their cancel token, route, session and window.
        self._warming: dict[asyncio.Task[bool], tuple[CancelToken, str, str, FimRequest | None]] = {}

    async def complete(self, call: FimCall) -> FimAnswer:
        """Plan ``call``; the events run the generation when iterated.  A ``[Mode: ...]`` tag in the text
        pins the engine and is taken out first."""
        prefix, mode = modes.take(call.request.prefix)
        suffix, after = modes.take(call.request.suffix)
        mode = mode or after
        if mode is None or not call.modes:
            return await self._complete(call)
        pinned = modes.model_for(self.router, mode, call.model)
        answer = await self._complete(replace(call, request=replace(call.request, prefix=prefix, suffix=suffix),
                                              model=pinned))  # fmt: skip
        if pinned == mode:
            answer.decision = modes.explain(answer.decision, mode)
        return answer

    async def _complete(self, call: FimCall) -> FimAnswer:
        self._stop_warming()  # the CPU is this keystroke's
        router, routes = self.router, self.router.engines.routes
        session = session_name(call)
        pinned = router.pinned(call.model)
        # A caller types in one place at a time: a keystroke in a derived session also supersedes the
        # caller's other derived sessions (the window of a big file slides as lines are added).
        group = f"{call.caller}|{DERIVED}" if session.startswith(f"{call.caller}|{DERIVED}") else None
        # A client with a latency budget gets cached runs reused out of place (a cursor jump costs a few
        # tokens); without one, only the exact common prefix (measured: out-of-place reuse cost codex
        # 0.05 pass rate after a jump, docs/BENCHMARKS.md section 15).
        params = replace(call.params, reuse_runs=call.budget_ms is not None)
        if self.settings.mgd != "off" and params.monitor is None:
            root = self.repo.root if self.repo is not None else None
            monitor = for_fim(call.request, root, self.settings.mgd_budget_ms, imports=self.settings.mgd == "on")
            params = replace(params, monitor=monitor)
        early = await self.sessions.answer_early(
            session, call.request, params, pinned.route if pinned else None, group, call.stops, routes
        )
        if early is not None:
            route = early.route if early.route in routes else next(iter(routes))
            decision = Decision(route, routes[route], "typed-ahead: the last completion predicted this")
            return FimAnswer(decision, self._observed(decision, self.sessions.events(early, decision.engine, session)))
        req, context = await self._with_context(call.request)
        to_evaluate: dict[str, int] = {}
        passes: dict[str, int] = {}
        for route, engine in routes.items():
            uncached = self.sessions.uncached_text(route, session, req)
            # A cursor jump is priced as one (and may go to the faster engine first) only for a client that
            # set a latency budget; otherwise it counts as a whole window, and quality decides as before.
            if uncached is not None and (uncached[1] == 1 or call.budget_ms is not None):
                to_evaluate[route], passes[route] = 1 + engine.count_tokens(uncached[0]), uncached[1]
            else:
                # Nothing cached: the whole window, estimated from its length (code runs ~3 characters a
                # token), not tokenized twice more only to learn that a cold prompt misses the budget.
                to_evaluate[route] = min(engine.n_ctx, (len(req.prefix) + len(req.suffix)) // 3 + 1)
        decision = router.fim(call.model, call.budget_ms, to_evaluate, self.settings.fim_max_queue, passes=passes)
        if decision.upstream is not None:
            answer = await self._upstream(decision, decision.upstream, call, req)
            if not isinstance(answer, str):
                return FimAnswer(decision, answer, context)
            why = answer
            decision = replace(
                router.fim(
                    call.model, call.budget_ms, to_evaluate, self.settings.fim_max_queue, upstream=False, passes=passes
                ),
                fallback=f"upstream {decision.upstream.name}: {why}",
            )
        window_tokens = None
        if not passes and self._cold_on_spark(call, decision, to_evaluate.get("codex", 1)):
            # Nothing of this session is cached anywhere and the client's budget is far off: the first answer
            # comes from spark over the text nearest the cursor; codex warms the whole window after it.
            decision = Decision("spark", routes["spark"], f"fim: a cold window: spark answers from the "
                                f"{COLD_WINDOW_TOKENS} tokens around the cursor, codex warms the rest")  # fmt: skip
            window_tokens = COLD_WINDOW_TOKENS
        max_new = self._jump_within_budget(call, decision, to_evaluate, passes) if window_tokens is None else None
        job = self.sessions.plan(
            decision.route,
            decision.engine,
            session,
            req,
            params,
            call.stops,
            call.t_max_predict_ms,
            self.settings.fim_block_stops,
            self.settings.fim_max_queue,
            call.min_indent,
            window_tokens,
            max_new,
        )
        events = self.sessions.events(job, decision.engine, session)
        if pinned is None:  # a pinned client never uses the other engine: nothing to warm there
            events = self._then_warm(events, decision.route, session, req, params, call)
        return FimAnswer(decision, self._observed(decision, events), context)

    def _cold_on_spark(self, call: FimCall, decision: Decision, codex_tokens: int) -> bool:
        """A cold keystroke with a latency budget the client set, which codex's whole window misses: spark
        answers it from a short window (``COLD_WINDOW_TOKENS``).  Without a client budget (a one-shot
        request, the quality set) quality still wins."""
        routes = self.router.engines.routes
        return (
            call.budget_ms is not None
            and call.params.max_tokens > 0
            and decision.route == "codex"
            and "spark" in routes
            and self.router.pinned(call.model) is None
            and self.router.fim_policy == "auto"
            and self.router.estimate("codex", codex_tokens) > call.budget_ms
        )

    def _jump_within_budget(
        self, call: FimCall, decision: Decision, to_evaluate: dict[str, int], passes: dict[str, int]
    ) -> int | None:
        """At a cursor jump whose new lines miss the budget the client set even on the engine chosen, the new
        tokens that fit it (at least ``JUMP_MIN_NEW_TOKENS``): the window is cut to them for this first answer
        (``within_new``) and the other engine warms the whole one after it.  None: keep the whole window."""
        route = decision.route
        if call.budget_ms is None or call.params.max_tokens <= 0 or passes.get(route, 1) <= 1:
            return None
        if self.router.pinned(call.model) is not None or self.router.fim_policy != "auto":
            return None
        if self.router.estimate(route, to_evaluate[route], passes[route]) <= call.budget_ms:
            return None
        return max(JUMP_MIN_NEW_TOKENS, self.router.tokens_within(route, call.budget_ms, passes[route]))

    async def _then_warm(
        self,
        events: AsyncGenerator[Event, None],
        route: str,
        session: str,
        req: FimRequest,
        params: SamplingParams,
        call: FimCall,
    ) -> AsyncGenerator[Event, None]:
        """``events``; and once they finish normally, the window on every other engine that lacks it for this
        session, in the background: after a cursor jump the first keystroke goes to the faster
        engine, and the next finds the window warm on the other.  A client's warm-up (``n_predict`` 0,
        sent when the cursor lands) waits for the others too, so every engine is ready for the keystrokes."""
        async with aclosing(events) as stream:
            async for event in stream:
                if isinstance(event, Finished) and event.finish_reason != "cancelled":
                    tasks = [self._warm(other, engine, session, req, params, call)
                             for other, engine in self.router.engines.routes.items()
                             if other != route and self.sessions.needs_warming(other, session, req)]  # fmt: skip
                    if params.max_tokens <= 0:
                        await asyncio.gather(*(task for task in tasks if task is not None))
                yield event

    def _warm(
        self, route: str, engine: Engine, session: str, req: FimRequest, params: SamplingParams, call: FimCall
    ) -> asyncio.Task[bool] | None:
        """Evaluate ``req``'s window on ``route`` in the background (``Engine.warm``: only while it is idle;
        the next keystroke of any session stops it at once)."""
        if engine.busy or engine.pending:
            return None
        try:
            job = self.sessions.plan(route, engine, session, req, replace(params, max_tokens=0), call.stops)
        except CodesparkError:
            return None  # it would not fit or not be admitted: the next keystroke evaluates it instead
        if job.prepared is None:
            return None
        cancel = CancelToken()
        task = asyncio.create_task(engine.warm(job.prepared, cancel, session))
        window = self.sessions.window(route, session)
        self._warming[task] = (cancel, route, session, window)

        def done(task: asyncio.Task[bool]) -> None:
            self._warming.pop(task, None)
            whole = not task.cancelled() and task.result()
            self.sessions.mark_partial(route, session, window, partial=not whole)

        task.add_done_callback(done)
        return task

    @property
    def warming(self) -> int:
        """Background warm-ups still running."""
        return len(self._warming)

    def _stop_warming(self) -> None:
        """Stop every background warm-up at once; until one reports it finished, its window counts as
        partly cached (the router must not price a keystroke on a window that is not there)."""
        for cancel, route, session, window in self._warming.values():
            cancel.cancel("a keystroke arrived")
            self.sessions.mark_partial(route, session, window)

    async def _upstream(
        self, decision: Decision, up: Upstream, call: FimCall, req: FimRequest
    ) -> AsyncGenerator[Event, None] | str:
        """The keystroke on the FIM upstream (redacted by ``Upstream.start``), with the same stop rules as
        a local answer; or why it cannot answer now (the caller falls back to a local engine).  A refusal
        (say, no ``suffix`` support) keeps keystrokes local for the upstream's cooldown; chat still goes."""
        kind = up.cfg.fim
        endpoint: Endpoint = "infill" if kind == "infill" else "completions"
        body = remote_fim.body(kind, req, call.params, call.stops)
        try:
            events = await up.start(endpoint, body, on_redacted=count_redactions(self.metrics))
        except (UpstreamUnavailable, UpstreamError) as exc:
            if isinstance(exc, UpstreamError):
                self.router.upstream_fim_down_until = time.monotonic() + up.cfg.cooldown_s
            if self.metrics is not None:
                self.metrics.upstream_fallbacks.labels(up.name).inc()
            return exc.message
        policy = FimStops(req.prefix, req.suffix, self.settings.fim_block_stops, call.min_indent)
        return self._observed(decision, _policed(events, call.stops, policy, self.router))

    def expire(self, ttl_s: float) -> int:
        return self.sessions.expire(ttl_s)

    def _observed(self, decision: Decision, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        return observed(decision, events, self.metrics, self.router)

    async def _with_context(self, req: FimRequest) -> tuple[FimRequest, list[Snippet]]:
        """``req`` with the schema (.sql files) and repo context merged in, and the snippets used."""
        url = self.settings.sql_db
        if url and self.sql is not None and (req.filename or "").lower().endswith(".sql"):
            # The same text each time, so the KV cache holds it.
            text = await asyncio.to_thread(self.sql.schema_text, url)
            req = replace(req, extra=(ExtraFile("schema.sql", text), *req.extra))
        client = [Snippet(e.filename, e.text, 5.0, "sent by the client") for e in req.extra]
        repo, mode = self.repo, self.settings.context_mode
        if repo is None or not repo.ready.is_set() or not req.filename or mode == "none":
            return req, client
        pieces = await asyncio.to_thread(
            repo.for_completion, req.filename, req.prefix, req.suffix, self.settings.context_tokens, client, mode
        )
        return replace(req, extra=tuple(ExtraFile(path, text) for path, text in merge_by_path(pieces))), pieces


async def _policed(
    events: AsyncGenerator[Event, None], stops: tuple[str, ...], policy: FimStops, router: Router
) -> AsyncGenerator[Event, None]:
    """An upstream's answer cut by the local FIM rules and stop strings; its time to first token goes to the
    router.  Cutting closes the upstream stream, which stops its generation."""
    text = TextAssembler(stops, policy)
    started = time.perf_counter()
    first: float | None = None
    async with aclosing(events) as stream:
        async for item in stream:
            if isinstance(item, Delta):
                first = first if first is not None else time.perf_counter()
                piece = text.push(item.text.encode())
                if piece:
                    yield Delta(piece)
                if text.stopped:
                    break
            elif isinstance(item, Finished):
                tail = text.finish()
                if tail:
                    yield Delta(tail)
                router.observe_upstream_fim(item.timings.ttft_ms)
                yield replace(item, text=text.text)
                return
    ended = time.perf_counter()
    ttft = ((first or ended) - started) * 1000
    router.observe_upstream_fim(ttft)
    yield Finished(text.text, "stop", Timings(0, 0, 0, ttft, ttft, (ended - (first or ended)) * 1000))


def one_shot(
    engine: Engine,
    req: FimRequest,
    params: SamplingParams,
    stops: tuple[str, ...] = (),
    block_stops: bool = True,
) -> Prepared:
    """A FIM job for one request with no session: the server's anchored prompt, on a throwaway session."""
    job = FimSessions().plan("one-shot", engine, uuid.uuid4().hex, req, params, stops, None, block_stops)
    assert job.prepared is not None
    return job.prepared
