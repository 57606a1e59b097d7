"""The application factory.  All state is one typed ``AppState`` built here; nothing is global."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from codespark import __version__
from codespark.config import Settings
from codespark.context.service import RepoContext
from codespark.engine.loader import Engines
from codespark.errors import CodesparkError
from codespark.guard.auth import KeyChecker, RateLimiter
from codespark.guard.hosts import HostPolicy
from codespark.server import errors, fix, infill, migrate, ollama, openai, review, sql
from codespark.server.access import AccessControl, HostGuard
from codespark.server.deps import State
from codespark.services.state import AppState

log = logging.getLogger("codespark.server")


async def _expire_sessions(state: AppState) -> None:
    """Drop idle sessions' KV caches and text every so often (zero retention: RAM only, not for long)."""
    ttl_s = state.settings.session_ttl_s
    while True:
        await asyncio.sleep(min(60.0, ttl_s / 4))
        for engine in state.engines.routes.values():
            await engine.expire_sessions(ttl_s)
        state.fim.expire(ttl_s)


async def _index_repo(repo: RepoContext) -> None:
    """Index the repo off the event loop; completions use repo context once it is ready."""
    try:
        report = await asyncio.to_thread(repo.refresh)
    except CodesparkError as exc:
        state = "the previous index serves" if repo.ready.is_set() else "completions go without repo context"
        log.warning("%s Meanwhile %s.", exc.message, state)
        return
    log.info(
        "indexed %s: %d files (%d parsed, %d unchanged, %d skipped, %d with parse errors) in %.1f s",
        repo.root,
        report.files,
        report.parsed,
        report.unchanged,
        report.skipped,
        report.with_errors,
        report.seconds,
    )


def create_app(settings: Settings, engines: Engines) -> FastAPI:
    """A FastAPI app serving ``engines``.  The app closes them on shutdown."""
    state = AppState.build(settings, engines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_expire_sessions(state))
        indexing = asyncio.create_task(_index_repo(state.repo)) if state.repo is not None else None
        yield
        sweeper.cancel()
        if indexing is not None:
            await asyncio.gather(indexing, return_exceptions=True)
        if state.repo is not None:
            state.repo.index.close()
        for upstream in state.upstreams.values():
            await upstream.aclose()
        engines.close()
        state.sql.close()

    app = FastAPI(
        title="codespark",
        version=__version__,
        description="Self-hosted coding assistant engine: OpenAI- and llama-server-compatible API.",
        lifespan=lifespan,
    )
    app.state.codespark = state
    errors.install(app)
    # Starlette runs the last middleware added first: host/origin check, then CORS, then keys and limits.
    app.add_middleware(
        AccessControl,
        keys=KeyChecker(settings.api_keys),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        max_body_bytes=settings.max_request_bytes,
        log_bodies=settings.log_prompts and not settings.zero_retention,
    )
    if settings.cors_origins:  # no CORS headers at all unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["X-Codespark-Engine", "X-Codespark-Fallback", "Retry-After"],
        )
    app.add_middleware(
        HostGuard, policy=HostPolicy.for_bind(settings.host, settings.allowed_hosts, settings.cors_origins)
    )
    app.include_router(openai.router)
    app.include_router(infill.router)
    app.include_router(sql.router)
    app.include_router(fix.router)
    app.include_router(migrate.router)
    app.include_router(review.router)
    app.include_router(ollama.router)

    @app.get("/health")
    async def health(state: State) -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "engines": {
                route: {"model": e.backend.info.model_id, "busy": e.busy, "n_ctx": e.n_ctx}
                for route, e in state.engines.routes.items()
            },
        }

    @app.get("/metrics")
    async def metrics(state: State) -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
