"""The router: which engine answers a request, and why.

Inputs: the task (inline FIM, or chat and other deep work), a pinned model if
the request names one, the client's latency budget (``t_max_predict_ms`` or
``max_latency_ms``), how much of the prompt each engine still has to evaluate,
and whether an engine is busy.  Policy, from the settings:

- a request that names ``spark``, ``codex`` or an alias is pinned to it;
- chat and other deep work go to codex (spark if codex is not configured);
  with ``codex_upstream`` set they go to that provider, and to the local
  engine while it is down (the decision then carries the fallback reason);
- inline FIM goes to the *quality* engine (codex) unless its estimated time
  to first token misses the latency budget while spark's fits it, or codex's
  queue is past the keystroke limit (``fim_max_queue``) while spark's is not.  When
  neither fits (a cold prompt costs seconds on either), quality wins: spark is
  not enough faster to be worth its lower pass rate.  For a client that sets a latency budget, the
  first keystroke at a new place (a cursor jump: spark's window moved) goes to spark when spark is
  faster, and codex warms that window in the background for the next keystroke.  ``router_fim`` = ``spark``
  or ``codex`` fixes the choice instead.  When the ``codex_upstream`` does FIM
  (``[[upstreams]] fim``), a keystroke that names no model goes there while its
  measured time to first token fits the budget (and it is up), with the local
  choice as its fallback.

Time estimates come from each engine's measured speeds (moving averages of
prefill and decode milliseconds per token), so the policy adapts to the machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from codespark.engine.engine import Engine, Timings
from codespark.engine.loader import Engines
from codespark.engine.upstream import Upstream
from codespark.errors import ModelNotFoundError

# Starting points for the estimates (2 cores, measured; see docs/BENCHMARKS.md), in ms per token.
_DEFAULT_SPEED = {"spark": (10.0, 37.0), "codex": (12.0, 85.0)}
_BUSY_PENALTY_MS = 1000.0


@dataclass(frozen=True)
class Decision:
    """Who answers: a local engine, or an upstream with that engine as its fallback."""

    route: str
    engine: Engine
    reason: str
    upstream: Upstream | None = None
    fallback: str | None = None


class EngineSpeed:
    """Exponential moving averages of one engine's prefill and decode cost per token."""

    def __init__(self, prefill_ms: float, decode_ms: float, alpha: float = 0.2) -> None:
        self.prefill_ms = prefill_ms
        self.decode_ms = decode_ms
        self._alpha = alpha

    def observe(self, t: Timings) -> None:
        evaluated = t.prompt_tokens - t.cached_tokens
        if evaluated >= 8 and t.prefill_ms > 0:
            self.prefill_ms += self._alpha * (t.prefill_ms / evaluated - self.prefill_ms)
        if t.completion_tokens > 2 and t.decode_ms > 0:
            self.decode_ms += self._alpha * (t.decode_ms / (t.completion_tokens - 1) - self.decode_ms)

    def ttft_ms(self, tokens_to_evaluate: int, passes: int = 1) -> float:
        """Prefill plus the first token; ``passes``: forward passes before it (a cursor jump evaluates the
        text between reused runs in one pass per gap, and each costs about a decode step)."""
        return max(1, tokens_to_evaluate) * self.prefill_ms + passes * self.decode_ms


class Router:
    """Chooses an engine per request; keeps per-engine speed estimates."""

    def __init__(
        self,
        engines: Engines,
        fim_policy: str,
        default_budget_ms: float,
        codex_upstream: Upstream | None = None,
    ) -> None:
        self.engines = engines
        self.codex_upstream = codex_upstream
        self.fim_policy = fim_policy
        self.default_budget_ms = default_budget_ms
        self.speed = {r: EngineSpeed(*_DEFAULT_SPEED.get(r, (10.0, 40.0))) for r in engines.routes}
        self.upstream_fim_ms: float | None = None  # moving mean of the FIM upstream's time to first token
        self.upstream_fim_down_until = 0.0  # after a refused keystroke, FIM stays local until then

    def observe_upstream_fim(self, ttft_ms: float) -> None:
        mean = self.upstream_fim_ms
        self.upstream_fim_ms = ttft_ms if mean is None else mean + 0.2 * (ttft_ms - mean)

    def observe(self, route: str, timings: Timings) -> None:
        if route in self.speed and not timings.typed_ahead:
            self.speed[route].observe(timings)

    def pinned(self, model: str | None) -> Decision | None:
        if model is None or model.strip().lower() in ("", "auto"):
            return None
        found = self.engines.lookup(model)
        if found is None:
            names = ", ".join(["auto", *self.engines.names(), *sorted(self.engines.aliases)])
            raise ModelNotFoundError(f"The model {model!r} does not exist here. Use one of: {names}.", param="model")
        return Decision(found[0], found[1], "pinned by the request")

    def plain(self, model: str | None) -> Decision:
        """A plain completion (no suffix): spark unless pinned."""
        pinned = self.pinned(model)
        if pinned:
            return pinned
        route = "spark" if "spark" in self.engines.routes else "codex"
        return Decision(route, self.engines.routes[route], "task: plain completion goes to spark")

    def deep(self, model: str | None) -> Decision:
        """Chat, edit, SQL, repair: codex unless pinned."""
        pinned = self.pinned(model)
        if pinned:
            return pinned
        up = self.codex_upstream
        if up is None:
            return self.local_deep()
        if not up.available:
            why = f"upstream {up.name} is down ({up.last_error}); next try in {up.cooldown_left():.0f} s"
            return self.fall_back(why)
        local = self.local_deep("")
        return replace(local, route=f"upstream:{up.name}", upstream=up, reason=f"task: deep work goes to {up.name}")

    def fall_back(self, why: str) -> Decision:
        """The local engine for deep work, when the upstream cannot answer."""
        return replace(self.local_deep(f"fallback: {why}"), fallback=why)

    def local_deep(self, reason: str = "task: deep work goes to codex") -> Decision:
        """Codex (spark when codex is off), never an upstream: for work that must stay on this machine."""
        route = "codex" if "codex" in self.engines.routes else "spark"
        return Decision(route, self.engines.routes[route], reason)

    def fim(
        self,
        model: str | None,
        budget_ms: float | None,
        tokens_to_evaluate: dict[str, int],
        max_queue: int | None = None,
        upstream: bool = True,
        passes: dict[str, int] | None = None,
    ) -> Decision:
        """Inline FIM: the FIM upstream if it fits the latency budget (``upstream``), else the quality engine
        if it fits, else spark.

        ``max_queue``: the keystroke queue limit; when codex has more waiting (chat, SQL) and spark
        has room, spark answers rather than the keystroke being shed.  ``passes``: forward passes per
        route before the first token (default 1; see ``EngineSpeed.ttft_ms``).
        """
        pinned = self.pinned(model)
        if pinned:
            return pinned
        local = self._local_fim(budget_ms, tokens_to_evaluate, max_queue, passes or {})
        up = self.codex_upstream
        if not upstream or up is None or up.cfg.fim == "none" or not up.available:
            return local
        if time.monotonic() < self.upstream_fim_down_until:
            return local
        budget = budget_ms if budget_ms is not None else self.default_budget_ms
        measured = self.upstream_fim_ms
        if measured is not None and measured > budget:
            return local
        why = "not measured yet" if measured is None else f"~{measured:.0f} <= {budget:.0f} ms"
        return replace(
            local, route=f"upstream:{up.name}", upstream=up, reason=f"fim: {up.name} fits the budget ({why})"
        )

    def _local_fim(
        self, budget_ms: float | None, tokens_to_evaluate: dict[str, int], max_queue: int | None, passes: dict[str, int]
    ) -> Decision:
        routes = self.engines.routes
        if self.fim_policy in routes:
            return Decision(self.fim_policy, routes[self.fim_policy], f"policy: router_fim={self.fim_policy}")
        if "codex" not in routes or "spark" not in routes:
            only = next(iter(routes))
            return Decision(only, routes[only], "only one engine is configured")
        if max_queue is not None and routes["codex"].pending > max_queue >= routes["spark"].pending:
            waiting = routes["codex"].pending - 1
            return Decision("spark", routes["spark"], f"queue: codex has {waiting} waiting, spark has room")
        budget = budget_ms if budget_ms is not None else self.default_budget_ms
        codex, spark = (self._estimate(r, tokens_to_evaluate.get(r, 1), passes.get(r, 1)) for r in ("codex", "spark"))
        if passes.get("spark", 1) > 1 and spark < codex:
            return Decision(
                "spark", routes["spark"], f"fim: a new place: spark answers first (~{spark:.0f} ms, codex ~{codex:.0f})"
            )
        if codex <= budget:
            return Decision("codex", routes["codex"], f"fim: codex fits the budget ({codex:.0f} <= {budget:.0f} ms)")
        if spark <= budget:
            return Decision(
                "spark", routes["spark"], f"fim: codex ~{codex:.0f} ms misses the {budget:.0f} ms budget, spark fits"
            )
        return Decision("codex", routes["codex"], f"fim: neither fits {budget:.0f} ms (codex ~{codex:.0f}); quality")

    def tokens_within(self, route: str, budget_ms: float, passes: int = 1) -> int:
        """How many tokens ``route`` can evaluate in ``passes`` passes within ``budget_ms`` (``EngineSpeed``)."""
        speed = self.speed[route]
        return max(0, int((budget_ms - passes * speed.decode_ms) / speed.prefill_ms))

    def estimate(self, route: str, tokens: int, passes: int = 1) -> float:
        """Milliseconds to the first token on ``route`` for ``tokens`` to evaluate (busy engines cost more)."""
        return self._estimate(route, tokens, passes)

    def _estimate(self, route: str, tokens: int, passes: int = 1) -> float:
        estimate = self.speed[route].ttft_ms(tokens, passes)
        if self.engines.routes[route].busy:
            estimate += _BUSY_PENALTY_MS
        return estimate
