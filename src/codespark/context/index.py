"""The repo index: every source file's definitions, imports and references, in SQLite.

Files come from ``git ls-files`` in a git work tree (tracked plus untracked,
less ignored), or from a walk that applies the root ``.gitignore``.  Binary
files and files over ``MAX_BYTES`` are skipped.  A refresh re-reads only
files whose size or mtime changed, and re-parses only those whose content
hash changed, so re-indexing an unchanged repo costs a ``stat`` per file.
Files that cannot be decoded are skipped with a count; files that parse with
errors are indexed as far as they parse, and counted.

The database lives in the cache dir (one per repo root) and works embedded,
with no server.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pathspec

from codespark.context.parse import Import, Parsed, language_of, parse

MAX_BYTES = 1_000_000
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, hash TEXT, language TEXT, module TEXT,
    has_errors INTEGER
);
CREATE TABLE IF NOT EXISTS symbols (
    path TEXT, name TEXT, kind TEXT, parent TEXT, start_line INTEGER, end_line INTEGER, signature TEXT, doc TEXT
);
CREATE TABLE IF NOT EXISTS imports (path TEXT, module TEXT, name TEXT, alias TEXT, level INTEGER);
CREATE TABLE IF NOT EXISTS refs (path TEXT, name TEXT, count INTEGER);
CREATE INDEX IF NOT EXISTS symbols_name ON symbols (name);
CREATE INDEX IF NOT EXISTS symbols_path ON symbols (path);
CREATE INDEX IF NOT EXISTS imports_path ON imports (path);
CREATE INDEX IF NOT EXISTS refs_path ON refs (path);
CREATE INDEX IF NOT EXISTS files_module ON files (module);
"""

Progress = Callable[[int, int], None]


@dataclass
class Report:
    """What one refresh did."""

    files: int = 0
    parsed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0  # binary, too large, or not decodable
    with_errors: int = 0
    seconds: float = 0.0


def index_path(cache_dir: Path, root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / "index" / f"{root.resolve().name}-{key}.sqlite"


def source_files(root: Path) -> list[str]:
    """Repo-relative paths of the source files to index, .gitignore applied."""
    names: list[str] | None = None
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                capture_output=True,
                check=True,
                timeout=60,
            ).stdout
            names = [n for n in out.decode("utf-8", "replace").split("\0") if n]
        except (OSError, subprocess.SubprocessError):
            names = None
    if names is None:
        names = list(_walk(root))
    return sorted(n for n in names if language_of(n) is not None)


def _walk(root: Path) -> Iterator[str]:
    ignore = root / ".gitignore"
    lines = ignore.read_text(errors="replace").splitlines() if ignore.is_file() else []
    spec = pathspec.PathSpec.from_lines("gitignore", [*lines, ".git/"])
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        dirs[:] = [d for d in dirs if not spec.match_file(os.path.normpath(os.path.join(rel_dir, d)) + "/")]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not spec.match_file(rel):
                yield rel


def module_name(path: str) -> str:
    """``pkg/sub/mod.py`` -> ``pkg.sub.mod``; ``pkg/__init__.py`` -> ``pkg``; other languages: the path."""
    if not path.endswith(".py"):
        return path
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


class SymbolRow(NamedTuple):
    """One definition in a file, as the index stores it."""

    name: str
    kind: str
    parent: str | None
    start_line: int
    end_line: int
    signature: str
    doc: str


class RepoIndex:
    """One repo's index: refresh it, and look things up in it."""

    def __init__(self, root: Path, db_path: Path) -> None:
        self.root = root.resolve()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path
        try:
            self.conn = self._connect()
        except sqlite3.DatabaseError:  # not a database any more (a crash mid-copy, a bad disk): it is a cache
            db_path.unlink(missing_ok=True)
            self.conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, check_same_thread=False)
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            conn.executescript(
                "DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS symbols; DROP TABLE IF EXISTS imports; "
                "DROP TABLE IF EXISTS refs;"
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.executescript(_SCHEMA)

    @classmethod
    def open(cls, root: Path, cache_dir: Path) -> RepoIndex:
        return cls(root, index_path(cache_dir, root))

    def close(self) -> None:
        self.conn.close()

    def file_count(self) -> int:
        try:
            count: int = self.conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        except sqlite3.Error:
            return 0
        return count

    def refresh(self, progress: Progress | None = None) -> Report:
        """Bring the index up to date with the files on disk."""
        started = time.perf_counter()
        report = Report()
        names = source_files(self.root)
        known = {row[0]: row[1:] for row in self.conn.execute("SELECT path, size, mtime_ns, hash FROM files")}
        with self.conn:
            for i, name in enumerate(names):
                if progress is not None:
                    progress(i + 1, len(names))
                self._refresh_file(name, known.get(name), report)
            gone = set(known) - set(names)
            for name in gone:
                self._delete(name)
            report.removed = len(gone)
        report.files = self.conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        report.seconds = time.perf_counter() - started
        return report

    def _refresh_file(self, name: str, known: tuple[int, int, str] | None, report: Report) -> None:
        path = self.root / name
        try:
            stat = path.stat()
        except OSError:
            report.skipped += 1
            return
        if known is not None and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            report.unchanged += 1
            return
        if stat.st_size > MAX_BYTES:
            report.skipped += 1
            self._delete(name)
            return
        data = path.read_bytes()
        digest = hashlib.sha1(data).hexdigest()
        if known is not None and known[2] == digest:
            self.conn.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (stat.st_size, stat.st_mtime_ns, name)
            )
            report.unchanged += 1
            return
        if b"\0" in data[:8192]:
            report.skipped += 1
            self._delete(name)
            return
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            report.skipped += 1
            self._delete(name)
            return
        language = language_of(name)
        assert language is not None
        parsed = parse(data, language)
        self._delete(name)
        self._store(name, stat, digest, parsed)
        report.parsed += 1
        report.with_errors += parsed.has_errors

    def _store(self, name: str, stat: os.stat_result, digest: str, parsed: Parsed) -> None:
        self.conn.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, stat.st_size, stat.st_mtime_ns, digest, parsed.language, module_name(name), parsed.has_errors),
        )
        self.conn.executemany(
            "INSERT INTO symbols VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(name, s.name, s.kind, s.parent, s.start_line, s.end_line, s.signature, s.doc) for s in parsed.symbols],
        )
        self.conn.executemany(
            "INSERT INTO imports VALUES (?, ?, ?, ?, ?)",
            [(name, i.module, i.name, i.alias, i.level) for i in parsed.imports],
        )
        self.conn.executemany(
            "INSERT INTO refs VALUES (?, ?, ?)", [(name, ref, n) for ref, n in parsed.references.items()]
        )

    def _delete(self, name: str) -> None:
        for table in ("files", "symbols", "imports", "refs"):
            self.conn.execute(f"DELETE FROM {table} WHERE path = ?", (name,))

    # ----------------------------------------------------------------------------- look-ups

    def files_for_module(self, module: str) -> list[str]:
        """Files whose module is ``module``, or ends with it (``src/`` layouts, vendored copies)."""
        rows = self.conn.execute(
            "SELECT path FROM files WHERE module = ? OR module LIKE ? ORDER BY length(path)",
            (module, "%." + module),
        ).fetchall()
        return [r[0] for r in rows]

    def symbols_in(self, path: str) -> list[SymbolRow]:
        rows = self.conn.execute(
            "SELECT name, kind, parent, start_line, end_line, signature, doc FROM symbols WHERE path = ? "
            "ORDER BY start_line",
            (path,),
        ).fetchall()
        return [SymbolRow(*row) for row in rows]

    def imports_of(self, path: str) -> list[Import]:
        rows = self.conn.execute("SELECT module, name, alias, level FROM imports WHERE path = ?", (path,)).fetchall()
        return [Import(module, name, alias, level) for module, name, alias, level in rows]

    def stats(self) -> dict[str, int]:
        return {
            table: self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("files", "symbols", "imports", "refs")
        }
