"""A database to ask questions of: SQLite, DuckDB or PostgreSQL, by SQLAlchemy URL.

The connection is the wall that holds whatever SQL reaches it (the parser's
checks in ``sql/safety.py`` explain refusals; this layer enforces them):

- **SQLite:** opened ``mode=ro`` with ``PRAGMA query_only``, and an authorizer
  (``sqlite3.Connection.set_authorizer``) that allows reads of the database's
  own tables, the schema pragmas introspection needs, and the functions on the
  allow-list, and denies everything else (``ATTACH``, other pragmas, unknown
  functions; writes too unless ``writable``).
- **DuckDB:** ``read_only`` unless ``writable``, always with
  ``enable_external_access = false`` and ``lock_configuration = true``: no
  file, URL, extension or other database can be read or written, whatever the
  SQL, and no ``SET`` can undo it.
- **PostgreSQL:** ``default_transaction_read_only`` and ``statement_timeout``
  for the session.  File access there is a matter of the role: at the first
  connection the role is checked, and a superuser or a member of
  ``pg_read_server_files``/``pg_write_server_files``/``pg_execute_server_program``
  gets a warning (``Database.warnings``, and the log).

Every statement runs under a timeout and a row limit.  Driver errors become
codespark errors here, by the driver's exception type or error code, never by
message text.  The URL's password never appears in what this module shows or
logs (``Database.display``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from codespark.errors import (
    CodesparkError,
    DatabaseError,
    DatabaseRefusedError,
    DatabaseUnavailableError,
    QueryTimeoutError,
)
from codespark.sql.safety import ALLOWED_FUNCTIONS

DIALECTS = {"sqlite": "sqlite", "duckdb": "duckdb", "postgresql": "postgres"}  # SQLAlchemy name -> sqlglot name
DUCKDB_LOCKDOWN = {"enable_external_access": False, "lock_configuration": True}
log = logging.getLogger("codespark.sql")


@dataclass(frozen=True)
class Rows:
    """A query's result: column names, at most ``limit`` rows, and whether there were more."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


class Database:
    """One database URL, opened read-only unless ``writable``, and never with access beyond itself."""

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
        self.warnings: list[str] | None = None  # PostgreSQL role checks, filled at the first connection
        self._engine = self._create_engine()

    def _create_engine(self) -> sa.Engine:
        url = self.url
        args: dict[str, Any] = {}
        if self.backend in ("sqlite", "duckdb"):
            path = url.database or ""
            if path and path != ":memory:" and not Path(path).is_file():
                kind = "SQLite" if self.backend == "sqlite" else "DuckDB"
                raise DatabaseError(f"No {kind} database at {path}. Check the path in the URL.")
            if self.backend == "sqlite" and not self.writable and path and path != ":memory:":
                quoted = urllib.parse.quote(str(Path(path).resolve()))  # '?' or '#' in a name is not a URI option
                url = url.set(database=f"file:{quoted}?mode=ro", query={"uri": "true"})
            if self.backend == "duckdb":
                args["read_only"] = not self.writable
                args["config"] = dict(DUCKDB_LOCKDOWN)
        else:
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            options = f"-c statement_timeout={int(self.timeout_s * 1000)}"
            if not self.writable:
                options += " -c default_transaction_read_only=on"
            args["options"] = options
            args["connect_timeout"] = 10
        try:
            engine = sa.create_engine(url, connect_args=args, poolclass=sa.pool.NullPool)
        except (NoSuchModuleError, ArgumentError) as exc:
            raise DatabaseError(f"Cannot use {self.display}: {exc}") from exc
        if self.backend == "sqlite":
            sa.event.listen(engine, "connect", self._lock_sqlite)
        return engine

    def _lock_sqlite(self, raw: sqlite3.Connection, _record: object) -> None:
        if not self.writable:
            raw.execute("PRAGMA query_only = 1")
        raw.set_authorizer(sqlite_authorizer(self.writable))

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; any database failure that escapes becomes a codespark error (4xx or 503, not 500)."""
        try:
            conn = self._engine.connect()
        except DBAPIError as exc:
            raise self._connect_error(exc) from exc
        except SQLAlchemyError as exc:
            raise DatabaseError(f"Cannot use {self.display}: {_first_line(exc)}") from exc
        with conn:
            if self.backend == "postgresql" and self.warnings is None:
                self.warnings = _postgres_role_warnings(conn, self.display)
            try:
                yield conn
            except DBAPIError as exc:
                raise self._error(exc.orig) from exc
            except SQLAlchemyError as exc:
                raise DatabaseError(f"Cannot use {self.display}: {_first_line(exc)}") from exc

    def run(self, sql: str, max_rows: int) -> Rows:
        """Execute ``sql`` and fetch at most ``max_rows`` rows, under the timeout."""
        with self.connect() as conn, self._deadline(conn):
            columns, fetched = self._execute(conn, sql, max_rows + 1)
        return Rows(columns or [], [tuple(r) for r in fetched[:max_rows]], len(fetched) > max_rows)

    def explain(self, sql: str) -> str:
        """The database's plan for ``sql``: proof that it compiles against the real schema."""
        prefix = "EXPLAIN QUERY PLAN " if self.backend == "sqlite" else "EXPLAIN "
        with self.connect() as conn, self._deadline(conn):
            _, rows = self._execute(conn, prefix + sql, None)
        return "\n".join(" | ".join(str(v) for v in row) for row in rows)

    def _execute(self, conn: Connection, sql: str, limit: int | None) -> tuple[list[str] | None, list[Any]]:
        """Run one statement: its column names (None if it returns no rows) and up to ``limit`` rows."""
        try:
            if self.backend == "postgresql":
                return self._execute_postgres(conn, sql, limit)
            result = conn.exec_driver_sql(sql)
            if not result.returns_rows:
                columns, rows = None, []
            else:
                rows = list(result.fetchall() if limit is None else result.fetchmany(limit))
                columns = list(result.keys())
            if self.writable:
                conn.commit()
            return columns, rows
        except DBAPIError as exc:
            raise self._error(exc.orig) from exc
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def _execute_postgres(self, conn: Connection, sql: str, limit: int | None) -> tuple[list[str] | None, list[Any]]:
        # On psycopg's own cursor, as a prepared statement with no parameters: a prepared statement
        # holds exactly one command (so no "; COMMIT; …" can leave the read-only transaction), and
        # with no parameters a '%' in the SQL is just a character.
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute(sql, prepare=True)
            if cursor.description is None:
                columns, rows = None, []
            else:
                columns = [d.name for d in cursor.description]
                rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
        if self.writable:
            raw.commit()
        return columns, rows

    def _connect_error(self, exc: DBAPIError) -> CodesparkError:
        if isinstance(exc.orig, psycopg.OperationalError):
            return DatabaseUnavailableError(
                f"Cannot reach the PostgreSQL server of {self.display}: {_first_line(exc.orig)}. "
                "Check that it is running and that the host, port and credentials in the URL are right."
            )
        return DatabaseError(f"Cannot open {self.display}: {_first_line(exc.orig)}")

    def _error(self, orig: BaseException | None) -> CodesparkError:
        """The codespark error for a statement the driver refused, by exception type or error code."""
        text = _first_line(orig)
        timed_out = QueryTimeoutError(f"The query ran longer than {self.timeout_s:g} s and was stopped.")
        if isinstance(orig, sqlite3.Error):
            code = getattr(orig, "sqlite_errorcode", None)
            if code == sqlite3.SQLITE_INTERRUPT:
                return timed_out
            if code == sqlite3.SQLITE_AUTH:
                mode = "writable" if self.writable else "read-only"
                return DatabaseRefusedError(
                    f"The {mode} SQLite connection refused this statement ({text}): it allows reads of this "
                    "database's own tables and the allowed functions only.",
                    param="sql",
                )
        if isinstance(orig, duckdb.InterruptException):
            return timed_out
        if isinstance(orig, duckdb.PermissionException):
            return DatabaseRefusedError(f"The database connection refused this statement ({text}).", param="sql")
        if isinstance(orig, psycopg.errors.QueryCanceled):
            return timed_out
        if isinstance(orig, psycopg.errors.ReadOnlySqlTransaction | psycopg.errors.InsufficientPrivilege):
            return DatabaseRefusedError(f"The database refused this statement ({text}).", param="sql")
        if isinstance(orig, psycopg.OperationalError) and getattr(orig, "sqlstate", None) is None:
            return DatabaseUnavailableError(f"Lost the connection to {self.display}: {text}. Check the server.")
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


# SQLite authorizer actions (sqlite3.SQLITE_*) allowed on a read-only connection, and added for a writable one.
_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
_WRITE_ACTIONS = frozenset(
    getattr(sqlite3, name)
    for name in (
        "SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_TRANSACTION", "SQLITE_SAVEPOINT",
        "SQLITE_CREATE_TABLE", "SQLITE_CREATE_INDEX", "SQLITE_CREATE_VIEW", "SQLITE_CREATE_TRIGGER",
        "SQLITE_DROP_TABLE", "SQLITE_DROP_INDEX", "SQLITE_DROP_VIEW", "SQLITE_DROP_TRIGGER",
        "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_VIEW",
        "SQLITE_DROP_TEMP_TABLE", "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_VIEW",
        "SQLITE_ALTER_TABLE", "SQLITE_REINDEX", "SQLITE_ANALYZE",
    )
)  # fmt: skip
# Pragmas that only describe the schema (what SQLAlchemy's inspector reads), never ones that set something.
_SCHEMA_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info", "index_xinfo"}
)
_OWN_DATABASES = frozenset({None, "main", "temp"})


def sqlite_authorizer(writable: bool) -> Any:
    """An authorizer for ``sqlite3.Connection.set_authorizer``: this database, allowed functions, nothing else."""
    actions = _READ_ACTIONS | (_WRITE_ACTIONS if writable else frozenset())
    functions = ALLOWED_FUNCTIONS["sqlite"]

    def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, _source: str | None) -> int:
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in functions else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA:
            return sqlite3.SQLITE_OK if (arg1 or "").lower() in _SCHEMA_PRAGMAS else sqlite3.SQLITE_DENY
        if action in actions and db in _OWN_DATABASES:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize


_DANGEROUS_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")


def _postgres_role_warnings(conn: Connection, display: str) -> list[str]:
    """Warnings about a role that could read or write server files, or run programs (logged once)."""
    row = conn.exec_driver_sql(
        "SELECT r.rolsuper, "
        + ", ".join(f"pg_has_role(current_user, '{role}', 'MEMBER')" for role in _DANGEROUS_ROLES)
        + " FROM pg_roles r WHERE r.rolname = current_user"
    ).first()
    conn.rollback()
    if row is None:
        return []
    powers = (["superuser"] if row[0] else []) + [
        role for role, member in zip(_DANGEROUS_ROLES, row[1:], strict=True) if member
    ]
    warnings = []
    if powers:
        warnings.append(
            f"{display} connects as a role that can reach server files or programs ({', '.join(powers)}): "
            "use a role with SELECT rights only for the SQL assistant."
        )
    for warning in warnings:
        log.warning("%s", warning)
    return warnings
