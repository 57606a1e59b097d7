"""A real OpenAI-compatible server on loopback that records the bytes it receives.

It answers chat requests by echoing the last user message back, one character
per SSE chunk, so any placeholder in it arrives split across chunks.  A request
with ``tools`` is answered with a call of the first tool whose arguments are
``{"text": <the message>}``, streamed OpenAI's way in 3-character pieces.
``/v1/completions`` and llama-server's ``/infill`` stream ``fim_answer`` (a FIM
upstream).  ``fail`` makes it answer with that HTTP status instead.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.helpers import free_port


@dataclass
class FakeUpstream:
    base_url: str
    received: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail: int | None = None
    fim_answer: str = "a + b"
    paths: list[str] = field(default_factory=list)

    def all_bytes(self) -> bytes:
        return b"\n".join(self.received)


def _app(state: FakeUpstream) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        raw = await request.body()
        state.received.append(raw)
        state.headers.append(dict(request.headers))
        if state.fail is not None:
            return JSONResponse({"error": {"message": "upstream says no", "type": "x"}}, status_code=state.fail)
        body = json.loads(raw)
        text = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")

        async def calls() -> AsyncIterator[bytes]:
            name = body["tools"][0]["function"]["name"]
            head = {"index": 0, "id": "call_up", "type": "function", "function": {"name": name, "arguments": ""}}
            yield _chunk({"tool_calls": [head]})
            arguments = json.dumps({"text": text})
            for i in range(0, len(arguments), 3):
                yield _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 3]}}]})
            yield _chunk({}, "tool_calls") + b"data: [DONE]\n\n"

        async def stream() -> AsyncIterator[bytes]:
            for ch in text:
                chunk = {"choices": [{"index": 0, "delta": {"content": ch}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(end)}\n\n".encode()
            usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(text), "total_tokens": 0}}
            yield f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()

        return StreamingResponse(calls() if body.get("tools") else stream(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _fim(request, lambda piece: {"choices": [{"index": 0, "text": piece, "finish_reason": None}]})

    @app.post("/infill")
    async def infill(request: Request) -> Response:
        return await _fim(request, lambda piece: {"content": piece, "stop": False})

    async def _fim(request: Request, shape: Callable[[str], dict[str, object]]) -> Response:
        raw = await request.body()
        state.received.append(raw)
        state.paths.append(request.url.path)
        if state.fail is not None:
            return JSONResponse({"error": {"message": "upstream says no", "type": "x"}}, status_code=state.fail)

        async def stream() -> AsyncIterator[bytes]:
            for i in range(0, len(state.fim_answer), 2):
                yield f"data: {json.dumps(shape(state.fim_answer[i : i + 2]))}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    return f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]})}\n\n".encode()


@contextmanager
def running_upstream() -> Iterator[FakeUpstream]:
    port = free_port()
    state = FakeUpstream(base_url=f"http://127.0.0.1:{port}/v1")
    server = uvicorn.Server(uvicorn.Config(_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=5)
