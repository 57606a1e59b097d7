"""Prometheus metrics, one registry per app (no module-level state).

No label ever carries request content: only engine names, route reasons and
outcome kinds.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6)
_TPS_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)


class Metrics:
    """The counters and histograms codespark exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ttft = Histogram(
            "codespark_ttft_seconds", "Time to first token.", ["engine"], buckets=_TTFT_BUCKETS, registry=r
        )
        self.decode = Histogram(
            "codespark_decode_tokens_per_second",
            "Decode speed per request.",
            ["engine"],
            buckets=_TPS_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("codespark_prompt_tokens", "Prompt tokens received.", ["engine"], registry=r)
        self.cached_tokens = Counter(
            "codespark_cached_tokens", "Prompt tokens served from the KV cache.", ["engine"], registry=r
        )
        self.completion_tokens = Counter("codespark_completion_tokens", "Tokens generated.", ["engine"], registry=r)
        self.requests = Counter(
            "codespark_requests", "Finished generations by outcome.", ["engine", "finish"], registry=r
        )
        self.supersedes = Counter(
            "codespark_supersedes", "In-flight requests cancelled by a newer one.", ["engine"], registry=r
        )
        self.typed_ahead = Counter(
            "codespark_typed_ahead_hits", "Keystrokes answered from a previous completion.", ["engine"], registry=r
        )
        self.chat_checks = Counter(
            "codespark_chat_answers_flagged", "Chat answers whose code names something that does not exist.", registry=r
        )
        self.routes = Counter("codespark_route_decisions", "Router decisions.", ["engine", "reason"], registry=r)
        self.drafted = Counter(
            "codespark_spec_drafted_tokens",
            "Tokens proposed by speculative drafting.",
            ["engine", "drafter"],
            registry=r,
        )
        self.accepted = Counter(
            "codespark_spec_accepted_tokens", "Drafted tokens the model accepted.", ["engine", "drafter"], registry=r
        )

        self.upstream_fallbacks = Counter(
            "codespark_upstream_fallbacks",
            "Requests answered locally because their upstream was down.",
            ["upstream"],
            registry=r,
        )
        self.mgd_triggers = Counter(
            "codespark_mgd_triggers",
            "Trigger points where a monitor constrained the names that could be written, by kind.",
            ["engine", "kind"],
            registry=r,
        )
        self.mgd_masked = Counter(
            "codespark_mgd_masked_steps", "Sampling steps decoded under an identifier mask.", ["engine"], registry=r
        )
        self.redactions = Counter(
            "codespark_redactions",
            "Distinct values redacted from prompts sent upstream, by kind.",
            ["kind"],
            registry=r,
        )

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
