"""Shared request plumbing for the route modules: routing, sessions, limits, logging."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from typing import Any

from fastapi import Request

from codespark.config import Settings
from codespark.context.repomap import repo_map
from codespark.context.retrieve import Snippet, merge_by_path
from codespark.context.service import RepoContext
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Event
from codespark.engine.fim import ExtraFile, FimRequest
from codespark.engine.spark import FimSessions
from codespark.engine.upstream import Endpoint
from codespark.errors import EngineError, InvalidRequestError, UpstreamUnavailable
from codespark.metrics import Metrics
from codespark.router import Decision, Router
from codespark.server.generation import recorded
from codespark.server.protocol import ChatMessage, TabbySegments, _Request
from codespark.sql.service import SqlService

log = logging.getLogger("codespark.server")

SESSION_HEADER = "X-Session"


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def router_of(request: Request) -> Router:
    router: Router = request.app.state.router
    return router


def note_unknown_fields(body: _Request, endpoint: str) -> None:
    unknown = body.unknown_fields()
    if unknown:
        log.info("%s: ignoring unknown fields %s", endpoint, ", ".join(unknown))


def check_max_tokens(settings: Settings, value: int, param: str = "max_tokens") -> int:
    if value > settings.max_tokens_limit:
        raise InvalidRequestError(
            f"{param}={value} is above this server's limit of {settings.max_tokens_limit}. "
            "Ask for fewer tokens (the limit is the max_tokens_limit setting).",
            param=param,
        )
    return value


def session_of(request: Request, hint: str | None, req: FimRequest) -> str:
    """The editing session, always scoped to the caller (its API key, or its address without keys).

    Within the caller: the ``X-Session`` header or a body field, else the file name, else a
    hash of the document's first lines, so that two buffers of one editor that sends neither
    (llama.vim, llama.vscode) keep separate caches instead of evicting each other.
    """
    identity = getattr(request.state, "identity", None)
    if identity is None:
        identity = f"client:{request.client.host if request.client else 'local'}"
    explicit = request.headers.get(SESSION_HEADER) or hint
    if explicit:
        return f"{identity}|id:{explicit[:200]}"
    if req.filename:
        return f"{identity}|file:{req.filename[:500]}"
    return f"{identity}|{DERIVED}{_document_key(req.prefix)}"


DERIVED = "doc:"  # the mark of a session derived from the text; see FimSessions.answer_early
_DOCUMENT_LINES = 3


def _document_key(prefix: str) -> str:
    """A short hash of the first complete, non-blank lines of the prefix window: stable while the user types."""
    complete = prefix[: prefix.rfind("\n") + 1].splitlines()  # not the cursor line, which changes per keystroke
    lines = [line for line in complete[: _DOCUMENT_LINES * 4] if line.strip()][:_DOCUMENT_LINES]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


async def _with_schema(request: Request, req: FimRequest) -> FimRequest:
    """A .sql file's completion sees the schema of ``sql_db`` (the same text each time, so the cache holds)."""
    url = settings_of(request).sql_db
    if not url or not (req.filename or "").lower().endswith(".sql"):
        return req
    service: SqlService = request.app.state.sql
    text = await asyncio.to_thread(service.schema_text, url)
    return replace(req, extra=(ExtraFile("schema.sql", text), *req.extra))


async def _with_repo_context(request: Request, req: FimRequest) -> FimRequest:
    """Merge the client's context files with the repo's (definitions, similar code) within the budget.

    The snippets used are kept on ``request.state.context`` for the routes' debug output.
    """
    settings = settings_of(request)
    repo: RepoContext | None = request.app.state.repo
    client = [Snippet(e.filename, e.text, 5.0, "sent by the client") for e in req.extra]
    if repo is None or not repo.ready.is_set() or not req.filename or settings.context_mode == "none":
        request.state.context = client
        return req
    pieces = await asyncio.to_thread(
        repo.for_completion,
        req.filename,
        req.prefix,
        req.suffix,
        settings.context_tokens,
        client,
        settings.context_mode,
    )
    request.state.context = pieces
    return replace(req, extra=tuple(ExtraFile(path, text) for path, text in merge_by_path(pieces)))


def chat_repo_map(request: Request, repo: str | None, messages: list[ChatMessage]) -> str:
    """The repo map for a chat that names the server's repo, focused on the files the messages mention."""
    if repo is None:
        return ""
    context: RepoContext | None = request.app.state.repo
    if context is None or repo not in (str(context.root), context.root.name, "."):
        where = f"it serves {context.root}" if context is not None else "start it with --repo-dir PATH"
        raise InvalidRequestError(f"This server has no index for the repo {repo!r}: {where}.", param="repo")
    if not context.ready.is_set():
        raise EngineError("The repo is still being indexed; retry in a few seconds.")
    text = "\n".join(m.text() for m in messages)
    files = [row[0] for row in context.index.conn.execute("SELECT path FROM files")]
    focus = [f for f in files if f in text or f.rsplit("/", 1)[-1] in text]
    return repo_map(context.index, settings_of(request).context_tokens, focus)


def tabby_fim(segments: TabbySegments) -> FimRequest:
    """A FIM request from Tabby's segments: its declarations and snippets become context files."""
    extra = [ExtraFile(d.filepath, d.body) for d in segments.declarations or []]
    snippets = (segments.relevant_snippets_from_changed_files or []) + (
        segments.relevant_snippets_from_recently_opened_files or []
    )
    extra += [ExtraFile(s.filepath, s.body) for s in snippets]
    return FimRequest(segments.prefix, segments.suffix or "", tuple(extra), segments.filepath)


def debug_data(request: Request) -> dict[str, object]:
    """The context snippets a completion used (Tabby's ``debug_data`` shape, with our reasons)."""
    pieces = getattr(request.state, "context", [])
    return {
        "snippets": [
            {"filepath": p.path, "body": p.text, "score": round(p.score, 3), "reason": p.reason} for p in pieces
        ]
    }


def observed(request: Request, decision: Decision, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
    state = request.app.state
    metrics: Metrics = state.metrics
    metrics.routes.labels(decision.route, decision.reason.split(":")[0]).inc()
    return recorded(decision, events, metrics, state.router)


async def plan_fim(
    request: Request,
    model: str | None,
    session_hint: str | None,
    req: FimRequest,
    params: SamplingParams,
    stops: tuple[str, ...],
    t_max_predict_ms: float | None,
    budget_ms: float | None,
) -> tuple[Decision, AsyncGenerator[Event, None]]:
    """Route a FIM request and plan it on its session; return the decision and the events."""
    settings = settings_of(request)
    router = router_of(request)
    sessions: FimSessions = request.app.state.fim
    session = session_of(request, session_hint, req)
    pinned = router.pinned(model)
    # A caller types in one place at a time: a keystroke in a derived session also supersedes
    # the caller's other derived sessions (the window of a big file slides as lines are added).
    group = session.split("|", 1)[0] + "|" + DERIVED if DERIVED in session else None
    # Typed-ahead first: a hit needs no context, no routing and no forward pass.
    early = await sessions.answer_early(
        session, req, params, pinned.route if pinned else None, group, stops, router.engines.routes
    )
    if early is not None:
        route = early.route if early.route in router.engines.routes else next(iter(router.engines.routes))
        decision = Decision(route, router.engines.routes[route], "typed-ahead: the last completion predicted this")
        request.state.context = []
        return decision, observed(request, decision, sessions.events(early, decision.engine, session))
    req = await _with_schema(request, req)
    req = await _with_repo_context(request, req)
    to_evaluate: dict[str, int] = {}
    for route, engine in router.engines.routes.items():
        uncached = sessions.uncached_text(route, session, req)
        if uncached is not None:
            to_evaluate[route] = 1 + engine.count_tokens(uncached)
        else:
            to_evaluate[route] = min(engine.n_ctx, engine.count_tokens(req.prefix) + engine.count_tokens(req.suffix))
    decision = router.fim(model, budget_ms, to_evaluate)
    job = sessions.plan(
        decision.route, decision.engine, session, req, params, stops, t_max_predict_ms, settings.fim_block_stops
    )
    return decision, observed(request, decision, sessions.events(job, decision.engine, session))


async def deep_events(
    request: Request,
    decision: Decision,
    endpoint: Endpoint,
    payload: dict[str, Any],
    local: Callable[[Decision], AsyncGenerator[Event, None]],
) -> tuple[Decision, AsyncGenerator[Event, None]]:
    """Events from the decision's upstream (redacted, restored), or from ``local`` when it has none or is down."""
    up = decision.upstream
    if up is None:
        return decision, observed(request, decision, local(decision))
    metrics: Metrics = request.app.state.metrics

    def count(kinds: dict[str, int]) -> None:
        for kind, n in kinds.items():
            metrics.redactions.labels(kind).inc(n)

    try:
        events = await up.start(endpoint, payload, on_redacted=count)
    except UpstreamUnavailable as exc:
        log.warning("%s Answering locally.", exc.message)
        metrics.upstream_fallbacks.labels(up.name).inc()
        fallback = router_of(request).fall_back(exc.message)
        return fallback, observed(request, fallback, local(fallback))
    return decision, observed(request, decision, events)
