"""Validation before anything runs: parse, read-only check, identifiers, EXPLAIN.

Each check leaves a step in the trail the user sees.  The first failure's
message is written for the model as much as for the person: it names the
identifier that does not exist and the closest real ones, which is what a
repair round needs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import cast

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from codespark.errors import DatabaseError, SqlParseError, UnsafeSQLError
from codespark.sql.database import Database
from codespark.sql.safety import check_read_only, check_writable
from codespark.sql.schema import Schema


@dataclass(frozen=True)
class Step:
    check: str  # names (a deterministic fix) | parse | read_only | identifiers | explain | execute
    ok: bool
    detail: str = ""


@dataclass
class Validation:
    sql: str
    steps: list[Step] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # identifiers that do not exist (hallucinated)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def error(self) -> str | None:
        return next((s.detail for s in self.steps if not s.ok), None)


def validate(sql: str, schema: Schema, db: Database | None, *, allow_write: bool = False) -> Validation:
    """Run the checks in order, stopping at the first failure; ``db=None`` skips EXPLAIN."""
    result = Validation(sql)
    try:
        tree = check_writable(sql, schema.dialect) if allow_write else check_read_only(sql, schema.dialect)
    except SqlParseError as exc:
        result.steps.append(Step("parse", False, exc.message))
        return result
    except UnsafeSQLError as exc:
        result.steps += [Step("parse", True), Step("read_only", False, exc.message)]
        return result
    result.steps += [Step("parse", True), Step("read_only", True, "write allowed" if allow_write else "")]
    if isinstance(tree, exp.Query):
        problem = _identifier_problem(tree, schema, result.unknown)
        result.steps.append(Step("identifiers", problem is None, problem or ""))
        if problem is not None:
            return result
    if db is not None and isinstance(tree, exp.Query):
        try:
            db.explain(sql)
        except DatabaseError as exc:
            result.steps.append(Step("explain", False, exc.message))
            return result
        result.steps.append(Step("explain", True))
    return result


def _qualified_column_problem(tree: exp.Query, schema: Schema, unknown: list[str]) -> str | None:
    """``alias.column`` where the alias's table has no such column: name the table and where the column is."""
    for scope in traverse_scope(tree):
        for column in scope.columns:
            source = scope.sources.get(column.table) if column.table else None
            if not isinstance(source, exp.Table):
                continue  # unqualified, or a subquery/CTE: sqlglot's qualifier checks those
            table = schema.table(source.name)
            if table is None or table.column(column.name) is not None:
                continue
            unknown.append(f"{column.table}.{column.name}")
            owners = [f"{t.name}.{c.name}" for t in schema.tables for c in t.columns if c.name == column.name]
            where = f" It is in {', '.join(owners)}: join that table." if owners else ""
            columns = ", ".join(c.name for c in table.columns)
            return (
                f"Table {table.name} (as {column.table}) has no column {column.name!r}.{where} "
                f"Columns of {table.name}: {columns}."
            )
    return None


def _identifier_problem(tree: exp.Query, schema: Schema, unknown: list[str]) -> str | None:
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    known = {t.name.lower(): t for t in schema.tables}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name and name not in known and name not in ctes:
            unknown.append(table.name)
            close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            return f"Table {table.name!r} does not exist.{hint} Tables: {', '.join(t.name for t in schema.tables)}."
    problem = _qualified_column_problem(tree, schema, unknown)
    if problem is not None:
        return problem
    try:
        qualify(
            tree.copy(),
            schema=cast(dict[str, object], schema.mapping()),
            dialect=schema.dialect,
            validate_qualify_columns=True,
            identify=False,
        )
    except OptimizeError as exc:
        message = str(exc).split(". Line:")[0]
        column = message.split("'")[1] if message.count("'") >= 2 else ""
        if "could not be resolved" in message and column:
            everywhere = [f"{t.name}.{c.name}" for t in schema.tables for c in t.columns]
            names = {q.split(".")[1].lower() for q in everywhere}
            if column.lower() not in names:
                unknown.append(column)
                close = difflib.get_close_matches(column.lower(), list(names))
                matches = [q for q in everywhere if q.split(".")[1].lower() in close][:4]
                hint = f" Did you mean {', '.join(matches)}?" if matches else ""
                return f"Column {column!r} does not exist in any table.{hint}"
            owners = [q for q in everywhere if q.split(".")[1].lower() == column.lower()]
            return f"{message}: qualify it with its table ({', '.join(owners[:4])}) and join that table."
        return message
    return None
