"""Answer an HTTP request from generation events: to the end as JSON, or as an SSE stream (``respond``).

Both paths stop the engine when the client goes away: a stream because its
response task is cancelled, a plain request because we watch for
``http.disconnect`` and cancel the task consuming the events.  Cancelling that
task cancels the engine within one token (see ``Engine.stream``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from codespark.engine.engine import Delta, Event, Finished, ToolCallDelta
from codespark.errors import CodesparkError, EngineError
from codespark.router import Decision
from codespark.server.sse import event, ndjson

log = logging.getLogger("codespark.server")


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _last(events: AsyncGenerator[Event, None]) -> Finished:
    async with aclosing(events) as stream:
        async for item in stream:
            if isinstance(item, Finished):
                return item
    raise EngineError("Generation ended without a result.")


async def run_to_end(request: Request, events: AsyncGenerator[Event, None]) -> Finished | None:
    """Consume ``events`` to the end; None if the client disconnected first (generation cancelled)."""
    work = asyncio.create_task(_last(events))
    gone = asyncio.create_task(_wait_disconnect(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            log.info("client disconnected; cancelling generation")
            work.cancel()
            try:
                await work
            except asyncio.CancelledError:
                return None
        return work.result()
    finally:
        gone.cancel()


def route_headers(decision: Decision) -> dict[str, str]:
    headers = {"X-Codespark-Engine": decision.route, "X-Codespark-Route-Reason": decision.reason}
    if decision.fallback:
        headers["X-Codespark-Fallback"] = decision.fallback
    return headers


def timing_headers(decision: Decision, result: Finished) -> dict[str, str]:
    t = result.timings
    return {
        **route_headers(decision),
        "X-Codespark-Prompt-Tokens": str(t.prompt_tokens),
        "X-Codespark-Cached-Tokens": str(t.cached_tokens),
        "X-Codespark-TTFT-Ms": f"{t.ttft_ms:.1f}",
        "X-Codespark-Decode-Tps": f"{t.decode_per_second:.2f}",
        "X-Codespark-Typed-Ahead": "1" if t.typed_ahead else "0",
    }


async def sse(
    events: AsyncGenerator[Event, None],
    on_delta: Callable[[str], BaseModel | None],
    on_finish: Callable[[Finished], Sequence[BaseModel]],
    done_marker: bytes | None,
    opening: BaseModel | None = None,
    on_tool: Callable[[ToolCallDelta], BaseModel | None] | None = None,
    ollama: bool = False,
) -> AsyncIterator[bytes]:
    """Stream events as SSE payloads built by the formatters (NDJSON lines for Ollama's API).

    ``opening`` is sent first (the chat role chunk).  An engine error after the
    stream started is sent as an OpenAI error event (Ollama's ``{"error": ...}`` line).
    """
    frame = ndjson if ollama else event
    if opening is not None:
        yield frame(opening)
    try:
        async with aclosing(events) as stream:
            async for item in stream:
                if isinstance(item, Delta):
                    payload = on_delta(item.text)
                    if payload is not None:
                        yield frame(payload)
                elif isinstance(item, ToolCallDelta):
                    payload = on_tool(item) if on_tool is not None else None
                    if payload is not None:
                        yield frame(payload)
                else:
                    for payload in on_finish(item):
                        yield frame(payload)
    except CodesparkError as exc:
        error = {"message": exc.message, "type": exc.error_type, "param": exc.param, "code": exc.code}
        yield frame({"error": exc.message} if ollama else {"error": error})
    if done_marker is not None:
        yield done_marker


async def respond(
    request: Request,
    decision: Decision,
    events: AsyncGenerator[Event, None],
    *,
    stream: bool,
    final: Callable[[Finished], BaseModel],
    on_delta: Callable[[str], BaseModel | None],
    on_finish: Callable[[Finished], Sequence[BaseModel]],
    done_marker: bytes | None = None,
    opening: BaseModel | None = None,
    on_tool: Callable[[ToolCallDelta], BaseModel | None] | None = None,
    ollama: bool = False,
) -> Response:
    """The one tail of every generation route: an SSE (or, for Ollama's API, NDJSON) stream, or the ``final``
    JSON (499 if the client left)."""
    if stream:
        return StreamingResponse(
            sse(events, on_delta, on_finish, done_marker, opening, on_tool, ollama),
            media_type="application/x-ndjson" if ollama else "text/event-stream",
            headers={**route_headers(decision), "Cache-Control": "no-cache"},
        )
    result = await run_to_end(request, events)
    if result is None:
        return Response(status_code=499)
    return JSONResponse(final(result).model_dump(mode="json"), headers=timing_headers(decision, result))
