"""The migrate service: ``codespark migrate`` and ``POST /v1/migrate`` both call it.

It resolves the recipe and the workspace, opens the worktree, runs the migration and, when asked and
something was verified, applies it to the user's tree (all or none).  One migration runs at a time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from codespark.agent.testrun import detect
from codespark.agent.workspace import Workspace
from codespark.config import WorkspaceSettings
from codespark.errors import InvalidRequestError, OverloadedError
from codespark.migrate.registry import RECIPES
from codespark.migrate.run import Event, MigrateOptions, Migration
from codespark.services.workspaces import configured


@dataclass(frozen=True)
class MigrateRequest:
    path: Path
    recipe: str
    test_cmd: str | None = None
    modules: str | None = None
    apply: bool = False


class MigrateService:
    def __init__(self, cache_dir: Path, workspaces: Sequence[WorkspaceSettings] = ()) -> None:
        self.cache_dir = cache_dir
        self.workspaces = {w.name: w for w in workspaces}
        self._lock = threading.Lock()

    def for_workspace(self, name: str, recipe: str, modules: str | None, apply: bool) -> MigrateRequest:
        found = configured(self.workspaces, name, apply)
        return MigrateRequest(found.path, recipe, found.test_cmd, modules, apply)

    def start(self, request: MigrateRequest) -> Iterator[Event]:
        """Check the request now (the recipe, one run at a time), then the run's events: ``plan``,
        ``baseline``, ``module``…, ``suite``, ``finished`` and, when it went into the tree, ``applied``."""
        if request.recipe not in RECIPES:
            raise InvalidRequestError(f"Unknown recipe {request.recipe!r}: use one of {', '.join(RECIPES)}.",
                                      param="recipe")  # fmt: skip
        if not self._lock.acquire(blocking=False):
            raise OverloadedError("A migration is already running on this server; retry when it ends.", retry_after=30)
        return self._run(request)

    def _run(self, request: MigrateRequest) -> Iterator[Event]:
        try:
            workspace = Workspace.open(request.path, self.cache_dir, kind="migrate")
            try:
                command = detect(workspace.root, request.test_cmd) if request.test_cmd else None
                journal = self.cache_dir / "migrate" / f"{_key(workspace.source, request.recipe)}.jsonl"
                options = MigrateOptions(request.modules, journal=journal)
                migration = Migration(workspace, RECIPES[request.recipe], command, options)
                status = "failed"
                for event in migration.events():
                    if event.kind == "finished":
                        status = event.data["status"]
                    yield event
                if request.apply and status != "failed":
                    changed = workspace.apply()
                    yield Event("applied", {"changed": changed, "root": str(workspace.top)})
            finally:
                workspace.close()
        finally:
            self._lock.release()


def _key(source: Path, recipe: str) -> str:
    """One journal per project and recipe."""
    return hashlib.sha256(f"{source.resolve()}\0{recipe}".encode()).hexdigest()[:16]
