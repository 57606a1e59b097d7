"""The migrate service: ``codespark migrate`` and ``POST /v1/migrate`` both call it.

It resolves the recipe and the workspace, opens the worktree, runs the migration (with the fix loop as
the model's part, for a recipe that allows it and an engine to write with) and, when asked and something
was verified, applies it to the user's tree (all or none).  One migration runs at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import codespark.migrate as migrate_package
from codespark import __version__
from codespark.agent.loop import FixLoop, FixOptions, Sampler
from codespark.agent.testrun import TestCommand, detect
from codespark.agent.workspace import Workspace
from codespark.config import WorkspaceSettings
from codespark.errors import InvalidRequestError, OverloadedError
from codespark.migrate.registry import RECIPES
from codespark.migrate.run import Event, MigrateOptions, Migration
from codespark.services.fix import ENGINES, FixService
from codespark.services.workspaces import configured

NO_MODEL = "none"


@dataclass(frozen=True)
class MigrateRequest:
    path: Path
    recipe: str
    test_cmd: str | None = None
    modules: str | None = None
    apply: bool = False
    engine: str = "auto"  # who writes the repairs: an engine as for ``codespark fix``, or "none" (fixers only)
    rounds: int = 3  # the fix loop's rounds on the failing suite
    candidates: int = 3
    mutants: int = 80  # the fix loop's single-token repairs, before the model


class FixLoopRepair:
    """The model's part of a migration: the fix loop on the migrated tree, its events passed on."""

    def __init__(self, samplers: Sequence[Sampler], cheap: Sampler | None, options: FixOptions) -> None:
        self.samplers = samplers
        self.cheap = cheap
        self.options = options

    async def events(self, workspace: Workspace, command: TestCommand) -> AsyncIterator[dict[str, Any]]:
        loop = FixLoop(workspace, command, self.samplers, self.options, self.cheap)
        async for event in loop.events():
            # The fix loop's event kind is the step (the migration's event is "repair"); the migration's
            # own events carry the diffs.
            yield {"step": event.kind, **{k: v for k, v in event.data.items() if k != "diff"}}


class MigrateService:
    def __init__(self, cache_dir: Path, workspaces: Sequence[WorkspaceSettings] = (),
                 fix: FixService | None = None) -> None:  # fmt: skip
        self.cache_dir = cache_dir
        self.workspaces = {w.name: w for w in workspaces}
        self.fix = fix
        self._lock = asyncio.Lock()

    def for_workspace(self, name: str, recipe: str, modules: str | None, apply: bool,
                      engine: str = "auto") -> MigrateRequest:  # fmt: skip
        found = configured(self.workspaces, name, apply)
        return MigrateRequest(found.path, recipe, found.test_cmd, modules, apply, engine)

    def repair(self, request: MigrateRequest) -> FixLoopRepair | None:
        """The fix loop for ``request``'s engine; None for "none", or with no engine loaded under "auto"."""
        if request.engine not in (*ENGINES, NO_MODEL):
            raise InvalidRequestError(f"Unknown engine {request.engine!r}: use one of "
                                      f"{', '.join((*ENGINES, NO_MODEL))}.", param="engine")  # fmt: skip
        if request.engine == NO_MODEL or self.fix is None or not RECIPES[request.recipe].repairable:
            return None
        if request.engine == "auto" and not self.fix.router.engines.routes:
            return None
        samplers, cheap = self.fix.samplers(request.engine)
        brief = RECIPES[request.recipe].brief
        options = FixOptions(rounds=request.rounds, candidates=request.candidates, mutants=request.mutants, brief=brief)
        return FixLoopRepair(samplers, cheap, options)

    def start(self, request: MigrateRequest) -> AsyncIterator[Event]:
        """Check the request now (the recipe, the engine, one run at a time), then the run's events:
        ``plan``, ``baseline``, ``module``…, ``repair``…, ``suite``, ``finished`` and, when it went into the
        tree, ``applied``."""
        if request.recipe not in RECIPES:
            raise InvalidRequestError(f"Unknown recipe {request.recipe!r}: use one of {', '.join(RECIPES)}.",
                                      param="recipe")  # fmt: skip
        repair = self.repair(request)
        if self._lock.locked():
            raise OverloadedError("A migration is already running on this server; retry when it ends.", retry_after=30)
        return self._run(request, repair)

    async def _run(self, request: MigrateRequest, repair: FixLoopRepair | None) -> AsyncIterator[Event]:
        if self._lock.locked():  # another run started between start() and the first event
            raise OverloadedError("A migration is already running on this server; retry when it ends.", retry_after=30)
        async with self._lock:
            workspace = await asyncio.to_thread(Workspace.open, request.path, self.cache_dir, "migrate")
            try:
                command = detect(workspace.root, request.test_cmd) if request.test_cmd else None
                journal = self.cache_dir / "migrate" / f"{_key(workspace.source, request.recipe)}.jsonl"
                options = MigrateOptions(request.modules, journal=journal)
                migration = Migration(workspace, RECIPES[request.recipe], command, options, repair)
                status = "failed"
                async for event in migration.events():
                    if event.kind == "finished":
                        status = event.data["status"]
                    yield event
                if request.apply and status != "failed":
                    changed = await asyncio.to_thread(workspace.apply)
                    yield Event("applied", {"changed": changed, "root": str(workspace.top)})
            finally:
                workspace.close()


def _key(source: Path, recipe: str) -> str:
    """One journal per project, recipe and recipe code: a run resumes only what the same rewrites verified
    (a journal left by another codespark, whose recipes rewrite differently, is not taken)."""
    digest = hashlib.sha256(f"{source.resolve()}\0{recipe}\0{__version__}".encode())
    for path in sorted(Path(migrate_package.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
