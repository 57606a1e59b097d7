"""A database to ask questions of: SQLite, DuckDB or PostgreSQL, by SQLAlchemy URL.

Read-only by default, at the connection where the database supports it, and
every statement runs under a timeout and a row limit:

- SQLite: opened with ``mode=ro`` (a URI), and interrupted from a progress
  handler at the deadline;
- DuckDB: opened with ``read_only=True``, interrupted from a timer thread;
- PostgreSQL: ``default_transaction_read_only`` and ``statement_timeout`` set
  for the session.

The URL's password never appears in what this module shows or logs
(``Database.display``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from codespark.errors import InvalidRequestError

DIALECTS = {"sqlite": "sqlite", "duckdb": "duckdb", "postgresql": "postgres"}  # SQLAlchemy name -> sqlglot name


class DatabaseError(InvalidRequestError):
    """The database could not be opened, or refused a statement."""

    code = "database_error"


class QueryTimeoutError(DatabaseError):
    """A statement ran past the timeout and was interrupted."""

    code = "query_timeout"


@dataclass(frozen=True)
class Rows:
    """A query's result: column names, at most ``limit`` rows, and whether there were more."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


class Database:
    """One database URL, opened read-only unless ``writable``."""

    def __init__(self, url: str, *, writable: bool = False, timeout_s: float = 10.0) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise DatabaseError(
                f"Not a database URL: {exc}. Examples: sqlite:///shop.db, duckdb:///data.duckdb, "
                "postgresql+psycopg://user@localhost/db"
            ) from exc
        backend = parsed.get_backend_name()
        if backend not in DIALECTS:
            raise DatabaseError(f"Unsupported database {backend!r}: use sqlite, duckdb or postgresql.")
        self.url = parsed
        self.backend = backend
        self.dialect = DIALECTS[backend]
        self.writable = writable
        self.timeout_s = timeout_s
        self.display = parsed.render_as_string(hide_password=True)
        self._engine = self._create_engine()

    def _create_engine(self) -> sa.Engine:
        url = self.url
        args: dict[str, Any] = {}
        if self.backend == "sqlite":
            path = url.database or ""
            if path and path != ":memory:" and not Path(path).is_file():
                raise DatabaseError(f"No SQLite database at {path}. Check the path in the URL.")
            if not self.writable and path and path != ":memory:":
                url = url.set(database=f"file:{Path(path).resolve()}?mode=ro", query={"uri": "true"})
        elif self.backend == "duckdb":
            path = url.database or ""
            if path and path != ":memory:" and not Path(path).is_file():
                raise DatabaseError(f"No DuckDB database at {path}. Check the path in the URL.")
            args["read_only"] = not self.writable
        else:
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            options = f"-c statement_timeout={int(self.timeout_s * 1000)}"
            if not self.writable:
                options += " -c default_transaction_read_only=on"
            args["options"] = options
            args["connect_timeout"] = 10
        try:
            return sa.create_engine(url, connect_args=args, poolclass=sa.pool.NullPool)
        except (NoSuchModuleError, ArgumentError) as exc:
            raise DatabaseError(f"Cannot use {self.display}: {exc}") from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; any database failure that escapes becomes a ``DatabaseError`` (a 400, not a 500)."""
        try:
            with self._engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise DatabaseError(f"{self.dialect} error on {self.display}: {_first_line(exc.orig)}") from exc
        except SQLAlchemyError as exc:
            raise DatabaseError(f"Cannot use {self.display}: {_first_line(exc)}") from exc

    def run(self, sql: str, max_rows: int) -> Rows:
        """Execute ``sql`` and fetch at most ``max_rows`` rows, under the timeout."""
        with self.connect() as conn, self._deadline(conn):
            try:
                result = conn.exec_driver_sql(sql)
                if not result.returns_rows:
                    if self.writable:
                        conn.commit()
                    return Rows([], [], False)
                fetched = result.fetchmany(max_rows + 1)
                columns = list(result.keys())
                if self.writable:
                    conn.commit()
            except DBAPIError as exc:
                raise self._error(exc) from exc
        return Rows(columns, [tuple(r) for r in fetched[:max_rows]], len(fetched) > max_rows)

    def explain(self, sql: str) -> str:
        """The database's plan for ``sql``: proof that it compiles against the real schema."""
        prefix = "EXPLAIN QUERY PLAN " if self.backend == "sqlite" else "EXPLAIN "
        with self.connect() as conn, self._deadline(conn):
            try:
                rows = conn.exec_driver_sql(prefix + sql).fetchall()
            except DBAPIError as exc:
                raise self._error(exc) from exc
        return "\n".join(" | ".join(str(v) for v in row) for row in rows)

    def _error(self, exc: DBAPIError) -> DatabaseError:
        text = _first_line(exc.orig)
        if isinstance(exc.orig, Exception) and _is_timeout(text):
            return QueryTimeoutError(f"The query ran longer than {self.timeout_s:g} s and was stopped.")
        return DatabaseError(f"{self.dialect} error: {text}")

    @contextmanager
    def _deadline(self, conn: Connection) -> Iterator[None]:
        """Interrupt the statement at the timeout (PostgreSQL does it server-side)."""
        if self.backend == "postgresql":
            yield
            return
        raw = conn.connection.dbapi_connection
        deadline = time.monotonic() + self.timeout_s
        if self.backend == "sqlite":
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)  # type: ignore[union-attr]
            try:
                yield
            finally:
                raw.set_progress_handler(None, 0)  # type: ignore[union-attr]
            return
        timer = threading.Timer(self.timeout_s, raw.interrupt)  # type: ignore[union-attr]
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def dispose(self) -> None:
        self._engine.dispose()


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _is_timeout(text: str) -> bool:
    lowered = text.lower()
    return "interrupted" in lowered or "statement timeout" in lowered or "canceling statement" in lowered
