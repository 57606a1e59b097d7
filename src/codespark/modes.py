"""Steering from the prompt: ``[Mode: Spark]`` and ``[Mode: Codex]`` pin the router.

A user who writes ``[Mode: Spark]`` asks for the low-latency path (the spark engine); ``[Mode: Codex]``
asks for the deep one (codex, or the codex upstream for chat).  The tag is taken out of the text
before any model sees it, and the router's decision says it was pinned by the tag.  It wins over the
request's ``model`` field: clients send that from their configuration, the tag is what the user typed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

from codespark.router import Decision, Router

Mode = Literal["spark", "codex"]
_TAG = re.compile(r"\[\s*mode\s*:\s*(spark|codex)\s*\][ \t]*(\r?\n)?", re.IGNORECASE)


def take(text: str) -> tuple[str, Mode | None]:
    """``text`` without its mode tags, and the last tag's mode (None when there is none)."""
    found = _TAG.findall(text)
    if not found:
        return text, None
    mode: Mode = "spark" if found[-1][0].lower() == "spark" else "codex"
    return _TAG.sub("", text), mode


def take_all(texts: list[str]) -> tuple[list[str], Mode | None]:
    """Each text without its tags, and the mode of the last tag in the last text that has one."""
    mode: Mode | None = None
    out: list[str] = []
    for text in texts:
        stripped, found = take(text)
        out.append(stripped)
        mode = found or mode
    return out, mode


def explain(decision: Decision, mode: Mode) -> Decision:
    """The decision, its reason saying the prompt's tag pinned it."""
    return replace(decision, reason=f"pinned by [Mode: {mode.title()}] in the prompt (tag removed)")


def model_for(router: Router, mode: Mode | None, model: str | None) -> str | None:
    """The ``model`` a request runs as: the tag's engine when it has one here, else the request's own."""
    return mode if mode is not None and mode in router.engines.routes else model


def deep(router: Router, mode: Mode | None, model: str | None) -> Decision:
    """The decision for deep work (chat): ``[Mode: Codex]`` is the deep path itself (codex, or the codex
    upstream), ``[Mode: Spark]`` the spark engine; without a tag, the router's own choice."""
    if mode == "codex":
        return explain(router.deep(None), mode)
    pinned = model_for(router, mode, model)
    decision = router.deep(pinned)
    return explain(decision, mode) if mode is not None and pinned == mode else decision
