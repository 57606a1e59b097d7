"""Record what a finished generation cost: metrics, and the router's speed estimates."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from codespark.engine.engine import Event, Finished
from codespark.metrics import Metrics
from codespark.router import Decision, Router


def observed(
    decision: Decision, events: AsyncGenerator[Event, None], metrics: Metrics | None, router: Router
) -> AsyncGenerator[Event, None]:
    """Pass ``events`` through, counting the decision and recording the finished generation's numbers."""
    count_decision(decision, metrics)

    async def gen() -> AsyncGenerator[Event, None]:
        async with aclosing(events) as stream:
            async for item in stream:
                if isinstance(item, Finished):
                    observe(decision.route, item, metrics, router)
                yield item

    return gen()


def count_decision(decision: Decision, metrics: Metrics | None, requests: int = 1) -> None:
    """The router's decision, by route and the kind of reason, for ``requests`` requests."""
    if metrics is not None:
        metrics.routes.labels(decision.route, decision.reason.split(":")[0]).inc(requests)


def count_redactions(metrics: Metrics | None) -> Callable[[dict[str, int]], None]:
    """The guard's callback: what it redacted on the way out, by kind, into ``/metrics``."""

    def count(kinds: dict[str, int]) -> None:
        if metrics is not None:
            for kind, n in kinds.items():
                metrics.redactions.labels(kind).inc(n)

    return count


def observe(route: str, result: Finished, metrics: Metrics | None, router: Router, estimate: bool = True) -> None:
    """Count ``result`` in the metrics and (``estimate``: a generation on its own, not one of a batch whose
    answers share the steps) in the router's speed estimates."""
    if estimate:
        router.observe(route, result.timings)
    if metrics is None:
        return
    t = result.timings
    metrics.requests.labels(route, result.finish_reason).inc()
    metrics.prompt_tokens.labels(route).inc(t.prompt_tokens)
    metrics.cached_tokens.labels(route).inc(t.cached_tokens)
    metrics.completion_tokens.labels(route).inc(t.completion_tokens)
    if t.completion_tokens or t.typed_ahead:
        metrics.ttft.labels(route).observe(t.ttft_ms / 1000)
    if t.decode_per_second > 0:
        metrics.decode.labels(route).observe(t.decode_per_second)
    if t.masked_steps:
        metrics.mgd_masked.labels(route).inc(t.masked_steps)
        for part in t.triggers.split():
            kind, _, n = part.partition("=")
            metrics.mgd_triggers.labels(route, kind).inc(int(n or 0))
    if t.drafter:
        metrics.drafted.labels(route, t.drafter).inc(t.drafted)
        metrics.accepted.labels(route, t.drafter).inc(t.accepted)
