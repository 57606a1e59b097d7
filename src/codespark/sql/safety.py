"""The read-only allow-list, on the parsed statement (sqlglot), not on its text.

Allowed: exactly one ``SELECT`` (or ``WITH … SELECT``, or a set operation of
selects).  Refused, wherever they hide (a CTE, a subquery, after a comment or
a second ``;``): DML, DDL, ``PRAGMA``, ``ATTACH``, ``COPY``, ``SET``,
transaction control, anything sqlglot cannot classify (a raw ``Command``), and
functions that read or write files or the server (``read_csv``,
``pg_read_file``, ``load_extension``, …).  The connection is read-only too;
this is the layer that explains *why* in a message a person can act on.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from codespark.errors import InvalidRequestError

# Functions that touch files, the network, extensions or server state, by lower-case name.
FORBIDDEN_FUNCTIONS = frozenset(
    {
        # DuckDB
        "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
        "read_json_objects", "read_ndjson", "read_text", "read_blob", "glob", "sniff_csv", "read_xlsx",
        "st_read", "install", "load", "iceberg_scan", "delta_scan", "sqlite_scan", "postgres_scan",
        "mysql_scan", "query_table", "query",
        # SQLite
        "load_extension", "readfile", "writefile", "fts3_tokenizer", "edit",
        # PostgreSQL
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
        "lo_get", "lo_put", "dblink", "dblink_exec", "pg_sleep", "pg_terminate_backend",
        "pg_cancel_backend", "pg_reload_conf", "set_config", "pg_logdir_ls", "copy",
    }
)  # fmt: skip

_WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Command,
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Copy,
    exp.Set,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Use,
    exp.Grant,
    exp.LoadData,
    exp.Into,
)


class UnsafeSQLError(InvalidRequestError):
    """The statement is not a single read-only query."""

    code = "unsafe_sql"


def parse(sql: str, dialect: str) -> list[exp.Expr]:
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns when it falls back to a raw Command; we refuse those anyway
    try:
        return [e for e in sqlglot.parse(sql, read=dialect) if e is not None]
    except ParseError as exc:
        raise InvalidRequestError(f"The SQL does not parse as {dialect}: {_parse_message(exc)}", param="sql") from exc
    finally:
        quiet.setLevel(level)


def _parse_message(exc: ParseError) -> str:
    errors = exc.errors
    if errors:
        first = errors[0]
        return f"{first.get('description')} (line {first.get('line')}, column {first.get('col')})"
    return str(exc).splitlines()[0]


def check_read_only(sql: str, dialect: str) -> exp.Expr:
    """The one parsed read-only query in ``sql``, or ``UnsafeSQLError`` saying what was refused."""
    statements = parse(sql, dialect)
    if not statements:
        raise UnsafeSQLError("There is no SQL statement here.", param="sql")
    if len(statements) > 1:
        raise UnsafeSQLError(
            f"Only one statement may run at a time; this has {len(statements)}. Remove everything after the first ';'.",
            param="sql",
        )
    tree = statements[0]
    refusal = read_only_refusal(tree, sql)
    if refusal:
        raise UnsafeSQLError(refusal + " Only SELECT / WITH queries run here (use --allow-write to change data).")
    return tree


def read_only_refusal(tree: exp.Expr, sql: str) -> str | None:
    """Why ``tree`` (parsed from ``sql``) is not a read-only query, or None if it is."""
    if not isinstance(tree, exp.Query):
        words = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).split()
        return f"{words[0].upper() if words else _kind(tree)} statements are refused."
    for node in tree.walk():
        if isinstance(node, _WRITES):
            return f"{_kind(node)} is refused, even inside a query."
        if isinstance(node, exp.Func):
            name = (node.sql_name() if not isinstance(node, exp.Anonymous) else node.name).lower()
            if name in FORBIDDEN_FUNCTIONS:
                return f"The function {name}() reads or changes files or server state, and is refused."
        if isinstance(node, exp.Table) and _FILE_LIKE.search(node.name or ""):
            return f"Reading {node.name!r} as a table (a file or URL) is refused."
    return None


# DuckDB reads ``FROM 'data.csv'`` as a file; sqlglot sees a quoted table name.
_FILE_LIKE = re.compile(r"[/\\]|://|\.(?:csv|tsv|parquet|json|jsonl|ndjson|txt|db|sqlite3?|duckdb|gz|zst|xlsx?)$", re.I)


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    name = type(node).__name__
    return {"TruncateTable": "TRUNCATE", "Into": "SELECT INTO"}.get(name, name.upper())
