"""Stream framing: server-sent events (OpenAI, llama-server) and newline-delimited JSON (Ollama)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"


def event(payload: BaseModel | dict[str, Any]) -> bytes:
    """One ``data:`` event: a response model (optional parts left out) or a plain dict."""
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def ndjson(payload: BaseModel | dict[str, Any]) -> bytes:
    """One line of newline-delimited JSON (Ollama's streams)."""
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"
