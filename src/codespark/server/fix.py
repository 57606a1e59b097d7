"""``POST /v1/fix``: repair a configured workspace until its tests pass, streamed as SSE events.

Requests name a workspace from the settings (``[[workspaces]]``), never a path, and cannot choose the
test command: the server runs only the tests its configuration names or detects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from codespark.agent.loop import Event, FixOptions
from codespark.agent.sandbox import Limits
from codespark.errors import CodesparkError
from codespark.server.deps import State
from codespark.server.errors import error_body
from codespark.server.protocol import _Request
from codespark.server.sse import DONE, event

router = APIRouter()


class FixBody(_Request):
    """codespark: the self-healing loop over a configured workspace."""

    workspace: str = Field(description="A workspace from the server's [[workspaces]] (its name, not a path).")
    engine: str = Field("auto", description="auto, codex, spark or upstream.")
    rounds: int = Field(3, ge=1, le=20)
    candidates: int = Field(6, ge=1, le=16)
    mutants: int = Field(80, ge=0, le=1000, description="Single-token repairs tried before the model (0: none).")
    apply: bool = Field(False, description="Put the fix into the tree (only where the workspace allows it).")
    stream: bool = Field(True, description="SSE events as the run goes (false: the final event as JSON).")


class WorkspaceInfo(BaseModel):
    name: str
    test_cmd: str | None
    allow_apply: bool


class WorkspaceList(BaseModel):
    data: list[WorkspaceInfo]


def _sse(item: Event) -> bytes:
    return f"event: {item.kind}\n".encode() + event(item.as_dict())


@router.post("/v1/fix", response_model=None)
async def fix(body: FixBody, state: State) -> Response:
    body.log_unknown("/v1/fix")
    options = FixOptions(rounds=body.rounds, candidates=body.candidates, mutants=body.mutants,
                         limits=Limits(timeout_s=300))  # fmt: skip
    events = state.fix.start(state.fix.for_workspace(body.workspace, body.engine, body.apply, options))
    if not body.stream:
        last: dict[str, Any] = {}
        async for item in events:
            if item.kind in ("finished", "applied"):
                last[item.kind] = item.as_dict()
        return JSONResponse({**last.get("finished", {}), "applied": last.get("applied")})

    async def body_bytes() -> AsyncIterator[bytes]:
        try:
            async for item in events:
                yield _sse(item)
        except CodesparkError as exc:
            yield event(error_body(exc.message, exc.error_type, exc.param, exc.code))
        yield DONE

    return StreamingResponse(body_bytes(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/v1/fix/workspaces")
async def workspaces(state: State) -> WorkspaceList:
    """The workspaces requests may name (their paths stay on the server)."""
    return WorkspaceList(
        data=[
            WorkspaceInfo(name=w.name, test_cmd=w.test_cmd, allow_apply=w.allow_apply)
            for w in state.settings.workspaces
        ]
    )
