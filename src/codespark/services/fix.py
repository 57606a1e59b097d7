"""The fix service: ``codespark fix`` and ``POST /v1/fix`` both call it; review and migration will too.

It picks the samplers for an engine choice (the local codex, spark, an upstream through the privacy
guard), detects the test command, opens a workspace, runs the loop and, when asked and green, applies
the fix to the user's tree.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codespark.agent.loop import Event, FixLoop, FixOptions, Sampler
from codespark.agent.testrun import TestCommand, detect
from codespark.agent.workspace import Workspace
from codespark.config import WorkspaceSettings
from codespark.engine.backend import SamplingParams
from codespark.engine.chat import Message
from codespark.errors import (
    ConfigError,
    EngineError,
    InvalidRequestError,
    OverloadedError,
)
from codespark.router import Router
from codespark.services.chat import ChatCall, ChatService
from codespark.services.workspaces import configured

ENGINES = ("auto", "codex", "spark", "upstream")
FENCE_STOPS = ("\n```\n",)


class ChatSampler:
    """Candidates from the chat service: a local engine by name, or (``model=None``) the configured
    upstream, redacted by the guard, with the local fallback."""

    def __init__(self, chat: ChatService, model: str | None, name: str) -> None:
        self.chat = chat
        self.model = model
        self.name = name

    async def sample(self, messages: Sequence[Message], params: SamplingParams) -> str:
        return (await self.sample_many(messages, [params]))[0]

    async def sample_many(self, messages: Sequence[Message], params: Sequence[SamplingParams]) -> list[str]:
        # The answer is one fenced block: stop at its closing fence instead of letting a small model ramble.
        call = ChatCall(messages, params[0], max_tokens=params[0].max_tokens, stops=FENCE_STOPS, model=self.model)
        if len(params) == 1:
            return [await self.chat.answer(call)]
        return await self.chat.sample_many(call, params)


@dataclass(frozen=True)
class FixRequest:
    path: Path
    test_cmd: str | None = None
    engine: str = "auto"
    apply: bool = False
    options: FixOptions = field(default_factory=FixOptions)


class FixService:
    def __init__(
        self, chat: ChatService, router: Router, cache_dir: Path, workspaces: Sequence[WorkspaceSettings] = ()
    ) -> None:
        self.chat = chat
        self.router = router
        self.cache_dir = cache_dir
        self.workspaces = {w.name: w for w in workspaces}
        self._running = 0

    def for_workspace(self, name: str, engine: str, apply: bool, options: FixOptions) -> FixRequest:
        """The request for a configured workspace (HTTP clients name one; its path and tests are its own)."""
        found = configured(self.workspaces, name, apply)
        return FixRequest(found.path, found.test_cmd, engine, apply, options)

    def samplers(self, engine: str) -> tuple[list[Sampler], Sampler | None]:
        """The escalation ladder for ``engine``, and the cheap sampler for syntax errors."""
        routes = self.router.engines.routes
        up = self.router.codex_upstream
        if engine not in ENGINES:
            raise InvalidRequestError(f"Unknown engine {engine!r}: use one of {', '.join(ENGINES)}.", param="engine")
        if engine == "upstream":
            if up is None:
                raise ConfigError("--engine upstream needs codex_upstream in the settings ([[upstreams]]).")
            return [ChatSampler(self.chat, None, f"upstream:{up.name}")], None
        if engine in ("codex", "spark"):
            if engine not in routes:
                raise ConfigError(f"The {engine} engine is not loaded ({engine}_model = none?).")
            return [ChatSampler(self.chat, engine, engine)], None
        local = "codex" if "codex" in routes else "spark"
        if local not in routes:
            raise EngineError("No engine is loaded to write fixes.")
        ladder: list[Sampler] = [ChatSampler(self.chat, local, local)]
        if up is not None:
            ladder.append(ChatSampler(self.chat, None, f"upstream:{up.name}"))
        cheap = ChatSampler(self.chat, "spark", "spark") if "spark" in routes and local != "spark" else None
        return ladder, cheap

    def command(self, request: FixRequest) -> TestCommand:
        return detect(request.path.resolve(), request.test_cmd)

    def start(self, request: FixRequest) -> AsyncGenerator[Event, None]:
        """Check the request now (engine, test command, one run at a time), then the run's events; they end
        with ``finished`` (and ``applied`` when the fix went into the tree)."""
        if self._running:
            raise OverloadedError("A fix is already running on this server; retry when it ends.", retry_after=30)
        samplers, cheap = self.samplers(request.engine)
        command = self.command(request)
        return self._run(request, samplers, cheap, command)

    async def _run(
        self, request: FixRequest, samplers: list[Sampler], cheap: Sampler | None, command: TestCommand
    ) -> AsyncGenerator[Event, None]:
        if self._running:  # another run started between start() and the first event
            raise OverloadedError("A fix is already running on this server; retry when it ends.", retry_after=30)
        self._running += 1
        try:
            workspace = Workspace.open(request.path, self.cache_dir)
            try:
                loop = FixLoop(workspace, command, samplers, request.options, cheap)
                async for event in loop.events():
                    yield event
                result = loop.result
                if request.apply and result is not None and result.status == "fixed" and result.changed:
                    changed = workspace.apply()
                    yield Event("applied", {"changed": changed, "root": str(workspace.top)})
            finally:
                workspace.close()
        finally:
            self._running -= 1
