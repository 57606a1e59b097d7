"""Schema introspection and its rendering for a prompt.

Tables, columns, types, primary and foreign keys and comments come from
SQLAlchemy's inspector (DuckDB's keys from its own ``duckdb_constraints()``,
which duckdb-engine's inspector cannot read).  For text columns with few
distinct values, a handful of samples is kept: "status is one of 'paid',
'refunded'" is what lets a model write ``WHERE status = 'refunded'`` instead
of guessing a spelling.

Large schemas are cut to the tables a question needs (``select_tables``):
tables ranked by the question's words in their table and column names, plus
the tables their foreign keys reach, within a token budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from codespark.errors import DatabaseError
from codespark.sql.database import Database

SAMPLE_MAX_DISTINCT = 12
SAMPLES_SHOWN = 6


@dataclass
class Column:
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    comment: str | None = None
    samples: list[str] = field(default_factory=list)


@dataclass
class ForeignKey:
    columns: list[str]
    table: str
    ref_columns: list[str]


@dataclass
class Table:
    name: str
    columns: list[Column]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    comment: str | None = None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name.lower() == name.lower()), None)


@dataclass
class Schema:
    dialect: str
    tables: list[Table]

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name.lower() == name.lower()), None)

    def mapping(self) -> dict[str, dict[str, str]]:
        """``{table: {column: type}}``, the form sqlglot's qualifier checks against."""
        return {t.name: {c.name: c.type for c in t.columns} for t in self.tables}


def introspect(db: Database, samples: bool = True) -> Schema:
    """Read the schema of ``db`` (its default schema only)."""
    tables: list[Table] = []
    with db.connect() as conn:
        inspector = sa.inspect(conn)
        duck_keys = _duckdb_keys(conn) if db.backend == "duckdb" else None
        for name in sorted(inspector.get_table_names()):
            pk: list[str]
            fks: list[ForeignKey]
            if duck_keys is not None:
                pk, fks = duck_keys.get(name, ([], []))
            else:
                pk = list(inspector.get_pk_constraint(name).get("constrained_columns") or [])
                fks = [
                    ForeignKey(list(fk["constrained_columns"]), fk["referred_table"], list(fk["referred_columns"]))
                    for fk in inspector.get_foreign_keys(name)
                ]
            columns = [
                Column(
                    c["name"],
                    _type_name(c["type"]),
                    bool(c.get("nullable", True)),
                    c["name"] in pk,
                    c.get("comment"),
                )
                for c in inspector.get_columns(name)
            ]
            comment = _table_comment(inspector, name)
            table = Table(name, columns, fks, comment)
            if samples:
                _add_samples(conn, db, table)
            tables.append(table)
    if not tables:
        raise DatabaseError(f"{db.display} has no tables to ask about.")
    return Schema(db.dialect, tables)


def _type_name(type_: Any) -> str:
    try:
        return str(type_.compile()).upper()
    except Exception:  # types without a generic compilation (vendor types)
        return type(type_).__name__.upper()


def _table_comment(inspector: Any, name: str) -> str | None:
    try:
        text = inspector.get_table_comment(name).get("text")
        return str(text) if text else None
    except (NotImplementedError, sa.exc.SQLAlchemyError):
        return None


def _duckdb_keys(conn: Connection) -> dict[str, tuple[list[str], list[ForeignKey]]]:
    rows = conn.exec_driver_sql(
        "SELECT table_name, constraint_type, constraint_column_names, referenced_table, referenced_column_names "
        "FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') "
        "AND schema_name = current_schema()"
    ).fetchall()
    out: dict[str, tuple[list[str], list[ForeignKey]]] = {}
    for table, kind, cols, ref_table, ref_cols in rows:
        pk, fks = out.setdefault(table, ([], []))
        if kind == "PRIMARY KEY":
            pk.extend(cols)
        else:
            fks.append(ForeignKey(list(cols), ref_table, list(ref_cols or [])))
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _add_samples(conn: Connection, db: Database, table: Table) -> None:
    """A few distinct values of each low-cardinality text column."""
    for column in table.columns:
        if column.primary_key or not re.search(r"CHAR|TEXT|STRING|ENUM", column.type):
            continue
        sql = (
            f"SELECT DISTINCT {_quote(column.name)} FROM {_quote(table.name)} "
            f"WHERE {_quote(column.name)} IS NOT NULL LIMIT {SAMPLE_MAX_DISTINCT + 1}"
        )
        try:
            values = [str(r[0]) for r in conn.exec_driver_sql(sql).fetchall()]
        except sa.exc.DBAPIError:
            conn.rollback()
            continue
        if 0 < len(values) <= SAMPLE_MAX_DISTINCT and all(len(v) <= 40 for v in values):
            column.samples = sorted(values)[:SAMPLES_SHOWN]


# --------------------------------------------------------------------------- rendering


def render(schema: Schema, tables: list[str] | None = None, style: str = "ddl") -> str:
    """The schema as prompt text: ``ddl`` (CREATE TABLE with comments) or ``compact`` (one line a table)."""
    chosen = [t for t in schema.tables if tables is None or t.name in tables]
    if style == "compact":
        return "\n".join(_compact(t) for t in chosen)
    return "\n\n".join(_ddl(t) for t in chosen)


def _ddl(table: Table) -> str:
    refs = {col: fk for fk in table.foreign_keys for col in fk.columns if len(fk.columns) == 1}
    pk = [c.name for c in table.columns if c.primary_key]
    lines = []
    for i, c in enumerate(table.columns):
        line = f"  {c.name} {c.type}"
        if c.primary_key and len(pk) == 1:
            line += " PRIMARY KEY"
        fk = refs.get(c.name)
        if fk is not None and fk.ref_columns:
            line += f" REFERENCES {fk.table}({fk.ref_columns[0]})"
        if i < len(table.columns) - 1 or len(pk) > 1:
            line += ","
        notes = [c.comment] if c.comment else []
        if c.samples:
            notes.append("values: " + ", ".join(f"'{v}'" for v in c.samples))
        lines.append(line + (f" -- {'; '.join(notes)}" if notes else ""))
    if len(pk) > 1:
        lines.append(f"  PRIMARY KEY ({', '.join(pk)})")
    head = f"-- {table.comment}\n" if table.comment else ""
    return head + f"CREATE TABLE {table.name} (\n" + "\n".join(lines) + "\n);"


def _compact(table: Table) -> str:
    cols = []
    for c in table.columns:
        text = f"{c.name} {c.type.lower()}"
        if c.primary_key:
            text += " pk"
        fk = next((f for f in table.foreign_keys if c.name in f.columns and f.ref_columns), None)
        if fk is not None:
            text += f" -> {fk.table}.{fk.ref_columns[fk.columns.index(c.name)]}"
        if c.samples:
            text += " {" + ", ".join(c.samples) + "}"
        cols.append(text)
    return f"{table.name}({', '.join(cols)})"


# --------------------------------------------------------------------------- large schemas

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    out = set()
    for w in _WORD.findall(text.lower().replace("_", " ")):
        out.add(w)
        if len(w) > 3 and w.endswith("s"):
            out.add(w[:-1])  # crude plural folding: "orders" matches "order"
    return out


def select_tables(schema: Schema, question: str, budget_tokens: int, chars_per_token: float = 3.5) -> list[str]:
    """The tables to show for ``question``: best lexical matches first, then what their foreign keys
    reach, until the rendered DDL would pass ``budget_tokens``."""
    asked = _words(question)

    def score(t: Table) -> float:
        names = _words(t.name)
        cols = set().union(*(_words(c.name) for c in t.columns)) if t.columns else set()
        samples = set().union(*(_words(" ".join(c.samples)) for c in t.columns)) if t.columns else set()
        return 3 * len(asked & names) + len(asked & cols) + 0.5 * len(asked & samples)

    ranked = sorted(schema.tables, key=lambda t: -score(t))
    chosen: list[str] = []
    used = 0.0

    def add(t: Table) -> bool:
        nonlocal used
        cost = len(_ddl(t)) / chars_per_token
        if t.name in chosen or used + cost > budget_tokens:
            return False
        chosen.append(t.name)
        used += cost
        return True

    for t in ranked:
        if score(t) <= 0 and chosen:
            break
        if add(t):
            for fk in t.foreign_keys:
                ref = schema.table(fk.table)
                if ref is not None:
                    add(ref)
    return chosen
