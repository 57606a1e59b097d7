"""One-shot tasks for the CLI: FIM at a file position, and a streamed chat answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from codespark.config import Settings
from codespark.engine import chat
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Delta, Engine, GenerationRequest
from codespark.engine.fim import FimRequest
from codespark.engine.loader import ROUTES, Engines, load_engines
from codespark.errors import ConfigError, InvalidRequestError
from codespark.services.fim import one_shot


def load_one(settings: Settings, route: str) -> tuple[Engines, Engine]:
    """Load one engine (``spark`` or ``codex``) for a CLI task."""
    if route not in ROUTES:
        raise ConfigError(f"Unknown engine {route!r}: use one of {', '.join(ROUTES)}.")
    engines = load_engines(settings, only=(route,))
    if route not in engines.routes:
        raise ConfigError(f"The {route} engine is disabled in the settings ({route}_model = none).")
    return engines, engines.routes[route]


def split_at(text: str, line: int, col: int | None) -> tuple[str, str]:
    """Split ``text`` at a 1-based line and column (default: end of that line)."""
    lines = text.splitlines(keepends=True)
    if line > len(lines) + 1:
        raise InvalidRequestError(f"Line {line} is past the end of the file ({len(lines)} lines).")
    before = "".join(lines[: line - 1])
    current = lines[line - 1] if line <= len(lines) else ""
    body = current.rstrip("\r\n")
    at = len(body) if col is None else min(col - 1, len(body))
    return before + body[:at], body[at:] + current[len(body) :] + "".join(lines[line:])


def complete_at(settings: Settings, file: Path, line: int, col: int | None, route: str, max_tokens: int) -> str:
    """The FIM completion at a position in ``file``."""
    prefix, suffix = split_at(file.read_text(), line, col)
    engines, engine = load_one(settings, route)
    try:
        job = one_shot(
            engine, FimRequest(prefix, suffix), SamplingParams(max_tokens=max_tokens), (), settings.fim_block_stops
        )
        return asyncio.run(engine.run(job)).text
    finally:
        engines.close()


def chat_stream(settings: Settings, text: str, route: str, max_tokens: int) -> Iterator[str]:
    """Stream the answer to one user message, piece by piece."""
    engines, engine = load_one(settings, route)
    prompt = chat.build_prompt(engine.backend.info, [chat.Message("user", text)])
    request = GenerationRequest(prompt, SamplingParams(max_tokens=max_tokens, temperature=0.2, top_p=0.95))
    loop = asyncio.new_event_loop()
    events = engine.stream(request)
    try:
        while True:
            try:
                event = loop.run_until_complete(anext(events))
            except StopAsyncIteration:
                break
            if isinstance(event, Delta):
                yield event.text
    finally:
        loop.run_until_complete(events.aclose())
        loop.close()
        engines.close()
