"""The SQL assistant without a model: real SQLite, DuckDB and PostgreSQL databases, the read-only
allow-list, validation, timeouts, row limits, charts, and the repair loop on a scripted backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.sql_dev.build import build_duckdb, build_postgres, build_sqlite
from fastapi.testclient import TestClient

from codespark.config import DatabaseSettings, Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.errors import DatabaseError, InvalidRequestError, QueryTimeoutError, UnsafeSQLError
from codespark.server.app import create_app
from codespark.sql.assistant import Options, SqlAssistant
from codespark.sql.chart import chart_kind, render_chart
from codespark.sql.database import Database, Rows
from codespark.sql.safety import check_read_only
from codespark.sql.schema import introspect, render, select_tables
from codespark.sql.validate import validate
from tests.helpers import free_port
from tests.postgres import running_postgres

SLOW = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT SUM(i) FROM n"


@pytest.fixture(scope="module")
def shop_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{build_sqlite('shop', tmp_path_factory.mktemp('db') / 'shop.db')}"


@pytest.fixture(scope="module")
def hr_duckdb(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"duckdb:///{build_duckdb('hr', tmp_path_factory.mktemp('db') / 'hr.duckdb')}"


@pytest.fixture(scope="module")
def clinic_postgres() -> Iterator[str]:
    with running_postgres() as url:
        build_postgres("clinic", url)
        yield url


def test_introspection_sqlite_keys_and_samples(shop_sqlite: str) -> None:
    schema = introspect(Database(shop_sqlite))
    assert [t.name for t in schema.tables] == ["customers", "order_items", "orders", "products", "returns"]
    orders = schema.table("orders")
    assert orders is not None
    assert orders.column("id").primary_key  # type: ignore[union-attr]
    keys = [(f.columns, f.table, f.ref_columns) for f in orders.foreign_keys]
    assert keys == [(["customer_id"], "customers", ["id"])]
    assert orders.column("status").samples == ["cancelled", "delivered", "pending", "shipped"]  # type: ignore[union-attr]
    assert orders.column("order_date").samples == []  # type: ignore[union-attr]  # not low-cardinality text
    ddl = render(schema)
    assert "customer_id INTEGER REFERENCES customers(id)," in ddl and "-- values: 'cancelled'" in ddl


def test_introspection_duckdb_keys_from_its_catalog(hr_duckdb: str) -> None:
    schema = introspect(Database(hr_duckdb))
    employees = schema.table("employees")
    assert employees is not None
    refs = {(tuple(f.columns), f.table) for f in employees.foreign_keys}
    assert refs == {(("department_id",), "departments"), (("manager_id",), "employees")}
    badges = schema.table("badge_counts")
    assert badges is not None and [c.name for c in badges.columns if c.primary_key] == ["office", "hour"]
    assert "PRIMARY KEY (office, hour)" in render(schema)


def test_introspection_postgres_and_read_only_session(clinic_postgres: str) -> None:
    db = Database(clinic_postgres)
    schema = introspect(db)
    visits = schema.table("visits")
    assert visits is not None and {f.table for f in visits.foreign_keys} == {"patients", "doctors"}
    assert db.run("SELECT COUNT(*) FROM visits", 5).rows == [(800,)]
    with pytest.raises(DatabaseError, match="read-only"):
        db.run("DELETE FROM visits", 5)  # the allow-list would refuse it first; the session refuses too
    with pytest.raises(QueryTimeoutError):
        Database(clinic_postgres, timeout_s=0.3).run("SELECT pg_sleep(3)", 1)


def test_password_never_shown(clinic_postgres: str) -> None:
    url = clinic_postgres.replace("postgres@", "postgres:hunter2secret@")
    db = Database(url)
    assert "hunter2secret" not in db.display and "***" in db.display


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM orders",
        "UPDATE orders SET status = 'x'",
        "INSERT INTO orders SELECT * FROM orders",
        "DROP TABLE orders",
        "CREATE TABLE x AS SELECT 1",
        "ALTER TABLE orders ADD COLUMN x INT",
        "PRAGMA writable_schema = 1",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "VACUUM",
        "SELECT 1; DROP TABLE orders",
        "SELECT 1 /* harmless */; DELETE FROM orders",
        "-- a comment\nDELETE FROM orders",
        "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
        "SELECT * FROM (SELECT load_extension('/tmp/evil.so'))",
        "SELECT * INTO copy_of_orders FROM orders",
        "SELECT readfile('/etc/passwd')",
    ],
)
def test_refused_statements_sqlite(sql: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_read_only(sql, "sqlite")
    assert info.value.status_code == 400
    assert "refused" in info.value.message or "one statement" in info.value.message


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("COPY orders TO '/tmp/out.csv'", "duckdb"),
        ("SELECT * FROM read_csv('/etc/passwd')", "duckdb"),
        ("SELECT * FROM '/etc/passwd.csv'", "duckdb"),
        ("INSTALL httpfs", "duckdb"),
        ("SELECT pg_read_file('/etc/passwd')", "postgres"),
        ("COPY orders TO PROGRAM 'rm -rf /'", "postgres"),
        ("SET statement_timeout = 0", "postgres"),
        ("BEGIN", "postgres"),
        ("SELECT lo_import('/etc/passwd')", "postgres"),
    ],
)
def test_refused_statements_other_dialects(sql: str, dialect: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_read_only(sql, dialect)


def test_allowed_queries_and_comments_that_only_look_dangerous() -> None:
    for sql in (
        "SELECT 1 -- ; DROP TABLE orders",
        "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
        "SELECT 1 UNION ALL SELECT 2",
        "SELECT 'DELETE FROM orders' AS text",
    ):
        check_read_only(sql, "sqlite")
    with pytest.raises(UnsafeSQLError, match="one statement"):
        check_read_only("SELECT 1; SELECT 2", "sqlite")


def test_read_only_connections_refuse_writes_even_past_the_allow_list(shop_sqlite: str, hr_duckdb: str) -> None:
    with pytest.raises(DatabaseError, match=r"readonly|read-only|read only"):
        Database(shop_sqlite).run("DELETE FROM orders", 1)
    with pytest.raises(DatabaseError, match=r"read-only|read only"):
        Database(hr_duckdb).run("DELETE FROM employees", 1)


@pytest.mark.parametrize("fixture", ["shop_sqlite", "hr_duckdb"])
def test_timeouts_interrupt_runaway_queries(fixture: str, request: pytest.FixtureRequest) -> None:
    db = Database(request.getfixturevalue(fixture), timeout_s=0.3)
    with pytest.raises(QueryTimeoutError, match=r"0\.3 s"):
        db.run(SLOW, 1)
    assert db.run("SELECT 1", 1).rows == [(1,)]  # the connection is still usable


def test_row_limit(shop_sqlite: str) -> None:
    rows = Database(shop_sqlite).run("SELECT id FROM orders ORDER BY id", 7)
    assert len(rows.rows) == 7 and rows.truncated
    assert not Database(shop_sqlite).run("SELECT id FROM orders WHERE id < 3", 7).truncated


def test_validation_catches_hallucinated_identifiers_with_hints(shop_sqlite: str) -> None:
    db = Database(shop_sqlite)
    schema = introspect(db)
    bad_column = validate("SELECT customer_name FROM customers", schema, db)
    assert not bad_column.ok and bad_column.unknown == ["customer_name"]
    bad_table = validate("SELECT name FROM customer", schema, db)
    assert "Did you mean customers?" in (bad_table.error or "")
    wrong_table = validate("SELECT o.country FROM orders o JOIN customers c ON c.id = o.customer_id", schema, db)
    assert "It is in customers.country" in (wrong_table.error or "")
    good = validate("SELECT c.name FROM orders o JOIN customers c ON c.id = o.customer_id", schema, db)
    assert good.ok and [s.check for s in good.steps] == ["parse", "read_only", "identifiers", "explain"]


def test_large_schemas_are_cut_to_the_question_and_its_foreign_keys(shop_sqlite: str) -> None:
    schema = introspect(Database(shop_sqlite))
    chosen = select_tables(schema, "Which reasons do returns have?", budget_tokens=400)
    assert chosen[0] == "returns" and "order_items" in chosen and "customers" not in chosen


def _assistant(url: str, replies: dict[str, str]) -> tuple[SqlAssistant, FakeBackend]:
    fake = FakeBackend(replies=replies, default="SELECT 1```")
    db = Database(url)
    return SqlAssistant(Engine(fake), db, introspect(db)), fake


def test_repair_round_fixes_a_hallucinated_column(shop_sqlite: str) -> None:
    assistant, fake = _assistant(
        shop_sqlite,
        {
            "That SQL failed": "SELECT COUNT(*) FROM customers WHERE country = 'JP'```",
            "Question:": "SELECT COUNT(*) FROM customers WHERE nation = 'JP'```",
        },
    )
    # Without the monitor and name repair (tested in test_sql_names.py), the repair round is what fixes it.
    answer = asyncio.run(assistant.ask("How many customers are from Japan?", Options(monitor=False, fix_names=False)))
    assert answer.rounds == 2 and answer.valid
    assert answer.trail[0].unknown == ["nation"] and answer.trail[0].steps[-1].check == "identifiers"
    assert "Column 'nation' does not exist" in fake.prompts[1]  # the precise error went back to the model
    assert answer.rows is not None and answer.rows.rows[0][0] > 0
    assert "Keeps rows where country = 'JP'" in answer.explanation


def test_without_repair_the_invalid_sql_is_reported_and_never_run(shop_sqlite: str) -> None:
    assistant, _ = _assistant(shop_sqlite, {"Question:": "SELECT nation FROM customers```"})
    answer = asyncio.run(assistant.ask("Nations?", Options(repair=False)))
    assert not answer.valid and answer.rows is None and "nation" in (answer.error or "")


def test_a_generated_write_is_refused_unless_allowed_and_confirmed(tmp_path: Path) -> None:
    url = f"sqlite:///{build_sqlite('shop', tmp_path / 'shop.db')}"
    assistant, _ = _assistant(url, {"Question:": "DELETE FROM returns```"})
    refused = asyncio.run(assistant.ask("Delete all returns", Options(repair=False)))
    assert not refused.valid and "DELETE" in (refused.error or "")
    writer = SqlAssistant(assistant.engine, Database(url, writable=True), assistant.schema)
    declined = asyncio.run(writer.ask("Delete all returns", Options(allow_write=True), confirm=lambda _: False))
    assert "not confirmed" in (declined.error or "")
    assert Database(url).run("SELECT COUNT(*) FROM returns", 1).rows == [(120,)]
    done = asyncio.run(writer.ask("Delete all returns", Options(allow_write=True), confirm=lambda _: True))
    assert done.error is None and Database(url).run("SELECT COUNT(*) FROM returns", 1).rows == [(0,)]


def test_charts_for_time_series_and_categories(tmp_path: Path) -> None:
    series = Rows(["month", "orders"], [("2024-01", 3), ("2024-02", 5), ("2024-03", 4)], False)
    counts = Rows(["country", "n"], [("DE", 3), ("FR", 5)], False)
    assert chart_kind(series) == "line" and chart_kind(counts) == "bar"
    assert chart_kind(Rows(["n"], [(1,), (2,)], False)) is None
    png, page = tmp_path / "c.png", tmp_path / "c.html"
    render_chart(series, png, "Orders per month", "SELECT …")
    render_chart(counts, page, "Customers per country", "SELECT …")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in page.read_text()


def test_http_sql_route_and_sql_files_get_the_schema_as_fim_context(shop_sqlite: str) -> None:
    fake = FakeBackend(replies={"Question:": "SELECT status, COUNT(*) FROM orders GROUP BY status```"})
    engine = Engine(fake)
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    databases = [
        DatabaseSettings(name="shop", url=shop_sqlite, description="the shop"),
        DatabaseSettings(name="gone", url="sqlite:////nonexistent/x.db"),
    ]
    settings = Settings(sql_db=shop_sqlite, databases=databases)
    with TestClient(create_app(settings, engines), base_url="http://localhost") as client:
        r = client.post("/v1/sql", json={"question": "Orders per status?", "db": "shop"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["valid"] and body["columns"] == ["status", "COUNT(*)"] and len(body["rows"]) == 4
        assert [s["check"] for s in body["validation"][0]["steps"]][-1] == "execute"
        bad = client.post("/v1/sql", json={"question": "x", "db": "gone"})
        assert bad.status_code == 400 and "No SQLite database" in bad.json()["error"]["message"]
        listed = client.get("/v1/sql/databases").json()["data"]
        assert [(d["name"], d["dialect"]) for d in listed] == [("shop", "sqlite"), ("gone", "sqlite")]
        assert shop_sqlite not in json.dumps(listed)  # names and descriptions only, never the URL
        client.post("/infill", json={"input_prefix": "SELECT ", "input_suffix": "", "filename": "report.sql"})
        assert "CREATE TABLE orders" in fake.prompts[-1]
        client.post("/infill", json={"input_prefix": "x = ", "input_suffix": "", "filename": "app.py"})
        assert "CREATE TABLE" not in fake.prompts[-1]


def test_http_requests_name_a_configured_database_never_a_url(shop_sqlite: str, tmp_path: Path) -> None:
    engine = Engine(FakeBackend(default="SELECT 1```"))
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    other = f"sqlite:///{build_sqlite('shop', tmp_path / 'other.db')}"
    settings = Settings(databases=[DatabaseSettings(name="shop", url=shop_sqlite)])
    with TestClient(create_app(settings, engines), base_url="http://localhost") as client:
        for name in (other, "duckdb:///etc/passwd", "postgresql://10.0.0.1/x", "nope"):
            r = client.post("/v1/sql", json={"question": "Orders?", "db": name})
            assert r.status_code == 404, r.text
            error = r.json()["error"]
            assert error["code"] == "database_not_found" and error["param"] == "db"
            assert "Configured: shop" in error["message"]
        assert client.post("/v1/sql", json={"question": "Orders?"}).status_code == 200  # the only one is the default
    with TestClient(create_app(Settings(), engines), base_url="http://localhost") as client:
        r = client.post("/v1/sql", json={"question": "Orders?", "db": shop_sqlite})
        assert r.status_code == 404 and "[[databases]]" in r.json()["error"]["message"]


def test_http_a_configured_database_that_is_down_is_a_503_not_a_400() -> None:
    engine = Engine(FakeBackend(default="SELECT 1```"))
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    down = DatabaseSettings(name="clinic", url=f"postgresql://reader@127.0.0.1:{free_port()}/clinic")
    with TestClient(create_app(Settings(databases=[down]), engines), base_url="http://localhost") as client:
        r = client.post("/v1/sql", json={"question": "How many patients?", "db": "clinic"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
