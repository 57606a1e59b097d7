"""Ollama-compatible routes, after Ollama's API reference: ``/api/generate``, ``/api/chat``, ``/api/tags``,
``/api/show``, ``/api/ps`` and ``/api/version``.

They are one more skin over the same services: a ``suffix`` is fill-in-the-middle on the spark path
(sessions, typed-ahead, the router), ``raw`` is a plain completion, and everything else is chat on
codex (tools and ``format`` included).  Streams are NDJSON, and ``stream`` defaults to true, as in Ollama.
The models answer to Ollama-style names (``qwen2.5-coder:1.5b``) as well as ``spark``/``codex``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from codespark import __version__
from codespark.engine import chat, remote_fim
from codespark.engine.engine import Engine, Finished
from codespark.engine.fim import FimRequest
from codespark.engine.tools import parse_tools
from codespark.errors import InvalidRequestError
from codespark.models import cards
from codespark.server.deps import Caller, State
from codespark.server.ollama_protocol import (
    ChatChunk,
    ChatRequest,
    GenerateChunk,
    GenerateRequest,
    MessageOut,
    Options,
    ShowRequest,
    ToolCallFunction,
    ToolCallOut,
    durations,
    response_format,
)
from codespark.server.respond import respond
from codespark.services.chat import ChatCall
from codespark.services.fim import FimCall
from codespark.services.state import AppState

router = APIRouter()
log = logging.getLogger("codespark.server")

# The Ollama release whose API these routes follow; clients that check /api/version compare against it.
OLLAMA_API_VERSION = "0.12.0"


def _max_tokens(state: AppState, options: Options, default: int | None) -> int | None:
    requested = options.requested_tokens()
    return default if requested is None else state.settings.check_max_tokens(requested, "options.num_predict")


def _check_ctx(options: Options, engine: Engine) -> None:
    if options.num_ctx is not None and options.num_ctx > engine.n_ctx:
        log.info("options.num_ctx=%d is above the engine's context (%d); using %d", options.num_ctx, engine.n_ctx,
                 engine.n_ctx)  # fmt: skip


def _reason(result: Finished) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _ignored(endpoint: str, body: GenerateRequest | ChatRequest) -> None:
    body.log_unknown(endpoint)
    for name in ("context", "think"):
        if getattr(body, name, None) not in (None, "", []):
            log.info("%s: ignoring %s (codespark applies the model's own template and keeps its own KV cache)",
                     endpoint, name)  # fmt: skip
    extra = sorted((body.options.model_extra or {}).keys())
    if extra:
        log.info("%s: ignoring options %s", endpoint, ", ".join(extra))


def _no_images(images: list[str] | None) -> None:
    if images:
        raise InvalidRequestError("These models read text only; send no images.", param="images")


@router.post("/api/generate", response_model=None)
async def generate(body: GenerateRequest, request: Request, state: State, who: Caller) -> Response:
    _ignored("/api/generate", body)
    _no_images(body.images)
    options, name = body.options, body.model
    # Tabby's ollama/completion sends template "{{ .Prompt }}": the prompt as it is, i.e. raw.
    raw = body.raw or (body.template or "").replace(" ", "") == "{{.Prompt}}"
    fim = FimRequest(body.prompt, body.suffix) if body.suffix is not None else None
    if fim is None and raw:
        fim = remote_fim.parse_prompt(body.prompt)  # a FIM prompt the client wrote (Tabby's prompt_template)
    if not body.prompt and body.suffix is None:  # Ollama's "load the model" request
        state.router.pinned(name)  # a 404 for a model that is not here
        return JSONResponse(GenerateChunk(model=name, response="", done=True, done_reason="load").model_dump())
    if fim is not None:
        answer = await state.fim.complete(
            FimCall(
                fim,
                options.to_sampling_params(_max_tokens(state, options, state.settings.default_fim_max_tokens) or 0),
                options.stops(),
                name,
                caller=who,
                modes=True,
            )
        )
        decision, events = answer.decision, answer.events
    elif raw:
        max_tokens = _max_tokens(state, options, None)
        params = options.to_sampling_params(0)
        decision, events = state.completion.complete(body.prompt, params, max_tokens, options.stops(), name, True)
    else:
        system = [chat.Message("system", body.system)] if body.system else []
        decision, events = await state.chat.chat(
            ChatCall(
                messages=[*system, chat.Message("user", body.prompt)],
                params=options.to_sampling_params(0),
                max_tokens=_max_tokens(state, options, None),
                stops=options.stops(),
                model=name,
                response_format=response_format(body.format),
                modes=True,
            )
        )
    _check_ctx(options, decision.engine)

    def final(result: Finished) -> GenerateChunk:
        return GenerateChunk(model=name, response=result.text, done=True, done_reason=_reason(result),
                             **durations(result.timings))  # fmt: skip

    return await respond(
        request,
        decision,
        events,
        stream=body.stream,
        final=final,
        on_delta=lambda piece: GenerateChunk(model=name, response=piece),
        on_finish=lambda result: [
            GenerateChunk(model=name, response="", done=True, done_reason=_reason(result), **durations(result.timings))
        ],
        ollama=True,
    )


@router.post("/api/chat", response_model=None)
async def chat_route(body: ChatRequest, request: Request, state: State) -> Response:
    _ignored("/api/chat", body)
    for m in body.messages:
        _no_images(m.images)
    options, name = body.options, body.model
    if not body.messages:  # Ollama's "load the model" request
        state.router.pinned(name)
        message = MessageOut(content="")
        return JSONResponse(ChatChunk(model=name, message=message, done=True, done_reason="load").model_dump())
    tools = parse_tools(body.tools or [])
    decision, events = await state.chat.chat(
        ChatCall(
            messages=[m.to_message() for m in body.messages],
            params=options.to_sampling_params(0),
            max_tokens=_max_tokens(state, options, None),
            stops=options.stops(),
            model=name,
            tools=tools,
            tool_choice="auto" if tools else "none",
            response_format=response_format(body.format),
            modes=True,
        )
    )
    _check_ctx(options, decision.engine)

    def calls(result: Finished) -> list[ToolCallOut] | None:
        if not result.tool_calls:
            return None
        return [ToolCallOut(function=ToolCallFunction(name=c.name, arguments=_object(c.arguments)))
                for c in result.tool_calls]  # fmt: skip

    def final(result: Finished) -> ChatChunk:
        message = MessageOut(content=result.text, tool_calls=calls(result))
        return ChatChunk(model=name, message=message, done=True, done_reason=_reason(result),
                         **durations(result.timings))  # fmt: skip

    def finish(result: Finished) -> list[ChatChunk]:
        """Ollama sends a call whole, in a chunk of its own, before the final one."""
        found = calls(result)
        last = ChatChunk(model=name, message=MessageOut(content=""), done=True, done_reason=_reason(result),
                         **durations(result.timings))  # fmt: skip
        return [ChatChunk(model=name, message=MessageOut(content="", tool_calls=found)), last] if found else [last]

    return await respond(
        request,
        decision,
        events,
        stream=body.stream,
        final=final,
        on_delta=lambda piece: ChatChunk(model=name, message=MessageOut(content=piece)),
        on_finish=finish,
        ollama=True,
    )


def _object(arguments: str) -> dict[str, Any]:
    """Ollama sends arguments as an object; arguments that are not a JSON object are kept as ``{"raw": ...}``."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {"raw": arguments}
    return value if isinstance(value, dict) else {"raw": arguments}


@router.get("/api/tags")
async def tags(state: State) -> dict[str, Any]:
    return {"models": [cards.card(name, engine) for name, _, engine in cards.listed(state.engines)]}


@router.get("/api/ps")
async def ps(state: State) -> dict[str, Any]:
    """The loaded models: all of them, always (codespark loads its engines at start and keeps them)."""
    models = []
    for name, _, engine in cards.listed(state.engines):
        card = cards.card(name, engine)
        models.append({**card, "expires_at": "2318-01-01T00:00:00Z", "size_vram": 0,
                       "context_length": engine.n_ctx})  # fmt: skip
    return {"models": models}


# Ollama's clients read a model's template to see whether it can fill in the middle (Continue looks for
# ".Suffix").  This one describes what codespark does: with a suffix, the model's FIM prompt; without, its
# own chat template (the GGUF's), applied by codespark.
_TEMPLATE = (
    "{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>"
    "{{- else }}{{ .Prompt }}{{- end }}"
)


@router.post("/api/show")
async def show(body: ShowRequest, state: State) -> dict[str, Any]:
    body.log_unknown("/api/show")
    name = body.model or body.name
    if not name:
        raise InvalidRequestError("Send the model's name in 'model'.", param="model")
    decision = state.router.pinned(name) or state.router.deep(None)
    engine = state.engines.routes[decision.route]
    info = engine.backend.info
    return {
        "modelfile": f"# served by codespark {__version__}\nFROM {info.path}\n",
        "parameters": f"num_ctx {engine.n_ctx}",
        "template": _TEMPLATE,
        "chat_template": info.chat_template or chat.CHATML,
        "details": cards.details(engine),
        "model_info": {
            "general.architecture": "qwen2",
            "general.basename": info.model_id,
            "qwen2.context_length": info.n_ctx_train,
        },
        "capabilities": ["completion", "insert", "tools"],
        "modified_at": cards.file_info(engine)[1],
    }


class PullRequest(ShowRequest):
    stream: bool = True


@router.post("/api/pull", response_model=None)
async def pull(body: PullRequest, state: State) -> Response:
    """The models are installed with the server (``codespark models --pull``): pulling one that is here
    succeeds at once, as Ollama answers for a model it has; any other name is a 404."""
    body.log_unknown("/api/pull")
    name = body.model or body.name
    if not name:
        raise InvalidRequestError("Send the model's name in 'model'.", param="model")
    state.router.pinned(name)  # a 404 for a model that is not here
    if not body.stream:
        return JSONResponse({"status": "success"})
    lines = (json.dumps({"status": s}) + "\n" for s in ("pulling manifest", "verifying sha256 digest", "success"))
    return StreamingResponse(lines, media_type="application/x-ndjson")


@router.head("/", include_in_schema=False, response_class=PlainTextResponse)
@router.get("/", response_class=PlainTextResponse)
async def root() -> str:
    """What Ollama's root answers (clients ping it to see that a server is up), with where the APIs are."""
    return "Ollama is running (codespark: OpenAI API under /v1, Ollama API under /api, llama-server's /infill)"


@router.get("/api/version")
async def version() -> dict[str, str]:
    return {"version": OLLAMA_API_VERSION, "codespark": __version__}
