"""Question in, checked SQL and its result out.

One round: show the model the schema (cut to the question's tables when it
is large) and the question, take the SQL it writes, and validate it (parse,
read-only, identifiers, EXPLAIN).  While it writes, the schema monitor masks tables and columns that
do not exist; after it, a column misspelled in only one possible way is fixed deterministically, and
the trail says so.  On failure, the precise error goes back to
the model as the next turn, for at most ``max_rounds`` rounds.  A query that
passes validation but fails when it runs is repaired the same way.  Nothing
runs that did not pass validation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codespark.engine import chat
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Engine, GenerationRequest
from codespark.engine.prompt import Prompt
from codespark.errors import DatabaseError, InvalidRequestError
from codespark.sql import prompts
from codespark.sql.database import Database, Rows
from codespark.sql.explain import explain
from codespark.sql.monitor import SqlMonitor
from codespark.sql.repair import repair_names
from codespark.sql.safety import parse, read_only_refusal
from codespark.sql.schema import Schema, render, select_tables
from codespark.sql.validate import Step, Validation, validate

LARGE_SCHEMA_TABLES = 50


@dataclass
class Options:
    """How one question is answered."""

    repair: bool = True
    max_rounds: int = 3
    execute: bool = True
    max_rows: int = 100
    allow_write: bool = False
    schema_budget_tokens: int = 2500
    style: str = "ddl"
    max_tokens: int = 320
    monitor: bool = True  # mask nonexistent tables and columns while the SQL is generated (sql/monitor.py)
    fix_names: bool = True  # rewrite an unambiguous misspelled or misplaced column before validating


@dataclass
class Answer:
    question: str
    sql: str = ""
    explanation: str = ""
    trail: list[Validation] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    rows: Rows | None = None
    error: str | None = None
    generate_ms: float = 0.0
    total_ms: float = 0.0
    masked_steps: int = 0

    @property
    def valid(self) -> bool:
        return bool(self.trail) and self.trail[-1].ok

    @property
    def rounds(self) -> int:
        return len(self.trail)

    def unknown_identifiers(self) -> list[str]:
        """Identifiers the model made up, over every round (each caught before anything ran)."""
        return [name for v in self.trail for name in v.unknown]

    def as_dict(self) -> dict[str, Any]:
        rows = self.rows
        return {
            "question": self.question,
            "sql": self.sql,
            "explanation": self.explanation,
            "valid": self.valid,
            "error": self.error,
            "columns": rows.columns if rows else [],
            "rows": [list(r) for r in rows.rows] if rows else [],
            "truncated": rows.truncated if rows else False,
            "tables_in_prompt": self.tables,
            "validation": [
                {"sql": v.sql, "ok": v.ok, "steps": [s.__dict__ for s in v.steps], "unknown_identifiers": v.unknown}
                for v in self.trail
            ],
            "rounds": self.rounds,
            "timings": {
                "generate_ms": round(self.generate_ms, 1),
                "total_ms": round(self.total_ms, 1),
                "mgd_masked_n": self.masked_steps,
            },
        }


def extract_sql(text: str) -> str:
    """The SQL of an answer that was started with ```sql: up to the closing fence, without a final ';'."""
    body = text.split(prompts.ANSWER_END, 1)[0]
    return body.strip().rstrip(";").strip()


class SqlAssistant:
    """Answers questions about one database with one engine."""

    def __init__(self, engine: Engine, db: Database, schema: Schema) -> None:
        self.engine = engine
        self.db = db
        self.schema = schema
        self._monitor = SqlMonitor(schema)

    def schema_text(self, question: str, options: Options) -> tuple[list[str], str]:
        tables: list[str] | None = None
        full = render(self.schema, style=options.style)
        if len(self.schema.tables) >= LARGE_SCHEMA_TABLES or len(full) / 3.5 > options.schema_budget_tokens:
            tables = select_tables(self.schema, question, options.schema_budget_tokens)
        shown = tables if tables is not None else [t.name for t in self.schema.tables]
        return shown, render(self.schema, tables, style=options.style) if tables is not None else full

    async def ask(
        self, question: str, options: Options | None = None, confirm: Callable[[str], bool] | None = None
    ) -> Answer:
        """Generate, validate, repair and (unless told not to) run the SQL for ``question``.

        ``confirm`` is asked before a statement that changes data runs (``allow_write`` only); without
        it, such a statement does not run.
        """
        opts = options or Options()
        started = time.perf_counter()
        answer = Answer(question)
        if not question.strip():
            raise InvalidRequestError("Ask a question, e.g. 'How many orders were placed in March?'", param="question")
        answer.tables, schema_text = self.schema_text(question, opts)
        kind = f"{self.schema.dialect} SQL statement" if opts.allow_write else f"{self.schema.dialect} SELECT query"
        messages = [
            chat.Message("system", prompts.SYSTEM.format(dialect=self.schema.dialect)),
            chat.Message(
                "user",
                prompts.QUESTION.format(dialect=self.schema.dialect, schema=schema_text, question=question, kind=kind),
            ),
        ]
        rounds = opts.max_rounds if opts.repair else 1
        for _ in range(rounds):
            sql = await self._generate(messages, opts, answer)
            notes: list[str] = []
            if opts.fix_names:
                sql, notes = repair_names(sql, self.schema)
            # Database work (EXPLAIN, the query) runs off the event loop: a server keeps serving meanwhile.
            check = await asyncio.to_thread(validate, sql, self.schema, self.db, allow_write=opts.allow_write)
            if notes:
                check.steps.insert(0, Step("names", True, "; ".join(notes)))
            answer.trail.append(check)
            answer.sql = sql
            if check.ok and opts.execute:
                failure = await asyncio.to_thread(self._run, answer, check, opts, confirm)
                if failure is None:
                    break
            elif check.ok:
                break
            messages += [
                chat.Message("assistant", prompts.ANSWER_OPENING + sql + "\n" + prompts.ANSWER_END),
                chat.Message("user", prompts.REPAIR.format(error=check.error or answer.error, kind=kind)),
            ]
        if answer.valid:
            answer.explanation = explain(parse(answer.sql, self.schema.dialect)[0], self.schema.dialect)
            if answer.rows is not None:
                answer.error = None
        else:
            answer.error = answer.trail[-1].error
        answer.total_ms = (time.perf_counter() - started) * 1000
        return answer

    def _run(
        self, answer: Answer, check: Validation, opts: Options, confirm: Callable[[str], bool] | None
    ) -> str | None:
        """Execute a validated statement; the error text if it failed (for a repair round)."""
        writes = read_only_refusal(parse(check.sql, self.schema.dialect)[0], check.sql) is not None
        if writes and (confirm is None or not confirm(check.sql)):
            answer.error = "Not run: the statement changes data and was not confirmed."
            return None
        try:
            answer.rows = self.db.run(check.sql, opts.max_rows)
        except DatabaseError as exc:
            check.steps.append(Step("execute", False, exc.message))
            answer.error = exc.message
            return exc.message
        check.steps.append(Step("execute", True, f"{len(answer.rows.rows)} row(s)"))
        return None

    async def _generate(self, messages: list[chat.Message], opts: Options, answer: Answer) -> str:
        prompt: Prompt = [*chat.build_prompt(self.engine.backend.info, messages), prompts.ANSWER_OPENING]
        request = GenerationRequest(
            prompt,
            SamplingParams(
                max_tokens=opts.max_tokens, temperature=0.0, monitor=self._monitor if opts.monitor else None
            ),
            stops=(prompts.ANSWER_END,),
        )
        started = time.perf_counter()
        result = await self.engine.run(request)
        answer.masked_steps += result.timings.masked_steps
        answer.generate_ms += (time.perf_counter() - started) * 1000
        return extract_sql(result.text)
