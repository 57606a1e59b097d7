"""A one-paragraph explanation of a query, read off its syntax tree.

Written from the parsed SQL rather than by the model: it costs nothing, and it
cannot describe a query other than the one that runs.
"""

from __future__ import annotations

from sqlglot import exp


def explain(tree: exp.Expr, dialect: str) -> str:
    """What ``tree`` does, in plain words."""
    if not isinstance(tree, exp.Select):
        if isinstance(tree, exp.SetOperation):
            kind = type(tree).__name__.upper()
            return f"Combines two queries with {kind}. First: {explain(tree.left, dialect)} Second: " + explain(
                tree.right, dialect
            )
        return f"Runs a {type(tree).__name__.upper()} statement."
    parts: list[str] = []
    ctes = [c.alias_or_name for c in tree.find_all(exp.CTE)]
    if ctes:
        parts.append(f"First builds {_join_words(ctes)} as intermediate results.")
    seen: list[str] = []
    for t in tree.find_all(exp.Table):
        if t.name not in seen:
            seen.append(t.name)
    if seen:
        source = f"Reads {_join_words(seen)}"
        joins = tree.args.get("joins") or []
        conditions = [j.args["on"].sql(dialect=dialect) for j in joins if j.args.get("on") is not None]
        if conditions:
            source += f", joined on {_join_words(conditions)}"
        parts.append(source + ".")
    where = tree.args.get("where")
    if where is not None:
        parts.append(f"Keeps rows where {where.this.sql(dialect=dialect)}.")
    group = tree.args.get("group")
    if group is not None:
        parts.append(f"Groups them by {_join_words([e.sql(dialect=dialect) for e in group.expressions])}.")
    having = tree.args.get("having")
    if having is not None:
        parts.append(f"Keeps only groups where {having.this.sql(dialect=dialect)}.")
    outputs = [e.sql(dialect=dialect) for e in tree.expressions]
    parts.append(f"Returns {_join_words(outputs)}.")
    order = tree.args.get("order")
    if order is not None:
        keys = [
            f"{o.this.sql(dialect=dialect)} {'descending' if o.args.get('desc') else 'ascending'}"
            for o in order.expressions
        ]
        parts.append(f"Sorted by {_join_words(keys)}.")
    limit = tree.args.get("limit")
    if limit is not None and limit.expression is not None:
        parts.append(f"At most {limit.expression.sql(dialect=dialect)} rows.")
    if tree.args.get("distinct") is not None:
        parts.append("Duplicate rows are removed.")
    return " ".join(parts)


def _join_words(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
