"""Never-send files: content that must not leave the machine at all, redacted or not.

Globs use gitignore syntax (pathspec): the ``never_send`` setting, plus a
``.codesparkignore`` file in the workspace root, read when the server starts.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pathspec

IGNORE_FILE = ".codesparkignore"


class NeverSend:
    """Matches file names that never go upstream."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [p for p in patterns if p.strip() and not p.lstrip().startswith("#")]
        self._spec = pathspec.PathSpec.from_lines("gitignore", self.patterns)

    @classmethod
    def load(cls, patterns: list[str], workspace: Path) -> NeverSend:
        """``patterns`` plus the workspace's ``.codesparkignore`` lines."""
        extra: list[str] = []
        ignore = workspace / IGNORE_FILE
        if ignore.is_file():
            extra = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
        return cls([*patterns, *extra])

    def blocks(self, filename: str) -> bool:
        """Whether ``filename`` (relative or absolute, any separator) is never-send."""
        path = PurePosixPath(filename.replace("\\", "/").lstrip("/"))
        return self._spec.match_file(str(path))
