"""OpenAI-compatible routes: /v1/completions, /v1/chat/completions, /v1/models."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from codespark.engine import chat
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Engine, Event, Finished, GenerationRequest, Timings
from codespark.engine.fim import FimRequest
from codespark.engine.loader import Engines
from codespark.errors import InvalidRequestError
from codespark.guard.ignore import NeverSend
from codespark.router import Decision
from codespark.server.generation import route_headers, run_to_end, sse, timing_headers
from codespark.server.protocol import ChatCompletionRequest, CompletionRequest
from codespark.server.routing import (
    chat_repo_map,
    check_max_tokens,
    debug_data,
    deep_events,
    note_unknown_fields,
    observed,
    plan_fim,
    router_of,
    settings_of,
    tabby_fim,
)
from codespark.server.sse import DONE

router = APIRouter()


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > 16:
        raise InvalidRequestError("At most 16 stop sequences are allowed.", param="stop")
    return stops


def usage(t: Timings) -> dict[str, object]:
    """OpenAI ``usage`` plus our ``timings`` extension."""
    return {
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "total_tokens": t.prompt_tokens + t.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": t.cached_tokens},
        "timings": t.as_dict(),
    }


def _finish_reason(result: Finished) -> str:
    """OpenAI's ``stop``/``length``, and ``cancelled`` (an extension, as vLLM's ``abort``) for a superseded
    request, so a client can tell an answer cut short from a finished one."""
    return result.finish_reason if result.finish_reason in ("stop", "cancelled") else "length"


def _prompt_text(body: CompletionRequest) -> str:
    if body.prompt is None:
        if body.segments is not None:
            return body.segments.prefix
        raise InvalidRequestError("Send a prompt (or Tabby's segments).", param="prompt")
    if isinstance(body.prompt, list):
        if len(body.prompt) != 1:
            raise InvalidRequestError("Send exactly one prompt per request (n=1).", param="prompt")
        return body.prompt[0]
    return body.prompt


def _params(body: CompletionRequest | ChatCompletionRequest, max_tokens: int) -> SamplingParams:
    return SamplingParams(
        max_tokens=max(0, max_tokens),
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repeat_penalty=body.repeat_penalty,
        seed=body.seed,
    )


async def _completion_events(body: CompletionRequest, request: Request) -> tuple[Decision, AsyncGenerator[Event, None]]:
    settings = settings_of(request)
    router = router_of(request)
    text = _prompt_text(body)
    stops = _stops(body.stop)
    if body.segments is not None:
        max_tokens = check_max_tokens(settings, body.max_tokens if body.max_tokens is not None else 256)
        return await plan_fim(
            request, body.model, body.user, tabby_fim(body.segments), _params(body, max_tokens), stops, None, None
        )
    if body.suffix is None:
        decision = router.plain(body.model)
        engine = decision.engine
        if body.max_tokens is None:
            max_tokens = min(settings.max_tokens_limit, engine.n_ctx - engine.count_tokens(text))
        else:
            max_tokens = check_max_tokens(settings, body.max_tokens)
        job = engine.prepare(GenerationRequest(prompt=[text], params=_params(body, max_tokens), stops=stops))
        return decision, observed(request, decision, engine.stream(job))
    max_tokens = check_max_tokens(settings, body.max_tokens if body.max_tokens is not None else 256)
    return await plan_fim(
        request,
        body.model,
        body.user,
        FimRequest(prefix=text, suffix=body.suffix),
        _params(body, max_tokens),
        stops,
        None,
        body.max_latency_ms,
    )


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Response:
    note_unknown_fields(body, "/v1/completions")
    decision, events = await _completion_events(body, request)
    route = decision.route
    ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    echo = _prompt_text(body) if body.echo and body.segments is None else ""

    def chunk(text: str, finish: str | None) -> dict[str, object]:
        return {
            "id": ident,
            "object": "text_completion",
            "created": created,
            "model": route,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def finish(result: Finished) -> list[object]:
            out: list[object] = [chunk("", _finish_reason(result))]
            if include_usage:
                out.append({**chunk("", None), "choices": [], "usage": usage(result.timings)})
            return out

        return StreamingResponse(
            sse(events, lambda text: chunk(text, None), finish, DONE, opening=chunk(echo, None) if echo else None),
            media_type="text/event-stream",
            headers={**route_headers(decision), "Cache-Control": "no-cache"},
        )
    result = await run_to_end(request, events)
    if result is None:
        return Response(status_code=499)
    payload = chunk(echo + result.text, _finish_reason(result))
    payload["usage"] = usage(result.timings)
    if body.wants_context():
        payload["debug_data"] = debug_data(request)
    return JSONResponse(payload, headers=timing_headers(decision, result))


def _check_chat(body: ChatCompletionRequest, request: Request) -> None:
    if body.tools:
        raise InvalidRequestError("Tool calling is not supported by this server.", param="tools")
    if body.logprobs:
        raise InvalidRequestError("logprobs are not supported by this server.", param="logprobs")
    if body.max_completion_tokens is not None:
        check_max_tokens(settings_of(request), body.max_completion_tokens, "max_completion_tokens")
    elif body.max_tokens is not None:
        check_max_tokens(settings_of(request), body.max_tokens)


# The OpenAI chat fields an upstream gets; our extensions (top_k, min_p, …) stay here.
_UPSTREAM_CHAT_FIELDS = {
    "frequency_penalty",
    "logit_bias",
    "max_completion_tokens",
    "max_tokens",
    "presence_penalty",
    "seed",
    "stop",
    "temperature",
    "top_p",
}


def _messages(body: ChatCompletionRequest, never_send: NeverSend | None, repo_map: str) -> list[chat.Message]:
    """The request's messages, with the repo map and its context files (less the never-send ones) in the
    system message."""
    messages = [chat.Message(m.role if m.role != "developer" else "system", m.text()) for m in body.messages]
    files = [(f.filename, f.text) for f in body.context if never_send is None or not never_send.blocks(f.filename)]
    blocks = ([chat.repo_map_text(repo_map)] if repo_map else []) + ([chat.context_text(files)] if files else [])
    if not blocks:
        return messages
    block = "\n\n".join(blocks)
    if messages[0].role == "system":
        return [chat.Message("system", messages[0].content + "\n\n" + block), *messages[1:]]
    return [chat.Message("system", block), *messages]


def _upstream_payload(body: ChatCompletionRequest, request: Request) -> dict[str, object]:
    payload = body.model_dump(include=_UPSTREAM_CHAT_FIELDS, exclude_none=True)
    never_send: NeverSend = request.app.state.never_send
    messages = _messages(body, never_send, chat_repo_map(request, body.repo, body.messages))
    payload["messages"] = [{"role": m.role, "content": m.content} for m in messages]
    return payload


def _chat_job(body: ChatCompletionRequest, request: Request, engine: Engine) -> GenerationRequest:
    settings = settings_of(request)
    messages = _messages(body, None, chat_repo_map(request, body.repo, body.messages))
    prompt = chat.build_prompt(engine.backend.info, messages)
    requested = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    if requested is None:
        n_prompt = len(engine.tokenize_prompt(prompt))
        max_tokens = max(0, min(settings.max_tokens_limit, engine.n_ctx - n_prompt))
    else:
        param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        max_tokens = check_max_tokens(settings, requested, param)
    return GenerationRequest(prompt=prompt, params=_params(body, max_tokens), stops=_stops(body.stop))


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    note_unknown_fields(body, "/v1/chat/completions")
    _check_chat(body, request)

    def local(decision: Decision) -> AsyncGenerator[Event, None]:
        engine = decision.engine
        return engine.stream(engine.prepare(_chat_job(body, request, engine)))

    chosen = router_of(request).deep(body.model)
    payload = _upstream_payload(body, request) if chosen.upstream else {}
    decision, events = await deep_events(request, chosen, "chat/completions", payload, local)
    route = decision.route
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str], finish: str | None) -> dict[str, object]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": route,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def finish(result: Finished) -> list[object]:
            out: list[object] = [chunk({}, _finish_reason(result))]
            if include_usage:
                out.append({**chunk({}, None), "choices": [], "usage": usage(result.timings)})
            return out

        opening = chunk({"role": "assistant", "content": ""}, None)
        return StreamingResponse(
            sse(events, lambda text: chunk({"content": text}, None), finish, DONE, opening=opening),
            media_type="text/event-stream",
            headers={**route_headers(decision), "Cache-Control": "no-cache"},
        )
    result = await run_to_end(request, events)
    if result is None:
        return Response(status_code=499)
    payload = {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": route,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": None,
                "finish_reason": _finish_reason(result),
            }
        ],
        "usage": usage(result.timings),
    }
    return JSONResponse(payload, headers=timing_headers(decision, result))


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, object]:
    engines: Engines = request.app.state.engines
    created = int(request.app.state.started)
    data = []
    for route, engine in engines.routes.items():
        info = engine.backend.info
        data.append(
            {
                "id": route,
                "object": "model",
                "created": created,
                "owned_by": "codespark",
                "codespark": {
                    "model": info.model_id,
                    "n_ctx": info.n_ctx,
                    "aliases": sorted(a for a, r in engines.aliases.items() if r == route),
                },
            }
        )
    return {"object": "list", "data": data}
