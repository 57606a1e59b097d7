"""A repo's context engine: its index, retrieval, and the merge with what clients send."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from codespark.context.index import Progress, RepoIndex, Report
from codespark.context.repomap import RepoMap
from codespark.context.retrieve import Retriever, Snippet, pack, relative_to
from codespark.errors import IndexingError

MODES = ("none", "similar", "full")


class RepoContext:
    """Index and retrieval for one repo root.  ``ready`` is set once the first refresh finished."""

    def __init__(self, root: Path, cache_dir: Path) -> None:
        self.root = root.resolve()
        self.index = RepoIndex.open(self.root, cache_dir)
        self.retriever = Retriever(self.index)
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._map: RepoMap | None = None

    def refresh(self, progress: Progress | None = None) -> Report:
        """Update the index.  A refresh is one transaction: if it fails (disk full, I/O error) it is rolled
        back, the last complete index keeps serving, and ``IndexingError`` says what to do."""
        with self._lock:
            try:
                report = self.index.refresh(progress)
            except (sqlite3.Error, OSError) as exc:
                if self.index.file_count():
                    self.ready.set()  # the previous index is intact: keep using it
                raise IndexingError(
                    f"Could not update the repo index {self.index.db_path} ({exc}). The previous index is kept; "
                    "free some disk space (or set cache_dir elsewhere) and run `codespark index` again."
                ) from exc
            self.retriever = Retriever(self.index)  # chunks re-read lazily, from the refreshed files
            self._map = None
        self.ready.set()
        return report

    def repo_map(self, budget_tokens: int, mentioned: str = "") -> str:
        """The repo map, focused on the files ``mentioned`` names; its graph is built once per refresh.

        Blocking (SQL and numpy): call it off the event loop.
        """
        with self._lock:
            if self._map is None:
                self._map = RepoMap(self.index)
            current = self._map
        focus = [p for p in current.paths if p in mentioned or p.rsplit("/", 1)[-1] in mentioned]
        return current.render(budget_tokens, focus)

    def relative(self, filename: str) -> str:
        return relative_to(str(self.root), filename)

    def for_completion(
        self,
        filename: str,
        prefix: str,
        suffix: str,
        budget_tokens: int,
        client: list[Snippet] | None = None,
        mode: str = "full",
    ) -> list[Snippet]:
        """The pieces for a completion in ``filename``: the client's, and ours per ``mode``, packed."""
        path = self.relative(filename)
        pieces = list(client or [])
        if mode == "full":
            # Definitions get at most half the budget: examples of use (similar code) carry the local
            # conventions that definitions alone do not, and measurably help the small model more.
            pieces += pack(self.retriever.definitions(path, prefix, suffix), budget_tokens // 2)
        if mode in ("full", "similar"):
            pieces += self.retriever.similar(path, prefix)
        return pack(pieces, budget_tokens)
