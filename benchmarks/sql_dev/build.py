"""Three seeded databases of different shapes for the SQL dev set, as SQLite or DuckDB files.

- ``clinic``: patients, doctors, visits, diagnoses and prescriptions (a star around visits);
- ``shop``: customers, products, orders, order items and returns (a chain of foreign keys);
- ``hr``: departments, employees with a self-referencing manager, salary history, and an hourly
  time series of office badge counts.

The data is random but seeded, so the gold answers are stable; every run builds the same rows.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMAS: dict[str, list[str]] = {
    "clinic": [
        "CREATE TABLE doctors (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, specialty VARCHAR NOT NULL)",
        "CREATE TABLE patients (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, sex VARCHAR NOT NULL, "
        "birth_date DATE NOT NULL, city VARCHAR NOT NULL)",
        "CREATE TABLE visits (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients(id), "
        "doctor_id INTEGER NOT NULL REFERENCES doctors(id), visit_date DATE NOT NULL, "
        "reason VARCHAR NOT NULL, cost DECIMAL(8, 2) NOT NULL)",
        "CREATE TABLE diagnoses (id INTEGER PRIMARY KEY, visit_id INTEGER NOT NULL REFERENCES visits(id), "
        "code VARCHAR NOT NULL, description VARCHAR NOT NULL, severity VARCHAR NOT NULL)",
        "CREATE TABLE prescriptions (id INTEGER PRIMARY KEY, visit_id INTEGER NOT NULL REFERENCES visits(id), "
        "drug VARCHAR NOT NULL, dose_mg INTEGER NOT NULL, days INTEGER NOT NULL)",
    ],
    "shop": [
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, email VARCHAR NOT NULL, "
        "country VARCHAR NOT NULL, signup_date DATE NOT NULL)",
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, category VARCHAR NOT NULL, "
        "price DECIMAL(8, 2) NOT NULL)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), "
        "order_date DATE NOT NULL, status VARCHAR NOT NULL)",
        "CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), "
        "product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL, "
        "unit_price DECIMAL(8, 2) NOT NULL)",
        "CREATE TABLE returns (id INTEGER PRIMARY KEY, order_item_id INTEGER NOT NULL REFERENCES order_items(id), "
        "return_date DATE NOT NULL, reason VARCHAR NOT NULL)",
    ],
    "hr": [
        "CREATE TABLE departments (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, location VARCHAR NOT NULL)",
        "CREATE TABLE employees (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "department_id INTEGER NOT NULL REFERENCES departments(id), manager_id INTEGER REFERENCES employees(id), "
        "title VARCHAR NOT NULL, hire_date DATE NOT NULL, salary INTEGER NOT NULL)",
        "CREATE TABLE salary_changes (id INTEGER PRIMARY KEY, employee_id INTEGER NOT NULL REFERENCES employees(id), "
        "change_date DATE NOT NULL, old_salary INTEGER NOT NULL, new_salary INTEGER NOT NULL)",
        "CREATE TABLE badge_counts (office VARCHAR NOT NULL, hour TIMESTAMP NOT NULL, people INTEGER NOT NULL, "
        "PRIMARY KEY (office, hour))",
    ],
}

FIRST = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena", "Mina",
         "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Yara", "Zoe"]  # fmt: skip
LAST = ["Ito", "Kaur", "Lopez", "Meyer", "Novak", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber", "Young"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _day(rng: random.Random, start: dt.date, span_days: int) -> str:
    return (start + dt.timedelta(days=rng.randrange(span_days))).isoformat()


def _clinic(rng: random.Random) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    specialties = ["cardiology", "dermatology", "family medicine", "neurology", "pediatrics"]
    doctors = [(i, f"Dr. {_name(rng)}", specialties[i % 5]) for i in range(1, 11)]
    cities = ["Lyon", "Porto", "Leeds", "Graz", "Turin"]
    patients = [
        (i, _name(rng), rng.choice(["F", "M"]), _day(rng, dt.date(1940, 1, 1), 365 * 80), rng.choice(cities))
        for i in range(1, 201)
    ]
    reasons = ["checkup", "follow-up", "chest pain", "rash", "headache", "fever", "vaccination"]
    visits = [
        (i, rng.randint(1, 200), rng.randint(1, 10), _day(rng, dt.date(2024, 1, 1), 730), rng.choice(reasons),
         round(rng.uniform(40, 400), 2))
        for i in range(1, 801)
    ]  # fmt: skip
    codes = [("I10", "hypertension"), ("E11", "type 2 diabetes"), ("J06", "upper respiratory infection"),
             ("L20", "atopic dermatitis"), ("G43", "migraine"), ("R50", "fever")]  # fmt: skip
    diagnoses = []
    for i, visit in enumerate(rng.sample(range(1, 801), 600), start=1):
        code, desc = rng.choice(codes)
        diagnoses.append((i, visit, code, desc, rng.choice(["mild", "moderate", "severe"])))
    drugs = ["amoxicillin", "ibuprofen", "metformin", "lisinopril", "sumatriptan", "hydrocortisone"]
    prescriptions = [
        (i, rng.randint(1, 800), rng.choice(drugs), rng.choice([5, 10, 20, 250, 500]), rng.choice([5, 7, 14, 30]))
        for i in range(1, 501)
    ]
    tables: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("doctors", doctors),
        ("patients", patients),
        ("visits", visits),
        ("diagnoses", diagnoses),
        ("prescriptions", prescriptions),
    ]
    yield from tables


def _shop(rng: random.Random) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    countries = ["DE", "FR", "US", "JP", "BR", "IN"]
    customers = []
    for i in range(1, 151):
        name = _name(rng)
        email = name.lower().replace(" ", ".") + f"{i}@mail.test"
        customers.append((i, name, email, rng.choice(countries), _day(rng, dt.date(2022, 1, 1), 900)))
    categories = {"books": (8, 40), "games": (20, 70), "kitchen": (10, 150), "garden": (15, 300), "toys": (5, 60)}
    products = []
    for i in range(1, 61):
        category = list(categories)[i % 5]
        low, high = categories[category]
        products.append((i, f"{category[:-1] if category.endswith('s') else category} item {i}", category,
                         round(rng.uniform(low, high), 2)))  # fmt: skip
    statuses = ["delivered"] * 6 + ["shipped", "pending", "cancelled"]
    orders = [
        (i, rng.randint(1, 150), _day(rng, dt.date(2024, 1, 1), 730), rng.choice(statuses)) for i in range(1, 601)
    ]
    items = []
    n = 0
    for order in range(1, 601):
        for _ in range(rng.randint(1, 4)):
            n += 1
            product = rng.randint(1, 60)
            items.append((n, order, product, rng.randint(1, 5), products[product - 1][3]))
    returns = [
        (
            i,
            item,
            _day(rng, dt.date(2024, 2, 1), 700),
            rng.choice(["damaged", "wrong size", "not as described", "late"]),
        )
        for i, item in enumerate(rng.sample(range(1, n + 1), 120), start=1)
    ]
    tables: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("customers", customers),
        ("products", products),
        ("orders", orders),
        ("order_items", items),
        ("returns", returns),
    ]
    yield from tables


def _hr(rng: random.Random) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    departments = [(1, "Engineering", "Berlin"), (2, "Sales", "Madrid"), (3, "Finance", "Berlin"),
                   (4, "Support", "Lisbon"), (5, "People", "Madrid")]  # fmt: skip
    titles = {1: ["Engineer", "Senior Engineer"], 2: ["Account Executive", "Sales Lead"], 3: ["Analyst", "Controller"],
              4: ["Agent", "Support Lead"], 5: ["Recruiter", "HR Partner"]}  # fmt: skip
    employees: list[tuple[Any, ...]] = []
    for dept in range(1, 6):  # a head per department, reporting to nobody
        employees.append((dept, _name(rng), dept, None, "Head of " + departments[dept - 1][1],
                          _day(rng, dt.date(2012, 1, 1), 1500), rng.randint(120, 160) * 1000))  # fmt: skip
    for i in range(6, 121):
        dept = rng.randint(1, 5)
        employees.append((i, _name(rng), dept, dept, rng.choice(titles[dept]), _day(rng, dt.date(2015, 1, 1), 3500),
                          rng.randint(45, 115) * 1000))  # fmt: skip
    changes = []
    for i, emp in enumerate(rng.sample(range(1, 121), 80), start=1):
        new = employees[emp - 1][6]
        changes.append((i, emp, _day(rng, dt.date(2023, 1, 1), 700), new - rng.randint(2, 9) * 1000, new))
    badges = []
    start = dt.datetime(2025, 3, 3, 0, 0)
    for office in ["Berlin", "Madrid", "Lisbon"]:
        for h in range(24 * 14):
            at = start + dt.timedelta(hours=h)
            busy = at.weekday() < 5 and 8 <= at.hour < 18
            badges.append((office, at.isoformat(sep=" "), rng.randint(20, 90) if busy else rng.randint(0, 4)))
    tables: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("departments", departments),
        ("employees", employees),
        ("salary_changes", changes),
        ("badge_counts", badges),
    ]
    yield from tables


_DATA = {"clinic": _clinic, "shop": _shop, "hr": _hr}


def _load(conn: Any, name: str) -> None:
    """Create and fill the ``name`` tables through a DB-API connection that takes ``?`` parameters."""
    try:
        for ddl in SCHEMAS[name]:
            conn.execute(ddl)
        for table, rows in _DATA[name](random.Random(name)):
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        conn.commit()
    finally:
        conn.close()


def build_sqlite(name: str, path: Path) -> Path:
    """Create the ``name`` database as a SQLite file at ``path`` (replacing it)."""
    path.unlink(missing_ok=True)
    _load(sqlite3.connect(path), name)
    return path


def build_duckdb(name: str, path: Path) -> Path:
    """Create the ``name`` database as a DuckDB file at ``path`` (replacing it)."""
    import duckdb

    path.unlink(missing_ok=True)
    _load(duckdb.connect(str(path)), name)
    return path


def build_postgres(name: str, url: str) -> None:
    """Create the ``name`` tables in the PostgreSQL database at ``url`` (dropping them first)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for ddl in reversed(SCHEMAS[name]):
                table = ddl.split()[2]
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
            for ddl in SCHEMAS[name]:
                conn.exec_driver_sql(ddl)
            for table, rows in _DATA[name](random.Random(name)):
                marks = ", ".join(["%s"] * len(rows[0]))
                conn.exec_driver_sql(f"INSERT INTO {table} VALUES ({marks})", rows)
    finally:
        engine.dispose()
