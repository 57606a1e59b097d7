"""``POST /v1/sql``: a question about a configured database in, checked SQL, explanation and rows out."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codespark.server.deps import State
from codespark.server.protocol import _Request
from codespark.sql.assistant import Options

router = APIRouter()


class SqlRequest(_Request):
    """codespark: the SQL assistant.  Read-only: statements that change data are refused over HTTP."""

    question: str = Field(min_length=1, description="The question, in plain language.")
    db: str | None = Field(
        None,
        description="A database configured in the server's [[databases]] (its name, not a URL); default: "
        "the one marked default.",
    )
    model: str | None = Field(None, description="Engine: codex (default) or spark.")
    max_rows: int = Field(100, ge=1, le=10_000, description="Rows to return at most.")
    explain_only: bool = Field(False, description="Generate and validate, but do not run.")
    repair: bool = Field(True, description="Feed validation errors back to the model (up to 3 rounds).")
    refresh_schema: bool = Field(False, description="Introspect the database again instead of the cached schema.")


class SqlResponse(BaseModel):
    question: str
    sql: str
    explanation: str
    valid: bool
    error: str | None
    columns: list[str]
    rows: list[list[object]]
    truncated: bool
    tables_in_prompt: list[str]
    validation: list[dict[str, object]]
    rounds: int
    timings: dict[str, float]
    model: str


class DatabaseInfo(BaseModel):
    name: str
    description: str
    dialect: str
    default: bool


class DatabaseList(BaseModel):
    data: list[DatabaseInfo]


@router.post("/v1/sql")
async def sql(body: SqlRequest, state: State) -> SqlResponse:
    body.log_unknown("/v1/sql")
    options = Options(repair=body.repair, execute=not body.explain_only, max_rows=body.max_rows)
    answer, route = await state.sql.ask(body.question, body.db, options, body.model, refresh=body.refresh_schema)
    return SqlResponse(**answer.as_dict(), model=route)


@router.get("/v1/sql/databases")
async def databases(state: State) -> DatabaseList:
    """The databases requests may name (URLs stay on the server; passwords are never shown)."""
    default = state.sql.default_name()
    return DatabaseList(
        data=[
            DatabaseInfo(
                name=d.name, description=d.description, dialect=d.url.split(":", 1)[0], default=d.name == default
            )
            for d in state.sql.databases.values()
        ]
    )
