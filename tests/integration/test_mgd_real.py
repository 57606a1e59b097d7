"""Monitor-guided decoding on the real models: lossless speculation under the mask, real SQL over a
mixed-case schema, and real members of a class defined in another module."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmarks.sql_foreign.build import build_sqlite

from codespark.config import Settings
from codespark.context.monitor import PythonMonitor
from codespark.engine import chat
from codespark.engine.backend import CancelToken, GenerationStats, SamplingParams, Snapshot
from codespark.engine.engine import Engine
from codespark.engine.fim import FimRequest
from codespark.engine.llama import LlamaBackend, LlamaOptions
from codespark.engine.mask import Guide, Monitor
from codespark.engine.speculative import NgramDrafter
from codespark.models.catalog import find
from codespark.services.fim import one_shot
from codespark.sql import prompts
from codespark.sql.monitor import SqlMonitor
from codespark.sql.schema import Column, Schema, Table

pytestmark = pytest.mark.integration

PETS_DDL = (
    "CREATE TABLE Student (StuID INTEGER PRIMARY KEY, LName VARCHAR(12), Fname VARCHAR(12), Age INTEGER, "
    "Sex VARCHAR(1), city_code VARCHAR(3));"
    "CREATE TABLE Has_Pet (StuID INTEGER REFERENCES Student(StuID), PetID INTEGER REFERENCES Pets(PetID));"
    "CREATE TABLE Pets (PetID INTEGER PRIMARY KEY, PetType VARCHAR(20), pet_age INTEGER, weight REAL);"
)
PETS = Schema(
    "sqlite",
    [
        Table("Student", [Column(n, "TEXT") for n in ("StuID", "LName", "Fname", "Age", "Sex", "city_code")]),
        Table("Has_Pet", [Column("StuID", "INT"), Column("PetID", "INT")]),
        Table(
            "Pets",
            [Column("PetID", "INT"), Column("PetType", "TEXT"), Column("pet_age", "INT"), Column("weight", "REAL")],
        ),
    ],
)


def _model(role: str) -> Path:
    spec = find(role)
    assert spec is not None
    return Settings().models_dir / spec.filename


def _plain_masked(backend: LlamaBackend, tokens: list[int], n: int, monitor: Monitor) -> tuple[list[int], list[float]]:
    """Plain greedy decoding under the mask, recording the gap between the top two allowed logits."""
    llm = backend._llm
    llm.reset()
    llm.eval(tokens)
    guide = Guide(monitor, backend.vocabulary())
    out, gaps = [], []
    for _ in range(n):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
        mask = guide.mask()
        if mask is not None:
            logits[~mask] = -np.inf
        top2 = np.partition(logits, -2)[-2:]
        token = int(np.argmax(logits))
        out.append(token)
        gaps.append(float(abs(top2[1] - top2[0])))
        guide.push(backend.token_bytes(token))
        if backend.is_stop_token(token):
            break
        llm.eval([token])
    return out, gaps


def test_speculation_under_the_mask_is_lossless() -> None:
    """Drafts are verified under the same mask as plain decoding: the same tokens (up to near-ties)."""
    backend = LlamaBackend(_model("spark"), "spark", LlamaOptions(n_ctx=4096))
    question = prompts.QUESTION.format(dialect="sqlite", schema=PETS_DDL, question="Average pet weight per pet type, "
                                       "for pets of students older than 20?", kind="sqlite SELECT query")  # fmt: skip
    prompt = [*chat.build_prompt(backend.info, [chat.Message("user", question)]), prompts.ANSWER_OPENING]
    tokens = Engine(backend).tokenize_prompt(prompt)
    plain, gaps = _plain_masked(backend, tokens, 80, SqlMonitor(PETS))
    backend.restore(Snapshot([], None, 0))
    backend.drafter = NgramDrafter()
    stats = GenerationStats()
    params = SamplingParams(max_tokens=80, monitor=SqlMonitor(PETS))
    fast = list(backend.generate(tokens, params, CancelToken(), stats))
    for i, (a, b) in enumerate(zip(plain, fast, strict=False)):
        if a != b:
            assert gaps[i] < 1.0, f"diverged at token {i} where masked decoding was sure (gap {gaps[i]:.2f})"
            break
    else:
        assert len(fast) == len(plain)
    assert stats.masked_steps > 0 and stats.drafted > 0


@pytest.fixture(scope="module")
def pets_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spider's pets_1 schema (mixed case, abbreviations), as the second SQL set builds it."""
    return build_sqlite("pets_1", tmp_path_factory.mktemp("mgd") / "pets.db")


def _ask(db: Path, question: str, mgd: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "codespark", "sql", question, "--db", f"sqlite:///{db}", "--json", "--no-repair",
               "--model", "spark"]  # fmt: skip
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "CODESPARK_MGD": mgd}
    )
    assert proc.returncode in (0, 1), proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


# Found on the real spark model (benchmarks/sql_eval.py --set foreign): unconstrained, it writes a column
# on a table that does not have it; under the schema monitor every identifier is real.
SQL_CASE = "What is the average age of the students who have a dog?"


def _invented(answer: dict[str, Any]) -> list[str]:
    """Names the model wrote that do not exist: caught by validation, or fixed by the name repair."""
    first = answer["validation"][0]
    fixed = [s["detail"] for s in first["steps"] if s["check"] == "names"]
    return list(first["unknown_identifiers"]) + fixed


def test_real_sql_uses_only_real_columns_under_the_monitor(pets_db: Path) -> None:
    free = _ask(pets_db, SQL_CASE, "off")
    guided = _ask(pets_db, SQL_CASE, "on")
    assert _invented(free), free  # unconstrained, spark names a column on a table that lacks it
    assert _invented(guided) == [] and guided["valid"], guided


LIBRARY = '''
class Account:
    """A bank account."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.entries: list[float] = []

    def post_entry(self, amount: float) -> None:
        self.entries.append(amount)

    def current_total(self) -> float:
        return sum(self.entries)
'''

APP = """from bank.ledger import Account


def report(account: Account) -> str:
    account.post_entry(0.0)
    return f"{account.owner}: {account."""


def test_a_member_from_another_module_is_real_under_the_monitor(tmp_path: Path) -> None:
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "__init__.py").write_text("")
    (tmp_path / "bank" / "ledger.py").write_text(textwrap.dedent(LIBRARY))
    backend = LlamaBackend(_model("spark"), "spark", LlamaOptions(n_ctx=4096))
    engine = Engine(backend)
    request = FimRequest(APP, '}"\n')

    async def complete(monitor: PythonMonitor | None) -> str:
        job = one_shot(engine, request, SamplingParams(max_tokens=12, monitor=monitor))
        return (await engine.run(job)).text

    monitor = PythonMonitor(APP, request.suffix, tmp_path / "app.py", tmp_path, budget_ms=60_000)
    guided = asyncio.run(complete(monitor))
    free = asyncio.run(complete(None))
    engine.close()
    member = guided.split("(")[0].split("}")[0].strip()
    assert member in {"owner", "entries", "post_entry", "current_total"}, guided
    assert free.split("(")[0].split("}")[0].strip() not in {"owner", "entries", "post_entry", "current_total"}, free
