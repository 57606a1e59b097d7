"""Plain text completion (no suffix): spark unless the request pins an engine."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace

from codespark import modes
from codespark.config import Settings
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Event, GenerationRequest
from codespark.metrics import Metrics
from codespark.router import Decision, Router
from codespark.services.observe import observed


class CompletionService:
    """Continue a text prompt on a local engine."""

    def __init__(self, router: Router, settings: Settings, metrics: Metrics | None = None) -> None:
        self.router = router
        self.settings = settings
        self.metrics = metrics

    def complete(
        self,
        prompt: str,
        params: SamplingParams,
        max_tokens: int | None,
        stops: tuple[str, ...] = (),
        model: str | None = None,
        honour_modes: bool = False,
    ) -> tuple[Decision, AsyncGenerator[Event, None]]:
        """The decision and the events; ``max_tokens`` None fills what the context leaves.  With
        ``honour_modes`` (API requests), a ``[Mode: ...]`` tag in the prompt pins the engine."""
        prompt, mode = modes.take(prompt) if honour_modes else (prompt, None)
        pinned = modes.model_for(self.router, mode, model)
        decision = self.router.plain(pinned)
        if mode is not None and pinned == mode:
            decision = modes.explain(decision, mode)
        engine = decision.engine
        if max_tokens is None:
            max_tokens = min(self.settings.max_tokens_limit, engine.n_ctx - engine.count_tokens(prompt))
        job = engine.prepare(GenerationRequest([prompt], replace(params, max_tokens=max(0, max_tokens)), stops))
        return decision, observed(decision, engine.stream(job), self.metrics, self.router)
