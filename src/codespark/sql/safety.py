"""What SQL may run, decided on the parsed statement (sqlglot), not on its text.

Two rules:

- **Read-only.** Exactly one ``SELECT`` (or ``WITH … SELECT``, or a set
  operation of selects).  Refused, wherever they hide (a CTE, a subquery, after
  a comment or a second ``;``): DML, DDL, ``PRAGMA``, ``ATTACH``, ``COPY``,
  ``SET``, transaction control, and anything sqlglot cannot classify (a raw
  ``Command``).  ``--allow-write`` on the CLI lifts this rule only.
- **Allowed functions.** A function runs only if it is on the dialect's
  allow-list (``ALLOWED_FUNCTIONS``: aggregates, string, date, math, casts,
  conditionals, window functions).  An allow-list, not a deny-list: a function
  nobody thought of (a new file reader, ``getenv``) is refused by default, and
  the refusal lists what is allowed.

This layer explains *why* in words a person (and a repair round) can act on.
It is not the only wall: the connection itself refuses the same things
(``sql/database.py``: DuckDB without external access, SQLite's authorizer,
PostgreSQL's read-only transaction), so SQL that slips past a parser still
cannot read a file.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from codespark.errors import SqlParseError, UnsafeSQLError


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_COMMON = _names(
    """
        count sum avg min max lower upper length substring substr trim ltrim rtrim replace concat concat_ws
        coalesce nullif cast round abs ceil ceiling floor sign sqrt power pow exp ln log log10 log2 mod pi
        trunc degrees radians sin cos tan asin acos atan atan2 greatest least exists row_number rank
        dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
        """
)

# Per dialect, by the name the dialect itself uses (what ``function_name`` returns).
ALLOWED_FUNCTIONS: dict[str, frozenset[str]] = {
    "sqlite": _COMMON
    | _names(
        """
        group_concat string_agg total instr printf format char hex unhex unicode quote typeof iif if ifnull
        like glob likely unlikely likelihood random soundex octet_length date time datetime julianday
        unixepoch strftime timediff json json_extract json_array_length json_type json_valid json_object
        json_array json_group_array json_group_object json_quote sqlite_version changes total_changes
        last_insert_rowid
        """
    ),
    "duckdb": _COMMON
    | _names(
        """
        median mode quantile quantile_cont quantile_disc percentile_cont percentile_disc stddev stddev_samp
        stddev_pop variance var_samp var_pop corr covar_pop covar_samp count_if bool_and bool_or first last
        any_value arg_max arg_min argmax argmin max_by min_by approx_count_distinct approx_quantile list
        array_agg list_agg listagg string_agg group_concat histogram product left right lpad rpad reverse
        repeat split_part string_split str_split regexp_matches regexp_replace regexp_extract
        regexp_full_match contains starts_with ends_with prefix suffix strpos position instr strlen len
        ascii chr format printf md5 hash lcase ucase levenshtein jaro_winkler_similarity damerau_levenshtein
        jaccard array_to_string list_aggregate now today current_date date_trunc datetrunc date_part
        datepart date_diff datediff date_sub date_add age year month day dayofmonth dayofweek dayofyear
        dayname monthname week weekofyear quarter hour minute second millisecond epoch epoch_ms make_date
        make_time make_timestamp strftime strptime try_strptime to_timestamp last_day isodow isoyear
        yearweek extract time_bucket date to_days to_hours to_minutes to_seconds to_months to_years
        list_value list_contains array_contains list_extract array_length unnest range generate_series
        list_sort array_sort struct_pack if ifnull typeof try_cast round_even isnan isinf even
        """
    ),
    "postgres": _COMMON
    | _names(
        """
        to_char to_date to_number to_timestamp date_trunc date_part extract age now justify_days
        justify_hours make_date make_interval make_timestamp date string_agg array_agg array_length
        array_to_string unnest generate_series bool_and bool_or every stddev stddev_samp stddev_pop variance
        var_samp var_pop corr covar_pop covar_samp percentile_cont percentile_disc mode split_part btrim
        initcap lpad rpad left right reverse repeat strpos position char_length character_length
        octet_length regexp_replace regexp_match regexp_matches regexp_split_to_array format md5 chr ascii
        translate starts_with width_bucket random div cbrt json_build_object jsonb_build_object json_agg
        jsonb_agg json_extract_path_text jsonb_extract_path_text jsonb_array_length json_array_length
        to_json to_jsonb
        """
    ),
}

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


def parse(sql: str, dialect: str) -> list[exp.Expr]:
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns when it falls back to a raw Command; we refuse those anyway
    try:
        return [e for e in sqlglot.parse(sql, read=dialect) if e is not None]
    except ParseError as exc:
        raise SqlParseError(f"The SQL does not parse as {dialect}: {_parse_message(exc)}", param="sql") from exc
    finally:
        quiet.setLevel(level)


def _parse_message(exc: ParseError) -> str:
    errors = exc.errors
    if errors:
        first = errors[0]
        return f"{first.get('description')} (line {first.get('line')}, column {first.get('col')})"
    return str(exc).splitlines()[0]


def _single_statement(sql: str, dialect: str) -> exp.Expr:
    statements = parse(sql, dialect)
    if not statements:
        raise SqlParseError("There is no SQL statement here.", param="sql")
    if len(statements) > 1:
        raise UnsafeSQLError(
            f"Only one statement may run at a time; this has {len(statements)}. Remove everything after the first ';'.",
            param="sql",
        )
    return statements[0]


def check_writable(sql: str, dialect: str) -> exp.Expr:
    """The one parsed statement in ``sql`` that may change data (``--allow-write``): allowed functions only."""
    tree = _single_statement(sql, dialect)
    check_functions(tree, dialect)
    return tree


def check_read_only(sql: str, dialect: str) -> exp.Expr:
    """The one parsed read-only query in ``sql``, or ``UnsafeSQLError`` saying what was refused."""
    tree = _single_statement(sql, dialect)
    refusal = read_only_refusal(tree, sql)
    if refusal:
        raise UnsafeSQLError(refusal + " Only SELECT / WITH queries run here (use --allow-write to change data).")
    check_functions(tree, dialect)
    return tree


def function_name(node: exp.Func, dialect: str) -> str | None:
    """The name ``dialect`` calls ``node`` by (``strftime``, ``date_trunc``), or None for syntax that
    is not a named call (``CASE``, ``x::int``'s operator form, array literals)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    m = _CALL.match(node.sql(dialect=dialect))
    return m.group(1).lower() if m else None


_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def check_functions(tree: exp.Expr, dialect: str) -> None:
    """``UnsafeSQLError`` naming the first function of ``tree`` that is not on ``dialect``'s allow-list."""
    allowed = ALLOWED_FUNCTIONS.get(dialect, _COMMON)
    for node in tree.walk():
        if not isinstance(node, exp.Func):
            continue
        name = function_name(node, dialect)
        if name is not None and name not in allowed:
            raise UnsafeSQLError(
                f"The function {name}() is refused: it is not on the allow-list. Functions allowed on {dialect}: "
                f"{', '.join(sorted(allowed))}.",
                param="sql",
            )


def read_only_refusal(tree: exp.Expr, sql: str) -> str | None:
    """Why ``tree`` (parsed from ``sql``) is not a read-only query, or None if it is."""
    if not isinstance(tree, exp.Query):
        words = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).split()
        return f"{words[0].upper() if words else _kind(tree)} statements are refused."
    for node in tree.walk():
        if isinstance(node, _WRITES):
            return f"{_kind(node)} is refused, even inside a query."
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
