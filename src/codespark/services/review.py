"""The review service: ``codespark review`` and ``POST /v1/review`` both call it.

A repository review opens two detached worktrees (the base commit, and the working tree as it is) so the
differential check can run old and new code side by side; the user's tree, index and branches are never
touched.  A diff sent over HTTP is reviewed from the files sent with it (no code runs).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codespark.agent.workspace import Workspace
from codespark.engine.backend import SamplingParams
from codespark.engine.chat import Message
from codespark.engine.engine import Finished
from codespark.engine.tools import ResponseFormat
from codespark.errors import InvalidRequestError
from codespark.review import diff as diffs
from codespark.review.log import FindingsLog
from codespark.review.run import Progress, Review, ReviewOptions, ReviewResult, Sources, file_sources
from codespark.services.chat import ChatCall, ChatService

MAX_DIFF_BYTES = 2 * 2**20


class ChatAsker:
    """The review's model: a local engine by name (codex by default), or the upstream through the guard."""

    def __init__(self, chat: ChatService, model: str | None) -> None:
        self.chat = chat
        self.model = model

    async def ask(self, messages: Sequence[Message], max_tokens: int, schema: dict[str, Any] | None = None) -> str:
        fmt = ResponseFormat(schema) if schema is not None else None
        call = ChatCall(messages, SamplingParams(max_tokens=max_tokens), max_tokens=max_tokens, model=self.model,
                        response_format=fmt, stops=() if schema else ("\n```\n",))  # fmt: skip
        _, events = await self.chat.chat(call)
        text = ""
        async for event in events:
            if isinstance(event, Finished):
                text = event.text
        return text


@dataclass(frozen=True)
class RepoReview:
    path: Path
    base: str | None = None
    options: ReviewOptions = field(default_factory=ReviewOptions)
    log: bool = True


class ReviewService:
    """``model`` reviews (None: the upstream, through the guard); ``calls_model`` writes the differential
    check's calls (spark, when it is loaded: inputs need no depth, and it writes them 3x faster)."""

    def __init__(self, chat: ChatService | None, cache_dir: Path, model: str | None = "codex",
                 calls_model: str | None = None) -> None:  # fmt: skip
        self.chat = chat
        self.cache_dir = cache_dir
        self.model = model
        self.calls_model = calls_model

    def asker(self) -> ChatAsker | None:
        return ChatAsker(self.chat, self.model) if self.chat is not None else None

    def caller(self) -> ChatAsker | None:
        if self.chat is None or self.calls_model is None:
            return None
        return ChatAsker(self.chat, self.calls_model)

    async def review_repo(self, request: RepoReview, progress: Progress | None = None) -> ReviewResult:
        root = diffs.repo_root(request.path.resolve())
        base = diffs.resolve(root, request.base) if request.base else diffs.default_base(root)
        changes = diffs.parse(diffs.working_diff(root, base))
        asker = self.asker()
        review = Review(asker, request.options, self.caller())
        with self._trees(root, base, request.options.verify and asker is not None) as (head, base_tree):

            def head_text(path: str) -> str | None:
                file = root / path
                return file.read_text(encoding="utf-8", errors="replace") if file.is_file() else None

            sources = Sources(head_text, lambda p: diffs.base_text(root, base, p), head or root, base_tree)
            result = await review.run(base, changes, sources, progress)
        if request.log:
            FindingsLog.in_repo(root).record(result.findings, result.shown, base)
        return result

    @contextlib.contextmanager
    def _trees(self, root: Path, base: str, run: bool) -> Iterator[tuple[Path | None, Path | None]]:
        """Worktrees of the new tree and of the base (None, None when no code is to run)."""
        if not run:
            yield None, None
            return
        head = Workspace.open(root, self.cache_dir, kind="review", branch=False)
        try:
            old = Workspace.open(root, self.cache_dir, kind="review-base", at=base, branch=False)
            try:
                yield head.copy_top, old.copy_top
            finally:
                old.close()
        finally:
            head.close()

    async def review_diff(
        self, diff_text: str, files: Mapping[str, str], base_files: Mapping[str, str], options: ReviewOptions
    ) -> ReviewResult:
        """A diff sent by an editor: the files sent with it are the new versions (none run)."""
        if len(diff_text.encode()) > MAX_DIFF_BYTES:
            raise InvalidRequestError(f"The diff is over {MAX_DIFF_BYTES // 2**20} MiB: review it by file.",
                                      param="diff")  # fmt: skip
        changes = diffs.parse(diff_text)
        if not changes and diff_text.strip():
            raise InvalidRequestError("No file changes found in the diff: send a unified diff (git diff).",
                                      param="diff")  # fmt: skip
        for path in [*files, *base_files, *(c.path for c in changes), *(c.old_path for c in changes if c.old_path)]:
            if not _relative(path):
                raise InvalidRequestError(f"File paths are relative to the repository: {path!r}.", param="files")
        review = Review(self.asker(), ReviewOptions(**{**options.__dict__, "verify": False}))
        with tempfile.TemporaryDirectory(prefix="codespark-review-") as tmp:
            root = Path(tmp)
            shown = {c.path: files.get(c.path) or c.sketch() for c in changes if not c.deleted}
            try:
                for path, text in {**files, **shown}.items():
                    target = root / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
            except (OSError, ValueError) as exc:  # a name the file system refuses (too long, a folder's name)
                raise InvalidRequestError(f"A file could not be written for review: {exc}.", param="files") from exc
            sources = file_sources({**files, **shown}, base_files)
            # The editor's project is not installed here: the import check needs the whole project.
            sources = Sources(sources.head, sources.base, root, None, project=False)
            return await review.run("(diff)", changes, sources)


def _relative(path: str) -> bool:
    """A file path inside the repository: not empty, not absolute, no ``..``, not a folder, no NUL."""
    parts = Path(path).parts
    return (bool(path) and "\0" not in path and not path.endswith("/") and not Path(path).is_absolute()
            and ".." not in parts and bool(parts) and parts != (".",))  # fmt: skip
