"""Correct SQL names: the schema monitor (sql/monitor.py) and deterministic name repair (sql/repair.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.sql.assistant import Options, SqlAssistant
from codespark.sql.database import Database
from codespark.sql.monitor import SqlMonitor
from codespark.sql.repair import repair_names
from codespark.sql.schema import Column, Schema, Table, introspect
from codespark.sql.validate import validate

PETS = Schema(
    "sqlite",
    [
        Table(
            "Pets",
            [Column("PetID", "INT"), Column("PetType", "TEXT"), Column("pet_age", "INT"), Column("weight", "REAL")],
        ),
        Table("Has_Pet", [Column("StuID", "INT"), Column("PetID", "INT")]),
        Table("Student", [Column("StuID", "INT"), Column("LName", "TEXT"), Column("Fname", "TEXT")]),
    ],
)
MONITOR = SqlMonitor(PETS)


def names_at(text: str) -> tuple[str, str, set[str]] | None:
    found = MONITOR.names(text)
    return None if found is None else (found.kind, found.partial, set(found.names))


@pytest.mark.parametrize(
    ("text", "kind", "partial"),
    [
        ("SELECT * FROM", "sql.table", ""),  # FROM may be finished: the next identifier is a table
        ("SELECT * FROM Pe", "sql.table", "Pe"),
        ("SELECT * FROM Pets AS T1 JOIN ", "sql.table", ""),
        ("SELECT * FROM Pets, ", "sql.table", ""),
        ('SELECT * FROM "', "sql.table", ""),
    ],
)
def test_tables_after_from_and_join(text: str, kind: str, partial: str) -> None:
    found = names_at(text)
    assert found is not None and found[:2] == (kind, partial)
    assert found[2] == {"Pets", "Has_Pet", "Student"}


def test_columns_of_exactly_the_aliased_table() -> None:
    found = names_at("SELECT * FROM Pets AS T1 JOIN Student AS T2 ON T2.")
    assert found == ("sql.column", "", {"StuID", "LName", "Fname"})
    assert names_at("SELECT * FROM Pets p WHERE p.Pet") == (
        "sql.column",
        "Pet",
        {"PetID", "PetType", "pet_age", "weight"},
    )
    assert names_at("SELECT * FROM Pets WHERE Pets.") is not None


def test_an_alias_not_defined_yet_allows_every_column() -> None:
    found = names_at("SELECT T1.")
    assert found is not None and found[2] == {c.name for t in PETS.tables for c in t.columns}


def test_bare_names_once_from_is_written() -> None:
    found = names_at("SELECT * FROM Pets WHERE ")
    assert found is not None and found[0] == "sql.name"
    assert {"PetType", "weight", "Pets", "COUNT", "NOT"} <= found[2]
    assert "LName" not in found[2]  # Student is not in scope
    assert "n" in names_at("SELECT count(*) AS n FROM Pets GROUP BY PetType ORDER BY ")[2]  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        "SELECT pet",  # the select list before FROM: the scope is not known yet
        "SELECT * FROM Pets WHERE PetType = '",  # inside a string
        "SELECT * FROM Pets WHERE PetID IN (SELECT ",  # a subquery's select list
        "WITH x AS (SELECT 1) SELECT * FROM x WHERE ",  # a CTE in scope: its columns are unknown
        "SELECT * FROM Pets AS ",  # a new alias
        "SELECT * FROM Pets -- a comment",
    ],
)
def test_silent_where_nothing_resolves(text: str) -> None:
    assert names_at(text) is None


def test_subquery_scope_is_its_own_tables_and_the_outer_ones() -> None:
    found = names_at("SELECT * FROM Pets WHERE PetID IN (SELECT PetID FROM Has_Pet WHERE ")
    assert found is not None and {"StuID", "PetType"} <= found[2] and "LName" not in found[2]


def test_names_that_are_not_words_leave_the_position_free() -> None:
    odd = Schema("sqlite", [Table("Order Details", [Column("Unit Price", "REAL")])])
    assert SqlMonitor(odd).names("SELECT * FROM ") is None


@pytest.mark.parametrize(
    ("sql", "fixed", "note"),
    [
        ("SELECT pet_type FROM Pets", "SELECT PetType FROM Pets", "pet_type -> PetType"),
        ("SELECT T1.type FROM Pets AS T1", "SELECT T1.PetType FROM Pets AS T1", "T1.type -> T1.PetType"),
        ("SELECT id FROM Pets", "SELECT PetID FROM Pets", "id -> PetID"),  # the table's name as a prefix
        ("SELECT petage FROM Pets WHERE PetID IN (SELECT pet_id FROM Has_Pet)",
         "SELECT pet_age FROM Pets WHERE PetID IN (SELECT PetID FROM Has_Pet)", "pet_id -> PetID"),
        ("SELECT T1.LName FROM Pets AS T1 JOIN Has_Pet AS T2 ON T1.PetID = T2.PetID JOIN Student AS T3 "
         "ON T3.StuID = T2.StuID", "SELECT T3.LName FROM Pets AS T1", "T1.LName -> T3.LName"),
    ],
)  # fmt: skip
def test_repair_fixes_what_has_one_answer(sql: str, fixed: str, note: str) -> None:
    out, notes = repair_names(sql, PETS)
    assert out.startswith(fixed) and any(n.startswith(note) for n in notes)
    assert validate(out, PETS, None).ok


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM Pets GROUP BY PetType ORDER BY n",  # an output alias
        "SELECT stuid FROM Student",  # right up to case already
        "SELECT name FROM Pets",  # no column of Pets is a spelling of it
        "SELECT StuID FROM Has_Pet JOIN Student USING (StuID)",  # exists
        "SELECT x FROM (SELECT 1 AS y)",  # a subquery's columns are not the schema's
        "SELECT nonsense FROM",  # does not parse: left for validation
    ],
)
def test_repair_leaves_everything_else_alone(sql: str) -> None:
    assert repair_names(sql, PETS) == (sql, [])


def test_a_wrong_alias_among_tables_joined_on_that_column_takes_the_first() -> None:
    sql = "SELECT COUNT(T3.PetID) FROM Has_Pet AS T1 JOIN Pets AS T2 ON T1.PetID = T2.PetID JOIN Student AS T3 ON 1 = 1"
    out, notes = repair_names(sql, PETS)
    assert out.startswith("SELECT COUNT(T1.PetID)") and notes == [
        "T3.PetID -> T1.PetID (Student has no PetID; Has_Pet does)"
    ]
    outer = sql.replace("JOIN Pets", "LEFT JOIN Pets")
    assert repair_names(outer, PETS) == (outer, [])  # an outer join's side may be NULL: not interchangeable


def test_an_ambiguous_wrong_alias_is_not_guessed() -> None:
    sql = "SELECT T1.StuID FROM Pets AS T1 JOIN Has_Pet AS T2 ON 1 = 1 JOIN Student AS T3 ON 1 = 1"
    assert repair_names(sql, PETS) == (sql, [])  # both Has_Pet and Student have StuID


@pytest.fixture
def pets_db(tmp_path: Path) -> Database:
    path = tmp_path / "pets.db"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE Pets (PetID INTEGER PRIMARY KEY, PetType VARCHAR(20), pet_age INTEGER, weight REAL);"
        "INSERT INTO Pets VALUES (1, 'dog', 3, 12.0), (2, 'cat', 2, 4.5), (3, 'dog', 5, 20.0);"
    )
    con.close()
    return Database(f"sqlite:///{path}")


def test_the_assistant_repairs_a_name_and_says_so(pets_db: Database) -> None:
    backend = FakeBackend(default="SELECT pet_type, COUNT(*) FROM Pets GROUP BY pet_type\n```")
    engine = Engine(backend)
    assistant = SqlAssistant(engine, pets_db, introspect(pets_db))
    answer = asyncio.run(assistant.ask("How many pets of each type?", Options(monitor=False)))
    engine.close()
    assert answer.valid and answer.rounds == 1
    assert answer.sql == "SELECT PetType, COUNT(*) FROM Pets GROUP BY PetType"
    assert answer.trail[0].steps[0].check == "names" and "pet_type -> PetType" in answer.trail[0].steps[0].detail
    assert answer.rows is not None and sorted(answer.rows.rows) == [("cat", 1), ("dog", 2)]


def test_the_monitor_keeps_invented_names_out_of_the_sql(pets_db: Database) -> None:
    backend = FakeBackend(default="SELECT * FROM Pet WHERE Pets.kind = 'dog'\n```")
    engine = Engine(backend)
    assistant = SqlAssistant(engine, pets_db, introspect(pets_db))
    answer = asyncio.run(assistant.ask("Which pets are dogs?", Options(fix_names=False, max_rounds=1)))
    engine.close()
    assert answer.trail[0].unknown == []  # whatever the fake wrote instead, every name is real
    assert "Pet " not in answer.trail[0].sql and ".kind" not in answer.trail[0].sql
    assert answer.masked_steps > 0


def test_a_token_that_carries_the_dot_and_the_name_is_checked_inside() -> None:
    from codespark.engine.mask import Guide, Vocabulary

    guide = Guide(MONITOR, Vocabulary([b".Age", b".PetType", b".", b" T1"]))
    guide.push(b"SELECT * FROM Pets AS T1 WHERE T1")
    assert not guide.accepts(b".Age") and guide.rejected == 1  # Pets has no Age, whatever the tokenization
    assert guide.accepts(b".PetType") and guide.accepts(b".") and guide.accepts(b".Pet")
    assert guide.accepts(b" T1")
