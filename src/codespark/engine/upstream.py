"""An OpenAI-compatible upstream: codex traffic to vLLM, llama-server or a hosted API.

Every call goes through the guard, here, so no caller can forget it: the user
text in the payload (messages, prompt, stop strings) is redacted before the
request is built, and placeholders are restored in the answer as it streams
back.  The mapping lives in one ``Redactor`` per call.

``start`` waits for the response headers (retrying connection errors, 429 and
5xx with exponential backoff) before it returns, so a caller can still fall
back to a local engine when the provider is down.  After a failure the
provider is skipped for ``cooldown_s``.  The answer is read as a stream and
turned into the engine's own events, so the HTTP layer formats upstream and
local answers the same way; closing the events closes the connection, which
cancels the upstream generation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Literal

import httpx

from codespark.config import UpstreamSettings
from codespark.engine.engine import Delta, Event, Finished, Timings
from codespark.errors import UpstreamError, UpstreamUnavailable
from codespark.guard.redactor import Redactor

Endpoint = Literal["chat/completions", "completions", "infill"]  # infill: llama-server's, at the server's root
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


class Upstream:
    """One provider, its HTTP client and its health."""

    def __init__(
        self,
        cfg: UpstreamSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        key = cfg.api_key()
        self._client = httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s, pool=cfg.connect_timeout_s),
            transport=transport,
        )
        self._sleep = sleep
        self.down_until = 0.0
        self.last_error = ""

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def cooldown_left(self) -> float:
        return max(0.0, self.down_until - time.monotonic())

    async def aclose(self) -> None:
        await self._client.aclose()

    async def start(
        self, endpoint: Endpoint, payload: dict[str, Any], on_redacted: Callable[[dict[str, int]], None] | None = None
    ) -> AsyncGenerator[Event, None]:
        """Redact ``payload``, send it, and return the answer's events (restored) once the provider answers.

        Raises ``UpstreamUnavailable`` if the provider cannot be reached, and
        ``UpstreamError`` if it refuses the request.
        """
        redactor = Redactor()
        body = redact_payload(payload, redactor)
        body.update(model=self.cfg.model, stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()
        response = await self._open(endpoint, body)
        if on_redacted is not None and redactor.count:
            on_redacted(redactor.kinds())
        return self._events(response, endpoint, redactor, started)

    def _url(self, endpoint: Endpoint) -> str:
        if endpoint == "infill":
            return self.cfg.base_url.rstrip("/").removesuffix("/v1") + "/infill"
        return endpoint

    async def _open(self, endpoint: Endpoint, body: dict[str, Any]) -> httpx.Response:
        error = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                await self._sleep(0.25 * 2 ** (attempt - 1))
            request = self._client.build_request("POST", self._url(endpoint), json=body)
            try:
                # A provider that accepts the connection and never answers must not hold the request for the
                # whole read timeout: the response headers are due within connect_timeout_s (streams send them
                # before the first token).
                response = await asyncio.wait_for(
                    self._client.send(request, stream=True), timeout=self.cfg.connect_timeout_s
                )
            except TimeoutError:
                error = f"no response from {self.cfg.base_url} within {self.cfg.connect_timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__} connecting to {self.cfg.base_url}"
                continue
            if response.status_code < 400:
                self.last_error = ""
                return response
            detail = _error_message(await response.aread())
            await response.aclose()
            if response.status_code not in _RETRYABLE:
                status = response.status_code
                raise UpstreamError(f"Upstream {self.name!r} refused the request (HTTP {status}): {detail}")
            error = f"HTTP {response.status_code}: {detail}"
        self.down_until = time.monotonic() + self.cfg.cooldown_s
        self.last_error = error
        raise UpstreamUnavailable(f"Upstream {self.name!r} is unavailable ({error}).")

    async def _events(
        self, response: httpx.Response, endpoint: Endpoint, redactor: Redactor, started: float
    ) -> AsyncGenerator[Event, None]:
        restorer = redactor.stream()
        calls = _CallsAsText()
        parts: list[str] = []
        finish = "stop"
        usage: dict[str, Any] = {}
        first: float | None = None
        try:
            async with aclosing(_sse_data(response)) as lines:
                async for data in lines:
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise UpstreamError(f"Upstream {self.name!r} failed mid-answer: {_error_message(data)}")
                    usage = chunk.get("usage") or usage
                    if endpoint == "infill":  # llama-server: {"content": ..., "stop": ...}, counts on the last
                        usage = _infill_usage(chunk) or usage
                        chunk = {"choices": [{"text": chunk.get("content") or "", "finish_reason": None}]}
                    for choice in chunk.get("choices") or []:
                        piece = _choice_text(choice, endpoint) + calls.feed(choice)
                        finish = choice.get("finish_reason") or finish
                        text = restorer.feed(piece) if piece else ""
                        if text:
                            first = first if first is not None else time.perf_counter()
                            parts.append(text)
                            yield Delta(text)
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            raise UpstreamError(f"Upstream {self.name!r} broke off the answer ({type(exc).__name__}).") from exc
        finally:
            await response.aclose()
        tail = restorer.feed(calls.close()) + restorer.flush()
        if tail:
            parts.append(tail)
            yield Delta(tail)
        ended = time.perf_counter()
        ttft = ((first if first is not None else ended) - started) * 1000
        details = usage.get("prompt_tokens_details") or {}
        timings = Timings(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or len(parts)),
            prefill_ms=ttft,
            ttft_ms=ttft,
            decode_ms=(ended - (first or ended)) * 1000,
        )
        yield Finished("".join(parts), "length" if finish == "length" else "stop", timings)


def redact_payload(payload: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """A copy of an OpenAI request body with every user-text field redacted."""
    body = dict(payload)
    if "messages" in body:
        body["messages"] = [_redact_message(m, redactor) for m in body["messages"]]
    for key in ("prompt", "suffix", "input_prefix", "input_suffix"):
        if isinstance(body.get(key), str):
            body[key] = redactor.redact(body[key])
        elif isinstance(body.get(key), list):
            body[key] = [redactor.redact(p) if isinstance(p, str) else p for p in body[key]]
    if isinstance(body.get("input_extra"), list):  # llama-server infill: context files
        body["input_extra"] = [
            {**e, "text": redactor.redact(e["text"])} if isinstance(e, dict) and isinstance(e.get("text"), str) else e
            for e in body["input_extra"]
        ]
    stop = body.get("stop")
    if isinstance(stop, str):
        body["stop"] = redactor.redact(stop)
    elif isinstance(stop, list):
        body["stop"] = [redactor.redact(s) for s in stop]
    return body


def _redact_message(message: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    out = dict(message)
    content = out.get("content")
    if isinstance(content, str):
        out["content"] = redactor.redact(content)
    elif isinstance(content, list):
        out["content"] = [
            {**part, "text": redactor.redact(part["text"])} if isinstance(part.get("text"), str) else part
            for part in content
        ]
    if isinstance(out.get("name"), str):
        out["name"] = redactor.redact(out["name"])
    if isinstance(out.get("tool_calls"), list):  # earlier calls' arguments are user text too
        out["tool_calls"] = [_redact_call(c, redactor) for c in out["tool_calls"]]
    return out


def _redact_call(call: Any, redactor: Redactor) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": redactor.redact(function["arguments"])}}


class _CallsAsText:
    """An upstream's streamed ``tool_calls`` written as the local model writes calls
    (``<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>``), so one parser (``tools.ToolCallParser``)
    reads both, and the guard restores placeholders in arguments as in any other text."""

    def __init__(self) -> None:
        self.index: int | None = None
        self.arguments = 0

    def feed(self, choice: dict[str, Any]) -> str:
        out: list[str] = []
        for call in (choice.get("delta") or choice.get("message") or {}).get("tool_calls") or []:
            function = call.get("function") or {}
            if call.get("index", self.index) != self.index or self.index is None or "name" in function:
                out.append(self.close())
                self.index, self.arguments = call.get("index", 0), 0
                out.append(f'<tool_call>\n{{"name": {json.dumps(function.get("name") or "")}, "arguments": ')
            piece = function.get("arguments") or ""
            self.arguments += len(piece)
            out.append(piece)
        return "".join(out)

    def close(self) -> str:
        if self.index is None:
            return ""
        self.index = None
        return ("{}" if not self.arguments else "") + "}\n</tool_call>"


def _infill_usage(chunk: dict[str, Any]) -> dict[str, Any]:
    if not chunk.get("stop"):
        return {}
    return {"prompt_tokens": chunk.get("tokens_evaluated", 0), "completion_tokens": chunk.get("tokens_predicted", 0),
            "prompt_tokens_details": {"cached_tokens": chunk.get("tokens_cached", 0)}}  # fmt: skip


def _choice_text(choice: dict[str, Any], endpoint: Endpoint) -> str:
    if endpoint in ("completions", "infill"):
        return str(choice.get("text") or "")
    delta = choice.get("delta") or choice.get("message") or {}
    return str(delta.get("content") or "")


async def _sse_data(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The ``data:`` payloads of an SSE stream, up to ``[DONE]``."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield data


def _error_message(raw: bytes | str) -> str:
    try:
        parsed = json.loads(raw)
        error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return text[:300]
