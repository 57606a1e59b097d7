"""Run a prepared generation for an HTTP request: to the end, or as an SSE stream.

Both paths cancel the engine when the client goes away: streaming through the
response task being cancelled, non-streaming by watching for ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from fastapi import Request

from codespark.engine.backend import CancelToken
from codespark.engine.engine import Delta, Engine, Finished, Prepared
from codespark.errors import CodesparkError
from codespark.server.sse import event

log = logging.getLogger("codespark.server")


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def run_to_end(request: Request, engine: Engine, job: Prepared) -> Finished:
    """Generate the whole answer; cancel the engine if the client disconnects first."""
    cancel = CancelToken()
    work = asyncio.create_task(engine.run(job, cancel))
    gone = asyncio.create_task(_wait_disconnect(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            log.info("client disconnected; cancelling generation")
            cancel.cancel("client gone")
        return await work
    finally:
        gone.cancel()


def timing_headers(route: str, result: Finished) -> dict[str, str]:
    t = result.timings
    return {
        "X-Codespark-Engine": route,
        "X-Codespark-Prompt-Tokens": str(t.prompt_tokens),
        "X-Codespark-Cached-Tokens": str(t.cached_tokens),
        "X-Codespark-TTFT-Ms": f"{t.ttft_ms:.1f}",
        "X-Codespark-Decode-Tps": f"{t.decode_per_second:.2f}",
    }


async def sse(
    engine: Engine,
    job: Prepared,
    on_delta: Callable[[str], object | None],
    on_finish: Callable[[Finished], list[object]],
    done_marker: bytes | None,
    opening: object | None = None,
) -> AsyncIterator[bytes]:
    """Stream a generation as SSE events built by the two formatters.

    ``on_delta`` returns the payload for a piece of text (or None to skip);
    ``on_finish`` returns the final payloads.  An engine error after the
    stream started is sent as an OpenAI error event.  ``opening`` is sent
    first (the chat role chunk).
    """
    if opening is not None:
        yield event(opening)
    try:
        async with aclosing(engine.stream(job)) as events:
            async for item in events:
                if isinstance(item, Delta):
                    payload = on_delta(item.text)
                    if payload is not None:
                        yield event(payload)
                else:
                    for payload in on_finish(item):
                        yield event(payload)
    except CodesparkError as exc:
        yield event({"error": {"message": exc.message, "type": exc.error_type, "param": exc.param, "code": exc.code}})
    if done_marker is not None:
        yield done_marker
