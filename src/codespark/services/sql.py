"""The SQL assistant's service: databases and their schemas, opened once and cached, and questions
asked of them.  What the CLI and the server share.

The server opens only the databases named in the settings (``[[databases]]``):
a request names one and never passes a URL, so a client cannot point the
assistant at an arbitrary file or host.  The CLI opens any URL, with the local
user's own rights, and gets the same connection-level protections.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import replace

from codespark.config import DatabaseSettings
from codespark.errors import DatabaseNotFoundError
from codespark.router import Router
from codespark.sql.assistant import Answer, Options, SqlAssistant
from codespark.sql.database import Database
from codespark.sql.schema import Schema, introspect, render


class SqlService:
    """Open databases by URL or configured name, with their introspected schema cached until ``refresh``."""

    def __init__(
        self,
        databases: Sequence[DatabaseSettings] = (),
        timeout_s: float = 10.0,
        router: Router | None = None,
        max_tokens_limit: int | None = None,
        monitor: bool = True,
    ) -> None:
        self.databases = {d.name: d for d in databases}
        self.monitor = monitor  # the schema monitor while SQL is generated (settings.mgd == "on")
        self.router = router
        self.max_tokens_limit = max_tokens_limit  # the server's bound on every generation, ``ask``'s too
        self.timeout_s = timeout_s
        self._cache: dict[tuple[str, bool], tuple[Database, Schema]] = {}
        self._lock = threading.Lock()

    def default_name(self) -> str | None:
        """The database requests get when they name none: the one marked default, or the only one."""
        default = next((d.name for d in self.databases.values() if d.default), None)
        if default is None and len(self.databases) == 1:
            default = next(iter(self.databases))
        return default

    def resolve(self, name: str | None) -> DatabaseSettings:
        """The configured database called ``name`` (the default one for None), or a 404 listing the names."""
        if name is None:
            name = self.default_name()
            if name is not None:
                return self.databases[name]
        elif name in self.databases:
            return self.databases[name]
        if not self.databases:
            raise DatabaseNotFoundError(
                "This server has no databases configured. Add a [[databases]] table (name, url) to the config "
                'file, or CODESPARK_DATABASES=\'[{"name": "shop", "url": "sqlite:///shop.db"}]\'.',
                param="db",
            )
        names = ", ".join(sorted(self.databases))
        if name is None:
            raise DatabaseNotFoundError(f"Name a database in `db`; configured: {names}.", param="db")
        hint = " Requests name a configured database; they cannot pass a URL." if "://" in name else ""
        raise DatabaseNotFoundError(f"No database is called {name!r}.{hint} Configured: {names}.", param="db")

    def named(self, name: str | None, *, refresh: bool = False) -> tuple[Database, Schema]:
        """The configured database ``name`` (read-only) and its schema."""
        return self.open(self.resolve(name).url, refresh=refresh)

    def open(self, url: str, *, refresh: bool = False, writable: bool = False) -> tuple[Database, Schema]:
        """Any database by URL: for the CLI and the settings' own ``sql_db``, never for a request's text."""
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

    async def ask(
        self, question: str, db: str | None, options: Options, model: str | None = None, refresh: bool = False
    ) -> tuple[Answer, str]:
        """Answer ``question`` about the configured database ``db`` (read-only); the answer and the engine used.

        The engine is the one ``model`` pins, else codex (local: a database's rows never go upstream).
        """
        if self.router is None:
            raise RuntimeError("SqlService.ask needs a router")
        if self.max_tokens_limit is not None and options.max_tokens > self.max_tokens_limit:
            options = replace(options, max_tokens=self.max_tokens_limit)
        options = replace(options, monitor=options.monitor and self.monitor)
        database, schema = await asyncio.to_thread(self.named, db, refresh=refresh)
        decision = self.router.pinned(model) or self.router.local_deep()
        answer = await SqlAssistant(decision.engine, database, schema).ask(question, options)
        return answer, decision.route

    def schema_text(self, url: str) -> str:
        """The schema as DDL, for FIM context in .sql files."""
        _, schema = self.open(url)
        return render(schema)

    def close(self) -> None:
        with self._lock:
            for db, _ in self._cache.values():
                db.dispose()
            self._cache.clear()
