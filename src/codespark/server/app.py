"""The application factory.  All state lives on ``app.state``; nothing is global."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from codespark import __version__
from codespark.config import Settings
from codespark.engine.loader import Engines
from codespark.engine.spark import FimSessions
from codespark.metrics import Metrics
from codespark.router import Router
from codespark.server import errors, infill, openai

log = logging.getLogger("codespark.server")


def create_app(settings: Settings, engines: Engines) -> FastAPI:
    """A FastAPI app serving ``engines``.  The app closes them on shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engines.close()

    app = FastAPI(
        title="codespark",
        version=__version__,
        description="Self-hosted coding assistant engine: OpenAI- and llama-server-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engines = engines
    app.state.started = time.time()
    app.state.metrics = Metrics()
    app.state.router = Router(engines, settings.router_fim, settings.fim_latency_budget_ms)
    app.state.fim = FimSessions(app.state.metrics)
    errors.install(app)
    app.include_router(openai.router)
    app.include_router(infill.router)

    @app.get("/health")
    async def health(request: Request) -> dict[str, object]:
        current: Engines = request.app.state.engines
        return {
            "status": "ok",
            "version": __version__,
            "engines": {
                route: {"model": e.backend.info.model_id, "busy": e.busy, "n_ctx": e.n_ctx}
                for route, e in current.routes.items()
            },
        }

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
