"""Ollama's wire types (its API reference, ``docs/api.md`` in ollama/ollama), in the reference's order.

Requests accept unknown fields and name them in the log, as the OpenAI types do.  Durations in answers
are nanoseconds, as Ollama reports them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codespark.engine import chat
from codespark.engine.engine import Timings
from codespark.engine.tools import ResponseFormat, ToolCall, check_schema, new_call_id
from codespark.errors import InvalidRequestError
from codespark.server.protocol import _Request, _Sampled


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Options(_Sampled):
    """The Modelfile parameters a request may set (``options``); others are accepted and ignored."""

    num_ctx: int | None = Field(None, ge=1)
    num_predict: int | None = Field(None, ge=-2)
    temperature: float = Field(0.8, ge=0, le=2)  # Ollama's defaults
    top_k: int = Field(40, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    min_p: float = Field(0.0, ge=0, le=1)
    repeat_penalty: float = Field(1.0, gt=0)
    seed: int | None = None
    stop: str | list[str] | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def requested_tokens(self) -> int | None:
        """``num_predict``: None for -1 (until the model stops) and -2 (fill the context), as unset."""
        return self.num_predict if self.num_predict is not None and self.num_predict >= 0 else None


def response_format(value: str | dict[str, Any] | None) -> ResponseFormat | None:
    """Ollama's ``format``: ``"json"`` or a JSON schema."""
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat()
    if isinstance(value, dict):
        check_schema(value, "format", param="format")
        return ResponseFormat(value)
    raise InvalidRequestError('format must be "json" or a JSON schema object.', param="format")


class GenerateRequest(_Request):
    """``POST /api/generate``.  A ``suffix`` makes it fill-in-the-middle on the spark path."""

    model: str
    prompt: str = ""
    suffix: str | None = None
    images: list[str] | None = None
    format: str | dict[str, Any] | None = None
    options: Options = Field(default_factory=Options)
    system: str | None = None
    template: str | None = None
    stream: bool = True
    raw: bool = False
    keep_alive: str | int | float | None = None
    context: list[int] | None = None
    think: bool | str | None = None


class ToolCallFunction(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class OllamaToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    function: ToolCallFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = None

    def to_message(self) -> chat.Message:
        calls = tuple(
            ToolCall(new_call_id(), c.function.name, json.dumps(c.function.arguments)) for c in self.tool_calls or ()
        )
        return chat.Message(self.role, self.content, calls)


class ChatRequest(_Request):
    """``POST /api/chat``."""

    model: str
    messages: list[Message] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    format: str | dict[str, Any] | None = None
    options: Options = Field(default_factory=Options)
    stream: bool = True
    keep_alive: str | int | float | None = None
    think: bool | str | None = None


class ShowRequest(_Request):
    model: str | None = None
    name: str | None = None  # the older spelling, which Continue still sends
    verbose: bool = False


# --------------------------------------------------------------------------- answers


def durations(t: Timings) -> dict[str, int]:
    """Ollama's counts and nanosecond durations for a finished generation."""
    ms = 1_000_000
    return {
        "total_duration": int((t.prefill_ms + t.decode_ms) * ms),
        "load_duration": 0,  # models stay loaded
        "prompt_eval_count": t.prompt_tokens,
        "prompt_eval_duration": int(t.prefill_ms * ms),
        "eval_count": t.completion_tokens,
        "eval_duration": int(t.decode_ms * ms),
    }


class GenerateChunk(BaseModel):
    model_config = ConfigDict(extra="allow")  # the final chunk carries the counts and durations
    model: str
    created_at: str = Field(default_factory=now)
    response: str
    done: bool = False
    done_reason: str | None = Field(None, exclude_if=lambda v: v is None)


class ToolCallOut(BaseModel):
    function: ToolCallFunction


class MessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    tool_calls: list[ToolCallOut] | None = Field(None, exclude_if=lambda v: v is None)


class ChatChunk(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    created_at: str = Field(default_factory=now)
    message: MessageOut
    done: bool = False
    done_reason: str | None = Field(None, exclude_if=lambda v: v is None)
