"""OpenAI-compatible routes: /v1/completions, /v1/chat/completions, /v1/models."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from codespark.context.retrieve import Snippet
from codespark.engine import remote_fim
from codespark.engine.engine import Finished, Timings, ToolCallDelta
from codespark.engine.fim import FimRequest
from codespark.engine.tools import parse_choice, parse_response_format, parse_tools
from codespark.errors import InvalidRequestError
from codespark.server.deps import Caller, State
from codespark.server.protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessageOut,
    Completion,
    CompletionChoice,
    CompletionRequest,
    FunctionCallOut,
    ModelCard,
    ModelList,
    PromptTokensDetails,
    ToolCallOut,
    Usage,
    debug_data,
    stop_strings,
)
from codespark.server.respond import respond
from codespark.server.sse import DONE
from codespark.services.chat import ChatCall
from codespark.services.fim import FimCall

router = APIRouter()


def usage(t: Timings) -> Usage:
    """OpenAI ``usage`` plus our ``timings`` extension."""
    return Usage(
        prompt_tokens=t.prompt_tokens,
        completion_tokens=t.completion_tokens,
        total_tokens=t.prompt_tokens + t.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=t.cached_tokens),
        timings=t.as_dict(),
    )


def _finish_reason(result: Finished) -> str:
    """OpenAI's ``stop``/``length``/``tool_calls``, and ``cancelled`` (an extension, as vLLM's ``abort``) for a
    superseded request, so a client can tell an answer cut short from a finished one."""
    return result.finish_reason if result.finish_reason in ("stop", "cancelled", "tool_calls") else "length"


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


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request, state: State, who: Caller) -> Response:
    body.log_unknown("/v1/completions")
    settings = state.settings
    text = _prompt_text(body)
    stops = stop_strings(body.stop)
    context: list[Snippet] = []
    # A FIM prompt the client wrote itself (Continue's openai provider templates one per model name) is FIM.
    written = remote_fim.parse_prompt(text) if body.segments is None and body.suffix is None else None
    if body.segments is None and body.suffix is None and written is None:
        max_tokens = settings.check_max_tokens(body.max_tokens) if body.max_tokens is not None else None
        decision, events = state.completion.complete(
            text, body.to_sampling_params(0), max_tokens, stops, body.model, honour_modes=True
        )
    else:
        if written is not None:
            fim = written
        elif body.segments is not None:
            fim = body.segments.to_fim()
        else:
            fim = FimRequest(text, body.suffix or "")
        max_tokens = settings.check_max_tokens(body.max_tokens if body.max_tokens is not None else 256)
        answer = await state.fim.complete(
            FimCall(
                fim,
                body.to_sampling_params(max_tokens),
                stops,
                body.model,
                caller=who,
                modes=True,
                session=body.user,
                budget_ms=body.max_latency_ms if body.segments is None else None,
            )
        )
        decision, events, context = answer.decision, answer.events, list(answer.context)
    route = decision.route
    ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    echo = text if body.echo and body.segments is None and written is None else ""

    def chunk(piece: str, finish: str | None, usage_: Usage | None = None) -> Completion:
        choices = [CompletionChoice(text=piece, finish_reason=finish)] if usage_ is None else []
        return Completion(id=ident, created=created, model=route, choices=choices, usage=usage_)

    def final(result: Finished) -> Completion:
        payload = chunk(echo + result.text, _finish_reason(result))
        payload.usage = usage(result.timings)
        if body.wants_context():
            payload.debug_data = debug_data(context, result.monitor_trail)
        return payload

    def finish(result: Finished) -> list[Completion]:
        last = [chunk("", _finish_reason(result))]
        return [*last, chunk("", None, usage(result.timings))] if include_usage else last

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await respond(
        request,
        decision,
        events,
        stream=body.stream,
        final=final,
        on_delta=lambda piece: chunk(piece, None),
        on_finish=finish,
        done_marker=DONE,
        opening=chunk(echo, None) if echo else None,
    )


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


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, state: State) -> Response:
    body.log_unknown("/v1/chat/completions")
    if body.logprobs:
        raise InvalidRequestError("logprobs are not supported by this server.", param="logprobs")
    requested = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    if requested is not None:
        param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        state.settings.check_max_tokens(requested, param)
    tools = parse_tools(body.tools or [])
    decision, events = await state.chat.chat(
        ChatCall(
            messages=[m.to_message() for m in body.messages],
            params=body.to_sampling_params(0),
            max_tokens=requested,
            stops=stop_strings(body.stop),
            model=body.model,
            context=[(f.filename, f.text) for f in body.context],
            repo=body.repo,
            upstream_options=body.model_dump(include=_UPSTREAM_CHAT_FIELDS, exclude_none=True),
            tools=tools,
            tool_choice=parse_choice(body.tool_choice, tools),
            parallel_tool_calls=body.parallel_tool_calls,
            response_format=parse_response_format(body.response_format),
            modes=True,
        )
    )
    route = decision.route
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(
        delta: ChatDelta, finish: str | None, usage_: Usage | None = None, checks: tuple[str, ...] = ()
    ) -> ChatCompletionChunk:
        choices = [ChatChunkChoice(delta=delta, finish_reason=finish)] if usage_ is None else []
        return ChatCompletionChunk(
            id=ident, created=created, model=route, choices=choices, usage=usage_, codespark_checks=list(checks) or None
        )

    def final(result: Finished) -> ChatCompletion:
        calls = [
            ToolCallOut(id=c.id, type="function", function=FunctionCallOut(name=c.name, arguments=c.arguments))
            for c in result.tool_calls
        ]
        content = (result.text or None) if calls else result.text  # OpenAI: null content beside tool calls
        message = ChatMessageOut(content=content, tool_calls=calls or None)
        return ChatCompletion(
            id=ident,
            created=created,
            model=route,
            choices=[ChatChoice(message=message, finish_reason=_finish_reason(result))],
            usage=usage(result.timings),
            codespark_checks=list(result.checks) or None,
        )

    def finish(result: Finished) -> list[ChatCompletionChunk]:
        last = [chunk(ChatDelta(), _finish_reason(result), checks=result.checks)]
        return [*last, chunk(ChatDelta(), None, usage(result.timings))] if include_usage else last

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await respond(
        request,
        decision,
        events,
        stream=body.stream,
        final=final,
        on_delta=lambda piece: chunk(ChatDelta(content=piece), None),
        on_finish=finish,
        done_marker=DONE,
        opening=chunk(ChatDelta(role="assistant", content=""), None),
        on_tool=lambda d: chunk(ChatDelta(tool_calls=[tool_call_delta(d)]), None),
    )


def tool_call_delta(d: ToolCallDelta) -> ToolCallOut:
    """OpenAI's streamed tool call: ``index``, ``id``, ``type`` and ``function.name`` first, then arguments."""
    if d.id is not None:
        return ToolCallOut(index=d.index, id=d.id, type="function", function=FunctionCallOut(name=d.name, arguments=""))
    return ToolCallOut(index=d.index, function=FunctionCallOut(arguments=d.arguments))


@router.get("/v1/models")
async def list_models(state: State) -> ModelList:
    engines = state.engines
    created = int(state.started)
    return ModelList(
        data=[
            ModelCard(
                id=route,
                created=created,
                codespark={
                    "model": engine.backend.info.model_id,
                    "n_ctx": engine.backend.info.n_ctx,
                    "aliases": sorted(a for a, r in engines.aliases.items() if r == route),
                },
            )
            for route, engine in engines.routes.items()
        ]
    )
