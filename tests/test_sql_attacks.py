"""An adversarial corpus against the SQL assistant's two walls.

Every case is asserted twice: the parser's check refuses it (``check_read_only``), and the
database connection itself refuses it with that check bypassed (``Database.run`` on the raw
text), on real SQLite, DuckDB and PostgreSQL.  What a case is after (a secret file's content,
a file written, an extension loaded) is checked not to have happened.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from codespark.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    InvalidRequestError,
    SqlParseError,
    UnsafeSQLError,
)
from codespark.sql.database import Database
from codespark.sql.safety import check_read_only
from tests.helpers import free_port
from tests.postgres import running_postgres

SECRET = f"TOPSECRET-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def loot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with files an attacker wants: a JSON credentials file, a CSV, a text file."""
    root = tmp_path_factory.mktemp("loot")
    (root / "creds.json").write_text(f'{{"token": "{SECRET}"}}\n')
    (root / "creds.csv").write_text(f"token\n{SECRET}\n")
    (root / "creds.txt").write_text(SECRET + "\n")
    return root


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "app.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO users VALUES (1, 'ada')")
    engine.dispose()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def duckdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("duckdb") / "app.duckdb"
    engine = sa.create_engine(f"duckdb:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO users VALUES (1, 'ada')")
        conn.exec_driver_sql("CREATE SEQUENCE ids")
    engine.dispose()
    return f"duckdb:///{path}"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A server with an application role that has SELECT rights only, as the README asks for."""
    with running_postgres() as admin_url:
        engine = sa.create_engine(admin_url)
        with engine.begin() as conn:
            for statement in (
                "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
                "INSERT INTO users VALUES (1, 'ada')",
                "CREATE SEQUENCE ids",
                "CREATE ROLE reader LOGIN",
                "GRANT SELECT ON users TO reader",
                "GRANT SELECT ON ids TO reader",
            ):
                conn.exec_driver_sql(statement)
        engine.dispose()
        yield admin_url.replace("//postgres@", "//reader@")


def _attacks(loot: Path, out: Path) -> dict[str, list[str]]:
    creds, csv, txt = loot / "creds.json", loot / "creds.csv", loot / "creds.txt"
    return {
        "sqlite": [
            f"ATTACH DATABASE '{csv}' AS loot",
            f"SELECT 1 FROM users; ATTACH DATABASE '{csv}' AS loot",
            "SELECT load_extension('/tmp/evil.so')",
            "SELECT/**/load_extension('/tmp/evil.so')",
            "-- harmless\nSELECT \"load_extension\"('/tmp/evil.so')",
            "WITH x AS (SELECT load_extension('/tmp/evil.so')) SELECT * FROM x",
            f"SELECT readfile('{txt}')",
            f"SELECT writefile('{out}', 'x')",
            "SELECT fts3_tokenizer('simple')",
            "SELECT load_extensi\u043en('/tmp/evil.so')",  # a Cyrillic 'o': a look-alike name
            "SELECT \uff4c\uff4f\uff41\uff44_extension('/tmp/evil.so')",  # full-width letters
            "SELECT randomblob(1000000000)",
            "PRAGMA query_only = 0",
            "PRAGMA writable_schema = 1",
            "SELECT * FROM pragma_table_info('users')",
            f"VACUUM INTO '{out}'",
            "INSERT INTO users VALUES (2, 'eve')",
            "CREATE TEMP TABLE t AS SELECT 1",
            "UPDATE users SET name = 'eve'",
        ],
        "duckdb": [
            f"SELECT * FROM read_ndjson_auto('{creds}')",
            f"SELECT * FROM read_json_auto('{creds}')",
            f"SELECT * FROM read_csv('{csv}')",
            f"SELECT * FROM read_csv_auto('{csv}')",
            f"SELECT * FROM read_text('{txt}')",
            f"SELECT * FROM read_blob('{txt}')",
            f"SELECT * FROM sniff_csv('{csv}')",
            f"SELECT * FROM glob('{loot}/*')",
            f"SELECT * FROM parquet_metadata('{loot}/x.parquet')",
            f"SELECT * FROM parquet_schema('{loot}/x.parquet')",
            f"SELECT * FROM '{csv}'",
            f'SELECT * FROM "{csv}"',
            f"WITH x AS (SELECT * FROM read_text('{txt}')) SELECT content FROM x",
            f"SELECT * FROM users UNION ALL SELECT 1, content FROM read_text('{txt}') -- ha",
            f"SELECT * FROM \"read_text\"('{txt}')",
            f"SELECT * FROM read_t\u0435xt('{txt}')",  # a Cyrillic 'e'
            f"SELECT * FROM read\u200b_text('{txt}')",  # a zero-width space
            f"ATTACH '{loot}/other.duckdb' AS o",
            f"SELECT 1; ATTACH '{loot}/other.duckdb' AS o",
            f"COPY users TO '{out}'",
            f"COPY (SELECT 1) TO '{out}'",
            f"EXPORT DATABASE '{out}'",
            "INSTALL httpfs",
            "LOAD httpfs",
            "SET enable_external_access = true",
            "SET lock_configuration = false",
            "SELECT nextval('ids')",
            "INSERT INTO users VALUES (2, 'eve')",
            "CREATE TABLE t AS SELECT 1",
        ],
        "postgres": [
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_read_binary_file('/etc/passwd')",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT * FROM pg_stat_file('/etc/passwd')",
            "SELECT lo_import('/etc/passwd')",
            f"COPY users TO '{out}'",
            f"COPY (SELECT 1) TO PROGRAM 'touch {out}'",
            "COPY users FROM PROGRAM 'id'",
            "SELECT nextval('ids')",
            "SELECT 1; DROP TABLE users",
            "SELECT 1; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; DELETE FROM users",
            "WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM gone",
            "CREATE TABLE t (a int)",
            "INSERT INTO users VALUES (2, 'eve')",
            "SELECT pg_sleep(30)",
        ],
    }


# Refused by the parser, and harmless at the connection (released when it closes), so only the first wall.
PARSER_ONLY = {
    "postgres": [
        "SELECT pg_advisory_lock(42)",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT current_setting('data_directory')",
    ],
    "duckdb": ["SELECT current_setting('home_directory')", "SELECT * FROM duckdb_settings()"],
    "sqlite": ["SELECT sqlite_compileoption_get(0)"],
}

FIXTURES = {"sqlite": "sqlite_url", "duckdb": "duckdb_url", "postgres": "postgres_url"}


def _cases() -> list[tuple[str, int]]:
    sample = _attacks(Path("/x"), Path("/y"))
    return [(dialect, i) for dialect, cases in sample.items() for i in range(len(cases))]


@pytest.mark.parametrize(("dialect", "index"), _cases())
def test_attack_is_refused_by_both_walls(
    dialect: str, index: int, loot: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "written"
    sql = _attacks(loot, out)[dialect][index]
    with pytest.raises((UnsafeSQLError, SqlParseError)):
        check_read_only(sql, dialect)
    db = Database(request.getfixturevalue(FIXTURES[dialect]), timeout_s=1.0)
    try:
        with pytest.raises(DatabaseError) as refused:
            rows = db.run(sql, 100)
            assert SECRET not in repr(rows.rows)  # if it ran, at least it read nothing
        assert SECRET not in refused.value.message
        assert not out.exists()
        # The connection refused the statement, and the database is still intact and usable.
        assert db.run("SELECT name FROM users ORDER BY id", 10).rows == [("ada",)]
    finally:
        db.dispose()


@pytest.mark.parametrize(("dialect", "sql"), [(d, s) for d, cases in PARSER_ONLY.items() for s in cases])
def test_parser_refuses_server_state_functions(dialect: str, sql: str) -> None:
    with pytest.raises(UnsafeSQLError, match="allow-list"):
        check_read_only(sql, dialect)


def test_unknown_function_refusal_lists_what_is_allowed() -> None:
    with pytest.raises(UnsafeSQLError) as info:
        check_read_only("SELECT getenv('HOME')", "duckdb")
    message = info.value.message
    assert "getenv()" in message and "date_trunc" in message and "count" in message


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("sqlite", "SELECT strftime('%Y', d), COUNT(*), ROUND(AVG(x), 2) FROM t GROUP BY 1"),
        ("sqlite", "SELECT name, ROW_NUMBER() OVER (ORDER BY x) FROM t WHERE name LIKE 'a%'"),
        ("sqlite", "SELECT CAST(x AS INTEGER), COALESCE(a, b), IIF(x > 1, 1, 0), julianday(d) FROM t"),
        ("duckdb", "SELECT date_trunc('month', d), median(x), x::INT, list_agg(a) FROM t GROUP BY 1"),
        ("duckdb", "SELECT EXTRACT(year FROM d), strftime(d, '%Y'), regexp_matches(a, 'x') FROM t"),
        ("postgres", "SELECT to_char(d, 'YYYY'), string_agg(a, ','), percentile_cont(0.5) WITHIN GROUP (ORDER BY x)"),
        ("postgres", "SELECT date_trunc('week', d), EXTRACT(dow FROM d), a ILIKE 'x%', x::numeric FROM t"),
    ],
)
def test_everyday_functions_pass_the_allow_list(dialect: str, sql: str) -> None:
    check_read_only(sql, dialect)


def test_postgres_role_with_file_rights_is_warned_about() -> None:
    with running_postgres() as superuser_url:
        db = Database(superuser_url)
        try:
            db.run("SELECT 1", 1)
            assert db.warnings and "superuser" in db.warnings[0]
        finally:
            db.dispose()


def test_parse_errors_are_typed(sqlite_url: str) -> None:
    with pytest.raises(SqlParseError):
        check_read_only("SELECT FROM WHERE (", "sqlite")
    with pytest.raises(InvalidRequestError):
        check_read_only("", "sqlite")


def test_a_postgres_server_that_is_down_is_a_503_saying_what_to_check() -> None:
    db = Database(f"postgresql://reader@127.0.0.1:{free_port()}/app")
    with pytest.raises(DatabaseUnavailableError) as info:
        db.run("SELECT 1", 1)
    assert info.value.status_code == 503 and "running" in info.value.message and "port" in info.value.message
