"""Keystroke FIM sessions: an anchored prompt layout, typed-ahead reuse and supersede.

**Anchored layout.** Qwen was trained on ``<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>M``.
In that order every keystroke changes the end of P, so everything after it, the
whole suffix included, must be evaluated again.  We instead fix P at the start
of the cursor line's text (after its indentation: the *anchor*) and put what
the user has typed since then at the start of the middle::

    <|fim_prefix|>P_anchor<|fim_suffix|>S<|fim_middle|>typed…

That is still a PSM example the model was trained on (a middle that starts
with some known text), so quality holds, but while the user types, the cached
``P_anchor + S`` stays valid and only the newly typed tokens are evaluated.  The
anchor moves to the start of the cursor line when the suffix changes, the
prefix no longer extends it, or more than ``MAX_TYPED_LINES`` lines were typed.
Trailing spaces of the typed text are left for the model to write (and removed
from its answer), because a prompt ending in a lone space token is one the
model rarely saw.

**Aligned windows.** Editors send a window of lines around the cursor, so a cursor jump moves
both of its ends.  Lines a jump takes out of the window cost nothing (the backend moves the cached
runs that remain, ``engine/reuse.py``), but lines it brings in must be evaluated.  So when the
anchor moves, the new window is cut back to the previous window's first and last lines wherever
they still lie inside it (keeping at least half of the prefix, and 8 lines of suffix): a jump within
the window then evaluates little more than the moved ``<|fim_suffix|>`` and the line being typed.

**Typed-ahead.** When the new prefix is the old one plus text the last
completion predicted, the rest of that completion is the answer: no forward
pass at all.  A request that arrives while a completion is still being
generated waits for it if the user typed what it has produced so far, and
otherwise supersedes (cancels) it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace

from codespark.engine.backend import CancelToken, SamplingParams
from codespark.engine.engine import Delta, Engine, Event, Finished, GenerationRequest, Prepared, Timings
from codespark.engine.fim import FIM_HEADROOM, FimRequest, FimStops, build_prompt, fit, prompt_budget
from codespark.engine.mask import AfterHeal, holds
from codespark.metrics import Metrics

_MEMBER_DOT = re.compile(r"[\w)\]]\.\Z")
_WORD_END = re.compile(r"\w\Z")
_MEMBER_PARTIAL = re.compile(r"[\w)\]]\.\w+\Z")

MAX_TYPED_LINES = 8
MAX_TYPED_CHARS = 600
# A jump of a few tokens costs about six decode steps on both models (the key shift, the gap at the moved
# <|fim_suffix|>, the tail, the first token; small batches cost more per token): docs/BENCHMARKS.md section 15.
JUMP_PASSES = 6
JUMP_MIN_NEW_TOKENS = 64  # a jump's window cut to the client's budget still evaluates this many new tokens
_EDGE_LINES = 2  # lines that identify a window's edge
_MIN_SUFFIX_LINES = 8  # an aligned suffix keeps at least these lines (the prefix keeps half of its own)


@dataclass
class _Inflight:
    route: str
    prefix: str
    suffix: str
    cancel: CancelToken = field(default_factory=CancelToken)
    text: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Anchor:
    """Where one engine's cached prompt for a session is anchored, and that prompt's tokens.

    While the user types at the anchor, the prompt up to ``<|fim_middle|>`` is the same every
    keystroke: it is fitted and tokenized once (``fitted``, ``tokens``), and each keystroke
    tokenizes only what was typed.
    """

    prefix: str
    suffix: str
    extra: tuple[object, ...]
    window: FimRequest | None = None  # the anchor's text as sent to the model: the aligned window
    short: bool = False  # the window was cut to a budget (``plan(window_tokens=, max_new=)``): not the whole one
    partial: bool = False  # a background warm-up of it was stopped: only part of it may be cached
    fitted: FimRequest | None = None  # the anchor's request, when it fitted untrimmed
    tokens: list[int] | None = None  # build_prompt(fitted), tokenized


@dataclass
class _Session:
    """What we remember about one editing session."""

    anchors: dict[str, _Anchor] = field(default_factory=dict)
    last_prefix: str | None = None
    last_suffix: str | None = None
    last_text: str = ""
    last_route: str = ""
    inflight: _Inflight | None = None
    touched: float = field(default_factory=time.monotonic)


@dataclass
class FimJob:
    """A planned FIM request: an immediate typed-ahead answer, or a generation to run."""

    route: str
    text: str | None = None
    prepared: Prepared | None = None
    prefix: str = ""
    suffix: str = ""
    started: float = field(default_factory=time.perf_counter)


def typed_since(old_prefix: str | None, old_suffix: str | None, req: FimRequest) -> str | None:
    """What was typed between an earlier request and ``req``, if ``req`` only extends it."""
    if old_prefix is None or old_suffix != req.suffix or not req.prefix.startswith(old_prefix):
        return None
    return req.prefix[len(old_prefix) :]


def _within(text: str, max_tokens: int, stops: tuple[str, ...], engine: Engine | None) -> str:
    """``text`` cut before the first stop string and to ``max_tokens`` tokens (of ``engine``'s tokenizer)."""
    cuts = [i for i in (text.find(stop) for stop in stops if stop) if i >= 0]
    if cuts:
        text = text[: min(cuts)]
    if engine is not None and len(text.encode()) > max_tokens:  # a token is at least one byte: else it fits
        tokens = engine.backend.tokenize(text)
        if len(tokens) > max_tokens:
            text = b"".join(engine.backend.token_bytes(t) for t in tokens[:max_tokens]).decode("utf-8", "ignore")
    return text


def _starts_at(text: str, edge: str) -> int | None:
    """Where ``edge`` (whole lines) occurs in ``text`` at a line start, if exactly once."""
    at = text.find(edge)
    if at < 0 or text.find(edge, at + 1) >= 0 or (at > 0 and text[at - 1] != "\n"):
        return None
    return at


def align(window: FimRequest, previous: FimRequest | None) -> FimRequest:
    """``window`` cut back to ``previous``'s first prefix lines and last suffix lines where they lie inside
    it, so that the lines a cursor jump brings in are not evaluated; the prefix keeps at least half of its
    lines, the suffix ``_MIN_SUFFIX_LINES``.  Windows of other files (other context) are not aligned."""
    if previous is None or previous.extra != window.extra or previous.filename != window.filename:
        return window
    prefix, suffix = window.prefix, window.suffix
    head = "".join(previous.prefix.splitlines(keepends=True)[:_EDGE_LINES])
    at = _starts_at(prefix, head) if head.endswith("\n") and head.strip() else None
    if at:
        lines = prefix.count("\n")
        prefix = prefix[at:] if prefix[at:].count("\n") >= lines // 2 else _last_lines(prefix, lines - lines // 2)
    tail_lines = previous.suffix.splitlines(keepends=True)
    tail = "".join(tail_lines[-_EDGE_LINES:])
    at = _starts_at(suffix, tail) if len(tail_lines) > _EDGE_LINES and tail.endswith("\n") and tail.strip() else None
    rows = suffix.splitlines(keepends=True)
    short = "".join(rows[:_MIN_SUFFIX_LINES])
    if at is not None and at + len(tail) < len(suffix):
        cut = suffix[: at + len(tail)]
        suffix = cut if cut.count("\n") >= short.count("\n") else short
    elif len(rows) > _MIN_SUFFIX_LINES and "".join(rows[-_EDGE_LINES:]) not in previous.prefix + previous.suffix:
        suffix = short  # past the previous window: every suffix line is new, so few of them
    return replace(window, prefix=prefix, suffix=suffix)


def within_new(window: FimRequest, previous: FimRequest, count: Callable[[str], int], max_new: int) -> FimRequest:
    """``window`` cut so that its lines ``previous`` lacks (what a jump must evaluate) cost at most ``max_new``
    tokens.  New suffix lines go first, from the end (the line the cursor is on stays); then, if the new
    prefix lines alone are too many (a jump down past the previous window), the prefix keeps only its last
    lines within ``max_new``: the lines nearest the cursor, a short window like a cold keystroke's."""
    known = set(previous.prefix.splitlines()) | set(previous.suffix.splitlines())

    def cost(line: str) -> int:
        return 0 if line.rstrip("\n") in known else count(line)

    new_prefix = sum(cost(line) for line in window.prefix.splitlines(keepends=True))
    rows = window.suffix.splitlines(keepends=True)
    kept, spent = rows[:1], sum(cost(row) for row in rows[:1])
    for row in rows[1:]:
        if new_prefix + spent + cost(row) > max_new:
            break
        kept.append(row)
        spent += cost(row)
    cut = replace(window, suffix="".join(kept))
    if new_prefix + spent <= max_new:
        return cut
    return fit(cut, count, max_new)


def _last_lines(text: str, n: int) -> str:
    """The last ``n`` lines of ``text`` and its unfinished last line."""
    lines = text.splitlines(keepends=True)
    cut = len(lines) - n - (0 if text.endswith("\n") else 1)
    return "".join(lines[max(0, cut) :])


def _new_lines(previous: FimRequest, window: FimRequest) -> str:
    """The lines of ``window`` that ``previous`` does not have: roughly what a jump must evaluate."""
    known = set(previous.prefix.splitlines()) | set(previous.suffix.splitlines())
    lines = (window.prefix + window.suffix).splitlines(keepends=True)
    return "".join(line for line in lines if line.rstrip("\n") not in known)


def _keeps_anchor(anchor: _Anchor | None, req: FimRequest) -> bool:
    if anchor is None or anchor.suffix != req.suffix or anchor.extra != req.extra:
        return False
    if not req.prefix.startswith(anchor.prefix):
        return False
    typed = req.prefix[len(anchor.prefix) :]
    return typed.count("\n") <= MAX_TYPED_LINES and len(typed) <= MAX_TYPED_CHARS


def _anchor_request(req: FimRequest) -> FimRequest:
    """``req`` with its prefix cut at the anchor: the start of the cursor line's text."""
    line_start = req.prefix.rfind("\n") + 1
    line = req.prefix[line_start:]
    indent = len(line) - len(line.lstrip(" \t"))
    return replace(req, prefix=req.prefix[: line_start + indent])


class FimSessions:
    """Per-session FIM state for every engine.  Lives on ``app.state``."""

    def __init__(self, metrics: Metrics | None = None, max_sessions: int = 512) -> None:
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._metrics = metrics
        self._max = max_sessions

    def _session(self, session: str) -> _Session:
        state = self._sessions.pop(session, None) or _Session()
        state.touched = time.monotonic()
        self._sessions[session] = state
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return state

    def expire(self, ttl_s: float) -> int:
        """Forget sessions idle for ``ttl_s`` (their text and completions); return how many."""
        cutoff = time.monotonic() - ttl_s
        stale = [
            name
            for name, state in self._sessions.items()
            if state.touched < cutoff and (state.inflight is None or state.inflight.done.is_set())
        ]
        for name in stale:
            del self._sessions[name]
        return len(stale)

    def needs_warming(self, route: str, session: str, req: FimRequest) -> bool:
        """Whether ``route`` lacks ``req``'s whole window for ``session`` (no anchor there, another place, or
        a cold keystroke's short window); a short window is forgotten, so the next plan builds the whole one."""
        state = self._sessions.get(session)
        anchor = state.anchors.get(route) if state else None
        if state is None or anchor is None or anchor.partial or not _keeps_anchor(anchor, req):
            return True
        if anchor.short:
            del state.anchors[route]
            return True
        return False

    def window(self, route: str, session: str) -> FimRequest | None:
        """The window ``route`` last evaluated for ``session`` (its anchor's), if any."""
        state = self._sessions.get(session)
        anchor = state.anchors.get(route) if state else None
        return anchor.window if anchor is not None else None

    def mark_partial(self, route: str, session: str, window: FimRequest | None, partial: bool = True) -> None:
        """A warm-up of ``window`` on ``route`` was stopped (``partial``) or finished: while partial, the
        window counts as not cached (the next warm-up resumes where this one stopped)."""
        state = self._sessions.get(session)
        anchor = state.anchors.get(route) if state else None
        if anchor is not None and anchor.window == window:
            anchor.partial = partial

    def uncached_text(self, route: str, session: str, req: FimRequest) -> tuple[str, int] | None:
        """The text of ``req`` that ``route`` has not evaluated for this session yet and the forward passes
        that takes, or None when nothing of the session is cached there (a full evaluation).  After a
        cursor jump that is about the lines the aligned window brings in, in ``JUMP_PASSES`` passes."""
        state = self._sessions.get(session)
        anchor = state.anchors.get(route) if state else None
        if state is None or anchor is None or anchor.partial:
            return None
        if not _keeps_anchor(anchor, req):
            if anchor.window is None:
                return None
            start = _anchor_request(req)
            moved = _new_lines(anchor.window, align(start, anchor.window)) + req.prefix[len(start.prefix) :]
            return moved, JUMP_PASSES
        since = typed_since(state.last_prefix, state.last_suffix, req) if state.last_route == route else None
        return (since if since is not None else req.prefix[len(anchor.prefix) :]), 1

    async def answer_early(
        self,
        session: str,
        req: FimRequest,
        params: SamplingParams,
        only_route: str | None = None,
        group: str | None = None,
        stops: tuple[str, ...] = (),
        engines: Mapping[str, Engine] | None = None,
    ) -> FimJob | None:
        """Settle the in-flight request (wait for it or supersede it); answer typed-ahead if possible.

        ``only_route``: the request is pinned to this engine; answers of others are not reused.
        ``group``: a session-name prefix; in-flight requests of other sessions in it are superseded too.
        A typed-ahead answer honours this request's ``max_tokens`` and ``stops`` (counted with the
        tokenizer of the engine in ``engines`` that made the answer).
        """
        if group is not None:
            for name, other in self._sessions.items():
                if name != session and name.startswith(group) and other.inflight is not None:
                    self._supersede(other.inflight)
        state = self._session(session)
        inflight = state.inflight
        if inflight is not None and not inflight.done.is_set():
            typed = typed_since(inflight.prefix, inflight.suffix, req)
            if typed is not None and params.max_tokens > 0 and inflight.text.startswith(typed):
                await inflight.done.wait()  # it is producing what the user types: answer from it
            else:
                self._supersede(inflight)
        if params.max_tokens <= 0 or (only_route is not None and only_route != state.last_route):
            return None
        typed = typed_since(state.last_prefix, state.last_suffix, req)
        if typed is None or len(state.last_text) <= len(typed) or not state.last_text.startswith(typed):
            return None
        rest = state.last_text[len(typed) :]
        state.last_prefix, state.last_text = req.prefix, rest
        answer = _within(rest, params.max_tokens, stops, engines.get(state.last_route) if engines else None)
        if not answer or (params.monitor is not None and not holds(params.monitor, answer)):
            return None  # nothing left, or it names a member that does not exist: generate afresh
        if self._metrics:
            self._metrics.typed_ahead.labels(state.last_route).inc()
        return FimJob(route=state.last_route, text=answer)

    def _supersede(self, inflight: _Inflight) -> None:
        if inflight.done.is_set() or inflight.cancel.cancelled:
            return
        inflight.cancel.cancel("superseded")
        if self._metrics:
            self._metrics.supersedes.labels(inflight.route).inc()

    def plan(
        self,
        route: str,
        engine: Engine,
        session: str,
        req: FimRequest,
        params: SamplingParams,
        stops: tuple[str, ...] = (),
        t_max_predict_ms: float | None = None,
        block_stops: bool = True,
        max_queue: int | None = None,
        min_indent: int = 0,
        window_tokens: int | None = None,
        max_new: int | None = None,
    ) -> FimJob:
        """Prepare an anchored generation of ``req`` on ``engine`` (``max_queue``: see ``Engine.prepare``).
        ``window_tokens``: when the anchor moves, fit its window to this many tokens (a short first window);
        ``max_new``: when it moves, cut its window so the lines the last window lacked cost at most this many
        (``within_new``: a jump within the client's budget)."""
        state = self._session(session)
        anchor = state.anchors.get(route)
        if anchor is None or not _keeps_anchor(anchor, req):
            previous = anchor.window if anchor is not None else None
            start = _anchor_request(req)
            window = align(start, previous)
            whole = window
            if window_tokens is not None:
                window = fit(window, engine.count_tokens, window_tokens)
            elif max_new is not None and previous is not None:
                window = within_new(window, previous, engine.count_tokens, max_new)
            anchor = _Anchor(start.prefix, req.suffix, req.extra, window=window, short=window != whole)
            state.anchors[route] = anchor
        typed = req.prefix[len(anchor.prefix) :]
        # Trailing spaces split tokens unnaturally: leave them to the model and drop them from its answer.
        shown = typed.rstrip(" \t")
        if params.monitor is not None and shown == typed and _MEMBER_DOT.search(shown):
            shown = shown[:-1]  # ``obj.``: the model writes ``.name`` as one token, checked by the monitor
        typed_tokens = engine.backend.tokenize(shown) if shown else []
        member = params.monitor is not None and _MEMBER_PARTIAL.search(shown) is not None
        if shown == typed and _WORD_END.search(shown) and typed_tokens and not member:
            # A word being typed: its last token is held back and spelled again under a mask, so the model can
            # finish the word with its own tokens (``sel`` -> ``self``) instead of taking the fragment as a
            # whole word (``sel = ...``).  docs/BENCHMARKS.md section 15.  Not in a member being typed under a
            # monitor (``self.na``): there the monitor's mask constrains the rest of the name to real members.
            last = engine.backend.token_bytes(typed_tokens[-1]).decode("utf-8", "ignore")
            if last and shown.endswith(last) and _WORD_END.search(last):
                shown, typed_tokens = shown[: -len(last)], typed_tokens[:-1]
        heal = typed[len(shown) :]
        if heal:
            params = replace(params, heal=heal)
            if params.monitor is not None:
                params = replace(params, monitor=AfterHeal(params.monitor, heal))
        whole = anchor.window or FimRequest(anchor.prefix, req.suffix, req.extra, req.filename)
        room = engine.n_ctx - params.max_tokens - FIM_HEADROOM - len(typed_tokens)
        if anchor.tokens is not None and anchor.fitted == whole and len(anchor.tokens) <= room:
            fitted, tokens = whole, anchor.tokens + typed_tokens  # the anchor's prompt, tokenized once
        else:
            budget = prompt_budget(engine, params.max_tokens, reserved=len(typed_tokens))
            # Fitting the anchor (not the whole prefix) keeps the prompt stable while the user types.
            fitted = fit(whole, engine.count_tokens, budget)
            anchor_tokens = engine.tokenize_prompt(build_prompt(fitted))
            anchor.fitted, anchor.tokens = (fitted, anchor_tokens) if fitted == whole else (None, None)
            tokens = anchor_tokens + typed_tokens
        prompt = build_prompt(fitted)
        if shown:
            prompt.append(shown)
        generation = GenerationRequest(
            prompt=prompt,
            params=params,
            stops=stops,
            policy=FimStops(fitted.prefix + typed, fitted.suffix, block_stops, min_indent),
            t_max_predict_ms=t_max_predict_ms,
            heal=heal,
        )
        prepared = engine.prepare(generation, tokens, max_queue)
        return FimJob(route=route, prepared=prepared, prefix=req.prefix, suffix=req.suffix)

    async def events(self, job: FimJob, engine: Engine, session: str) -> AsyncGenerator[Event, None]:
        """Run a planned job; remember its answer for typed-ahead."""
        if job.text is not None:
            yield Delta(job.text)
            elapsed = (time.perf_counter() - job.started) * 1000
            yield Finished(job.text, "stop", Timings(0, 0, 0, 0.0, elapsed, 0.0, typed_ahead=True))
            return
        assert job.prepared is not None
        state = self._session(session)
        inflight = _Inflight(job.route, job.prefix, job.suffix)
        state.inflight = inflight
        try:
            async for event in engine.stream(job.prepared, inflight.cancel, session):
                if isinstance(event, Delta):
                    inflight.text += event.text
                elif isinstance(event, Finished) and event.finish_reason != "cancelled":
                    anchor = state.anchors.get(job.route)
                    if anchor is not None:
                        anchor.partial = False  # its whole prompt was evaluated
                    state.last_prefix, state.last_suffix = job.prefix, job.suffix
                    state.last_text, state.last_route = event.text, job.route
                yield event
        finally:
            inflight.done.set()
            if state.inflight is inflight:
                state.inflight = None
