"""``POST /v1/migrate``: migrate a configured workspace module by module, streamed as SSE events.

As ``/v1/fix``: requests name a workspace from the settings (``[[workspaces]]``), never a path, and its
test command is the configuration's.  The run's blocking work (test runs) happens in worker threads; the
model's repairs (the fix loop, for py2-to-py3) use the server's engines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field

from codespark.errors import CodesparkError
from codespark.migrate.run import Event
from codespark.server.deps import State
from codespark.server.errors import error_body
from codespark.server.protocol import _Request
from codespark.server.sse import DONE, event

router = APIRouter()


class MigrateBody(_Request):
    """codespark: a verified migration of a configured workspace."""

    workspace: str = Field(description="A workspace from the server's [[workspaces]] (its name, not a path).")
    recipe: str = Field(description="py2-to-py3 or unittest-to-pytest.")
    modules: str | None = Field(None, description="Only paths matching this glob.")
    apply: bool = Field(False, description="Put the migration into the tree (only where the workspace allows it).")
    engine: str = Field("auto", description="Who repairs what the fixers leave failing: auto, codex, spark, "
                        "upstream, or none (the deterministic rewrites only).")  # fmt: skip
    stream: bool = Field(True, description="SSE events as the run goes (false: the final event as JSON).")


def _sse(item: Event) -> bytes:
    return f"event: {item.kind}\n".encode() + event(item.as_dict())


@router.post("/v1/migrate", response_model=None)
async def migrate(body: MigrateBody, state: State) -> Response:
    body.log_unknown("/v1/migrate")
    service = state.migrate
    request = service.for_workspace(body.workspace, body.recipe, body.modules, body.apply, body.engine)
    events = service.start(request)
    if not body.stream:
        return JSONResponse(await _final(events))

    async def body_bytes() -> AsyncIterator[bytes]:
        try:
            async for item in events:
                yield _sse(item)
        except CodesparkError as exc:
            yield event(error_body(exc.message, exc.error_type, exc.param, exc.code))
        yield DONE

    return StreamingResponse(body_bytes(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _final(events: AsyncIterator[Event]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    async for item in events:
        if item.kind in ("finished", "applied"):
            last[item.kind] = item.as_dict()
    return {**last.get("finished", {}), "applied": last.get("applied")}
