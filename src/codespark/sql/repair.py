"""Deterministic name repair: fix a column the model misspelled when only one real column fits.

Before another model round, each column that does not exist where it is used is looked up:

- **spelling**: exactly one column of its table (or, unqualified, of the tables in scope) is the
  same name up to case and underscores, or up to the table's own name as a prefix
  (``pet_type`` and ``type`` on ``Pets`` are ``PetType``);
- **wrong alias**: ``T1.LName`` where ``T1``'s table has no ``LName`` but exactly one other table
  in the same scope has it: the qualifier moves there.  When several have it but the query joins
  them on that very column by inner-join equality (``ON T2.TrackId = T3.TrackId``), their values
  are the same in every row, so the first of them is taken.

Anything ambiguous is left alone for validation to report.  Every rewrite is returned as a note
for the trail, so the user sees what changed and why.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from codespark.errors import SqlParseError
from codespark.sql.safety import parse
from codespark.sql.schema import Schema, Table


def _fold(name: str) -> str:
    return name.lower().replace("_", "")


def _spellings(column: str, table: Table) -> set[str]:
    """How ``column`` of ``table`` may be written by someone who guessed it."""
    base = _fold(table.name)
    singular = base[:-1] if base.endswith("s") else base
    folded = _fold(column)
    out = {folded}
    for prefix in (base, singular):
        if folded.startswith(prefix) and len(folded) > len(prefix):
            out.add(folded[len(prefix) :])  # PetType is "type" on Pets
    return out


def _match(name: str, tables: list[Table]) -> tuple[Table, str] | None:
    """The one column of ``tables`` that ``name`` stands for, if exactly one fits."""
    wanted = _fold(name)
    hits = [(t, c.name) for t in tables for c in t.columns if wanted in _spellings(c.name, t)]
    return hits[0] if len(hits) == 1 else None


def repair_names(sql: str, schema: Schema) -> tuple[str, list[str]]:
    """``sql`` with unambiguous misspelled or misplaced columns fixed, and a note per fix."""
    try:
        trees = parse(sql, schema.dialect)
    except SqlParseError:
        return sql, []  # validation reports it
    if len(trees) != 1:
        return sql, []
    tree = trees[0]
    notes: list[str] = []
    for scope in traverse_scope(tree):
        sources = {alias: schema.table(src.name) for alias, src in scope.sources.items() if isinstance(src, exp.Table)}
        in_scope = [t for t in sources.values() if t is not None]
        if len(in_scope) != len(scope.sources):
            continue  # a subquery or CTE in scope: its columns are not in the schema
        select = scope.expression
        outputs = {s.alias.lower() for s in select.selects if isinstance(s, exp.Alias)} if isinstance(
            select, exp.Select) else set()  # fmt: skip
        equal = _inner_equalities(select)
        for column in scope.columns:
            if not column.table and column.name.lower() in outputs:
                continue  # ORDER BY an output alias
            notes += _repair_column(column, sources, in_scope, equal)
    if not notes:
        return sql, []
    return tree.sql(dialect=schema.dialect), notes


def _inner_equalities(select: exp.Expr) -> set[frozenset[tuple[str, str]]]:
    """``{(alias, column), (alias, column)}`` pairs equated in inner joins' ON clauses and the WHERE clause."""
    conditions: list[exp.Expr] = []
    for join in select.args.get("joins") or []:
        if not join.side and join.args.get("on") is not None:
            conditions.append(join.args["on"])
    if select.args.get("where") is not None:
        conditions.append(select.args["where"].this)
    pairs: set[frozenset[tuple[str, str]]] = set()
    for condition in conditions:
        for eq in condition.find_all(exp.EQ):
            left, right = eq.this, eq.expression
            if isinstance(left, exp.Column) and isinstance(right, exp.Column) and left.table and right.table:
                pairs.add(frozenset({(left.table, left.name.lower()), (right.table, right.name.lower())}))
    return pairs


def _all_joined(owners: list[tuple[str, str]], equal: set[frozenset[tuple[str, str]]]) -> bool:
    """Whether ``owners`` (alias, column) are all connected by the equalities (then interchangeable)."""
    reached = {owners[0]}
    grew = True
    while grew:
        grew = False
        for pair in equal:
            if len(pair & reached) == 1:
                reached |= pair
                grew = True
    return all(o in reached for o in owners)


def _repair_column(
    column: exp.Column,
    sources: dict[str, Table | None],
    in_scope: list[Table],
    equal: set[frozenset[tuple[str, str]]],
) -> list[str]:
    name, qualifier = column.name, column.table
    table = sources.get(qualifier) if qualifier else None
    if qualifier and table is None:
        return []
    if table is not None and table.column(name) is not None:
        return []
    if table is None and any(t.column(name) is not None for t in in_scope):
        return []
    if table is not None:
        fixed = _match(name, [table])
        if fixed is not None:
            column.set("this", exp.to_identifier(fixed[1]))
            return [f"{qualifier}.{name} -> {qualifier}.{fixed[1]} (the only column of {table.name} that matches)"]
        owners = [(alias, t) for alias, t in sources.items() if t is not None and t.column(name) is not None]
        if len(owners) > 1 and _all_joined([(alias, name.lower()) for alias, _ in owners], equal):
            owners = owners[:1]  # joined on this column: any of them has the same value
        if len(owners) == 1:
            alias, owner = owners[0]
            real = owner.column(name)
            assert real is not None
            column.set("table", exp.to_identifier(alias))
            column.set("this", exp.to_identifier(real.name))
            return [f"{qualifier}.{name} -> {alias}.{real.name} ({table.name} has no {name}; {owner.name} does)"]
        return []
    fixed = _match(name, in_scope)
    if fixed is None:
        return []
    column.set("this", exp.to_identifier(fixed[1]))
    return [f"{name} -> {fixed[1]} (the only column of {fixed[0].name} in scope that matches)"]
