"""The chat pipeline: messages, the system block (repo map, context files), the upstream or the local
engine, and the fallback when the upstream cannot answer.

Never-send files are dropped from what goes upstream; the upstream backend redacts the rest
(``engine/upstream.py``), so no path here can skip the guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

from codespark import modes
from codespark.config import Settings
from codespark.context import names
from codespark.context.service import RepoContext
from codespark.engine import chat
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Delta, Engine, Event, Finished, GenerationRequest, ToolCallDelta
from codespark.engine.tools import (
    CallStarted,
    Choice,
    Piece,
    ResponseFormat,
    TextPiece,
    Tool,
    ToolCallParser,
    answer_grammar,
)
from codespark.errors import EngineError, InvalidRequestError, UpstreamUnavailable
from codespark.guard.ignore import NeverSend
from codespark.metrics import Metrics
from codespark.router import Decision, Router
from codespark.services.observe import count_decision, count_redactions, observe, observed


@dataclass(frozen=True)
class ChatCall:
    """One chat turn.  ``max_tokens`` None fills what the context leaves (up to ``max_tokens_limit``)."""

    messages: Sequence[chat.Message]
    params: SamplingParams
    max_tokens: int | None = None
    stops: tuple[str, ...] = ()
    model: str | None = None
    context: Sequence[tuple[str, str]] = ()  # (filename, text) workspace files for the system block
    repo: str | None = None  # add the map of this repo (the server's repo_dir, by path or name)
    upstream_options: dict[str, Any] = field(default_factory=dict)  # OpenAI fields passed to an upstream
    tools: tuple[Tool, ...] = ()
    tool_choice: Choice = "none"
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    constrained: bool = True  # False: no grammar (the benchmark's unconstrained baseline)
    modes: bool = False  # honour [Mode: Spark]/[Mode: Codex] in the messages (API requests; not internal callers)

    @property
    def calls_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


class ChatService:
    """Chat on codex, an upstream provider, or the local fallback."""

    def __init__(
        self,
        router: Router,
        settings: Settings,
        metrics: Metrics | None = None,
        never_send: NeverSend | None = None,
        repo: RepoContext | None = None,
    ) -> None:
        self.router = router
        self.settings = settings
        self.metrics = metrics
        self.never_send = never_send
        self.repo = repo

    async def chat(self, call: ChatCall) -> tuple[Decision, AsyncGenerator[Event, None]]:
        """The decision and the answer's events (the upstream's, restored, or the local engine's)."""
        contents, mode = modes.take_all([m.content for m in call.messages]) if call.modes else ([], None)
        if mode is not None:
            call = replace(call, messages=[replace(m, content=c) for m, c in zip(call.messages, contents, strict=True)])
        chosen = modes.deep(self.router, mode, call.model)
        repo_map = await self._repo_map(call)
        up = chosen.upstream
        if up is None:
            return chosen, self._observed(chosen, self._local(chosen.engine, call, repo_map))
        payload = dict(call.upstream_options) | _tool_fields(call)
        payload["messages"] = [_openai_message(m) for m in _with_system_block(call, repo_map, self.never_send)]
        try:
            events = await up.start("chat/completions", payload, on_redacted=count_redactions(self.metrics))
        except UpstreamUnavailable as exc:
            if self.metrics is not None:
                self.metrics.upstream_fallbacks.labels(up.name).inc()
            fallback = self.router.fall_back(exc.message)
            return fallback, self._observed(fallback, self._local(fallback.engine, call, repo_map))
        names = frozenset(t.name for t in call.tools)
        return chosen, self._observed(chosen, tool_call_events(events, names) if call.calls_tools else events)

    async def sample_many(self, call: ChatCall, params: Sequence[SamplingParams]) -> list[str]:
        """Several answers to one chat without tools, one per ``params`` (its temperature, seed and
        ``max_tokens``), in order.  On a local engine they are sampled side by side from one evaluation of
        the prompt (``Engine.run_many``); an upstream gets one request each (the guard and the fallback as
        for any chat)."""
        chosen = modes.deep(self.router, None, call.model)
        if chosen.upstream is not None or call.calls_tools or call.response_format is not None:
            return [await self.answer(replace(call, params=p, max_tokens=p.max_tokens)) for p in params]
        engine = chosen.engine
        messages = _with_system_block(call, await self._repo_map(call), None)
        prompt = chat.build_prompt(engine.backend.info, messages, ())
        longest = max(params, key=lambda p: p.max_tokens)
        job = engine.prepare(GenerationRequest(prompt=prompt, params=longest, stops=call.stops))
        count_decision(chosen, self.metrics, len(params))
        results = await engine.run_many(job, params)
        for result in results:
            observe(chosen.route, result, self.metrics, self.router, estimate=False)
        return [result.text for result in results]

    async def answer(self, call: ChatCall) -> str:
        """The whole answer of one chat."""
        _, events = await self.chat(call)
        text = ""
        async for event in events:
            if isinstance(event, Finished):
                text = event.text
        return text

    def _local(self, engine: Engine, call: ChatCall, repo_map: str) -> AsyncGenerator[Event, None]:
        tools = call.tools if call.calls_tools else ()
        prompt = chat.build_prompt(engine.backend.info, _with_system_block(call, repo_map, None), tools)
        tokens = engine.tokenize_prompt(prompt)  # once: for the room left and for the generation
        if call.max_tokens is None:
            max_tokens = max(0, min(self.settings.max_tokens_limit, engine.n_ctx - len(tokens)))
        else:
            max_tokens = call.max_tokens
        grammar = answer_grammar(tools, call.tool_choice, call.parallel_tool_calls, call.response_format)
        if not call.constrained:
            grammar = None
        params = replace(call.params, max_tokens=max_tokens, grammar=grammar)
        request = GenerationRequest(prompt=prompt, params=params, stops=call.stops)
        events = engine.stream(engine.prepare(request, tokens))
        return tool_call_events(events, frozenset(t.name for t in tools)) if tools else events

    def _observed(self, decision: Decision, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        if self.settings.chat_check_names:
            events = self._checked(events)
        return observed(decision, events, self.metrics, self.router)

    async def _checked(self, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        """``events``, with the finished answer's Python code checked for names that do not exist (the SQL
        assistant's validation step, for code): what it finds goes into ``Finished.checks``."""
        root = self.repo.root if self.repo is not None else None
        async with aclosing(events) as stream:
            async for event in stream:
                if isinstance(event, Finished) and "```" in event.text and event.finish_reason != "cancelled":
                    found = await asyncio.to_thread(names.in_answer, event.text, root)
                    if found and self.metrics is not None:
                        self.metrics.chat_checks.inc()
                    event = replace(event, checks=tuple(found))
                yield event

    async def _repo_map(self, call: ChatCall) -> str:
        """The map of the server's repo, for a chat that names it, focused on the files it mentions."""
        if call.repo is None:
            return ""
        context = self.repo
        if context is None or call.repo not in (str(context.root), context.root.name, "."):
            where = f"it serves {context.root}" if context is not None else "start it with --repo-dir PATH"
            raise InvalidRequestError(f"This server has no index for the repo {call.repo!r}: {where}.", param="repo")
        if not context.ready.is_set():
            raise EngineError("The repo is still being indexed; retry in a few seconds.")
        mentioned = "\n".join(m.content for m in call.messages)
        return await asyncio.to_thread(context.repo_map, self.settings.context_tokens, mentioned)


def _openai_message(m: chat.Message) -> dict[str, Any]:
    message: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        message["tool_call_id"] = m.tool_call_id
    return message


def _tool_fields(call: ChatCall) -> dict[str, Any]:
    """The OpenAI tool and response-format fields of ``call``, for an upstream."""
    fields: dict[str, Any] = {}
    if call.tools:
        fields["tools"] = [t.as_openai() for t in call.tools]
        choice = call.tool_choice
        fields["tool_choice"] = choice if choice in ("auto", "none", "required") else {
            "type": "function", "function": {"name": choice}}  # fmt: skip
        fields["parallel_tool_calls"] = call.parallel_tool_calls
    if call.response_format is not None:
        schema = call.response_format.schema
        fields["response_format"] = {"type": "json_object"} if schema is None else {
            "type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}  # fmt: skip
    return fields


async def tool_call_events(
    events: AsyncGenerator[Event, None], names: frozenset[str] = frozenset()
) -> AsyncGenerator[Event, None]:
    """The model's text split into content ``Delta``s and ``ToolCallDelta``s; the ``Finished`` event carries
    the calls (``finish_reason`` ``tool_calls`` when there are any) and only the content as its text.
    ``names``: the functions a fenced JSON call may name."""
    parser = ToolCallParser(names)
    async with aclosing(events) as stream:
        async for item in stream:
            if isinstance(item, Delta):
                for piece in parser.push(item.text):
                    yield _event(piece)
            elif isinstance(item, Finished):
                for piece in parser.finish():
                    yield _event(piece)
                calls = tuple(parser.calls)
                reason = "tool_calls" if calls and item.finish_reason == "stop" else item.finish_reason
                yield replace(item, text=parser.content, finish_reason=reason, tool_calls=calls)
            else:
                yield item


def _event(piece: Piece) -> Event:
    if isinstance(piece, TextPiece):
        return Delta(piece.text)
    if isinstance(piece, CallStarted):
        return ToolCallDelta(piece.index, piece.id, piece.name)
    return ToolCallDelta(piece.index, arguments=piece.text)


def _with_system_block(call: ChatCall, repo_map: str, never_send: NeverSend | None) -> list[chat.Message]:
    """The messages, with the repo map and the context files (less never-send ones) in the system message."""
    messages = [replace(m, role=m.role if m.role != "developer" else "system") for m in call.messages]
    files = [(name, text) for name, text in call.context if never_send is None or not never_send.blocks(name)]
    blocks = ([chat.repo_map_text(repo_map)] if repo_map else []) + ([chat.context_text(files)] if files else [])
    if not blocks:
        return messages
    block = "\n\n".join(blocks)
    if messages[0].role == "system":
        return [replace(messages[0], content=messages[0].content + "\n\n" + block), *messages[1:]]
    return [chat.Message("system", block), *messages]
