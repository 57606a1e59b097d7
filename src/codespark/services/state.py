"""Everything one server holds, typed, built once in ``create_app`` (no module-level state)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from codespark.config import Settings
from codespark.context.service import RepoContext
from codespark.engine.loader import Engines
from codespark.engine.upstream import Upstream
from codespark.guard.ignore import NeverSend
from codespark.metrics import Metrics
from codespark.router import Router
from codespark.services.chat import ChatService
from codespark.services.completion import CompletionService
from codespark.services.fim import FimService
from codespark.services.fix import FixService
from codespark.services.migrate import MigrateService
from codespark.services.review import ReviewService
from codespark.services.sql import SqlService


@dataclass
class AppState:
    settings: Settings
    engines: Engines
    metrics: Metrics
    router: Router
    upstreams: dict[str, Upstream]
    fim: FimService
    chat: ChatService
    completion: CompletionService
    sql: SqlService
    fix: FixService
    migrate: MigrateService
    review: ReviewService
    repo: RepoContext | None
    started: float = field(default_factory=time.time)

    @classmethod
    def build(cls, settings: Settings, engines: Engines) -> AppState:
        metrics = Metrics()
        upstreams = {cfg.name: Upstream(cfg) for cfg in settings.upstreams}
        codex_upstream = upstreams[settings.codex_upstream] if settings.codex_upstream else None
        router = Router(engines, settings.router_fim, settings.fim_latency_budget_ms, codex_upstream)
        repo = RepoContext(settings.repo_dir, settings.cache_dir) if settings.repo_dir else None
        sql = SqlService(
            settings.databases, router=router, max_tokens_limit=settings.max_tokens_limit, monitor=settings.mgd == "on"
        )
        never_send = NeverSend.load(settings.never_send, settings.workspace_dir)
        chat = ChatService(router, settings, metrics, never_send, repo)
        fix = FixService(chat, router, settings.cache_dir, settings.workspaces)
        return cls(
            settings=settings,
            engines=engines,
            metrics=metrics,
            router=router,
            upstreams=upstreams,
            fim=FimService(router, settings, metrics, sql, repo),
            chat=chat,
            completion=CompletionService(router, settings, metrics),
            sql=sql,
            fix=fix,
            migrate=MigrateService(settings.cache_dir, settings.workspaces, fix),
            review=ReviewService(chat, settings.cache_dir, "codex" if "codex" in engines.routes else None),
            repo=repo,
        )
