"""Databases and their schemas, opened once and cached per URL: what the CLI and the server share."""

from __future__ import annotations

import threading

from codespark.sql.database import Database
from codespark.sql.schema import Schema, introspect, render


class SqlService:
    """Open databases by URL, with their introspected schema cached until ``refresh``."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._cache: dict[tuple[str, bool], tuple[Database, Schema]] = {}
        self._lock = threading.Lock()

    def open(self, url: str, *, refresh: bool = False, writable: bool = False) -> tuple[Database, Schema]:
        key = (url, writable)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and not refresh:
                return cached
            if cached is not None:
                cached[0].dispose()
            db = Database(url, writable=writable, timeout_s=self.timeout_s)
            opened = (db, introspect(db))
            self._cache[key] = opened
            return opened

    def schema_text(self, url: str) -> str:
        """The schema as DDL, for FIM context in .sql files."""
        _, schema = self.open(url)
        return render(schema)

    def close(self) -> None:
        with self._lock:
            for db, _ in self._cache.values():
                db.dispose()
            self._cache.clear()
