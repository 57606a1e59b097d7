"""Wire types.  Each request type mirrors its spec, in the spec's order, with our
extensions after it, each described.  Unknown fields are accepted and logged.

- OpenAI: ``POST /v1/completions``, ``POST /v1/chat/completions``, ``GET /v1/models``.
- llama-server: ``POST /infill``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codespark.context.retrieve import Snippet
from codespark.engine import chat
from codespark.engine.backend import SamplingParams
from codespark.engine.fim import ExtraFile, FimRequest
from codespark.engine.mask import Names
from codespark.engine.tools import ToolCall
from codespark.errors import InvalidRequestError

log = logging.getLogger("codespark.server")
_DEBUG_NAMES = 100


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    def unknown_fields(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())

    def log_unknown(self, endpoint: str) -> None:
        """Unknown fields are accepted (clients send many) and named in the log."""
        unknown = self.unknown_fields()
        if unknown:
            log.info("%s: ignoring unknown fields %s", endpoint, ", ".join(unknown))


class _Sampled(_Request):
    """A generation request: it has the sampling fields (each class declares them in its spec's order)."""

    if TYPE_CHECKING:
        temperature: float
        top_p: float
        top_k: int
        min_p: float
        repeat_penalty: float
        seed: int | None

    def to_sampling_params(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(
            max_tokens=max(0, max_tokens),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            seed=self.seed,
        )


def stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    """OpenAI's ``stop`` (one string or a list of up to 16) as a tuple."""
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > 16:
        raise InvalidRequestError("At most 16 stop sequences are allowed.", param="stop")
    return stops


def debug_data(pieces: Sequence[Snippet], trail: Sequence[tuple[str, Names]] = ()) -> dict[str, object]:
    """The context snippets a completion used (Tabby's ``debug_data`` shape, with our reasons), and where
    the monitors constrained names (``mgd``: the generated text so far, the trigger, the allowed names)."""
    return {
        "snippets": [
            {"filepath": p.path, "body": p.text, "score": round(p.score, 3), "reason": p.reason} for p in pieces
        ],
        "mgd": [_trigger(text, n) for text, n in trail],
    }


def _trigger(text: str, names: Names) -> dict[str, object]:
    allowed = sorted(names.names)
    return {"after": text[-80:], "kind": names.kind, "partial": names.partial, "n_allowed": len(allowed),
            "allowed": allowed[:_DEBUG_NAMES]}  # fmt: skip


class StreamOptions(BaseModel):
    include_usage: bool = False


# --------------------------------------------------------------------------- OpenAI completions


class TabbyDeclaration(BaseModel):
    filepath: str
    body: str


class TabbySnippet(BaseModel):
    filepath: str
    body: str
    score: float = 1.0


class TabbySegments(BaseModel):
    """Tabby's ``segments``: the text around the cursor and the context its editor agent collected."""

    prefix: str
    suffix: str | None = None
    filepath: str | None = None
    git_url: str | None = None
    declarations: list[TabbyDeclaration] | None = None
    relevant_snippets_from_changed_files: list[TabbySnippet] | None = None
    relevant_snippets_from_recently_opened_files: list[TabbySnippet] | None = None
    clipboard: str | None = None

    def to_fim(self) -> FimRequest:
        """A FIM request: the declarations and snippets become context files."""
        extra = [ExtraFile(d.filepath, d.body) for d in self.declarations or []]
        snippets = (self.relevant_snippets_from_changed_files or []) + (
            self.relevant_snippets_from_recently_opened_files or []
        )
        extra += [ExtraFile(s.filepath, s.body) for s in snippets]
        return FimRequest(self.prefix, self.suffix or "", tuple(extra), self.filepath)


class TabbyDebugOptions(BaseModel):
    return_snippets: bool = False
    return_prompt: bool = False
    disable_retrieval_augmented_code_completion: bool = False


class CompletionRequest(_Sampled):
    """OpenAI ``POST /v1/completions``.  A ``suffix`` makes it a FIM request.

    Tabby's body for the same path (``segments``, ``language``, ``debug_options``) is accepted as well.
    """

    model: str | None = None
    prompt: str | list[str] | None = None
    best_of: int | None = Field(None, ge=1, le=1)
    echo: bool = False
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = Field(None, ge=0, le=0)
    max_tokens: int | None = Field(16, ge=0)
    n: int = Field(1, ge=1, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    user: str | None = None
    # extensions
    top_k: int = Field(40, ge=0, description="codespark: top-k sampling (0 disables).")
    min_p: float = Field(0.0, ge=0, le=1, description="codespark: min-p sampling.")
    repeat_penalty: float = Field(1.0, gt=0, description="codespark: llama.cpp repeat penalty.")
    max_latency_ms: float | None = Field(None, ge=0, description="codespark: latency budget for the router.")
    debug: bool = Field(False, description="codespark: return the context snippets used, in debug_data.")
    # Tabby
    language: str | None = Field(None, description="Tabby: the document's language.")
    segments: TabbySegments | None = Field(None, description="Tabby: prefix, suffix, file path and context.")
    debug_options: TabbyDebugOptions | None = Field(None, description="Tabby: return_snippets returns the context.")

    def wants_context(self) -> bool:
        return self.debug or bool(self.debug_options and self.debug_options.return_snippets)


# --------------------------------------------------------------------------- OpenAI chat


class ContextFile(BaseModel):
    """A workspace file attached to a request (llama-server ``input_extra`` shape)."""

    filename: str = "tmp"
    text: str


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class FunctionCall(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"  # JSON text, as OpenAI sends it (an object is accepted too)

    def text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


class ToolCallIn(BaseModel):
    """An assistant message's earlier tool call, sent back in the history."""

    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")

    def to_message(self) -> chat.Message:
        calls = tuple(ToolCall(c.id, c.function.name, c.function.text()) for c in self.tool_calls or ())
        return chat.Message(self.role, self.text(), calls, self.tool_call_id)


class ChatCompletionRequest(_Sampled):
    """OpenAI ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=0)
    n: int = Field(1, ge=1, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    parallel_tool_calls: bool = True
    response_format: dict[str, Any] | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_p: float = Field(1.0, gt=0, le=1)
    user: str | None = None
    # extensions
    top_k: int = Field(40, ge=0, description="codespark: top-k sampling (0 disables).")
    min_p: float = Field(0.0, ge=0, le=1, description="codespark: min-p sampling.")
    repeat_penalty: float = Field(1.0, gt=0, description="codespark: llama.cpp repeat penalty.")
    repo: str | None = Field(
        None, description="codespark: add a map of this repo (the server's repo_dir, by path or name) to the prompt."
    )
    context: list[ContextFile] = Field(
        default_factory=list,
        description="codespark: workspace files to add as context; never-send files (.env, *.pem, "
        ".codesparkignore) are dropped before a prompt goes upstream.",
    )


# --------------------------------------------------------------------------- llama-server infill


InputExtra = ContextFile


class InfillRequest(_Sampled):
    """llama-server ``POST /infill`` (the fields llama.vim and llama.vscode send)."""

    id_slot: int | None = Field(None, description="Accepted; codespark keeps a KV session per document instead.")
    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[InputExtra] = Field(default_factory=list)
    prompt: str = Field("", description="Text typed after input_prefix on the cursor line.")
    n_predict: int | None = Field(None, ge=-1)
    n_indent: int = Field(0, ge=0, description="A later line indented by fewer characters ends the answer.")
    stream: bool = False
    samplers: list[str] | None = Field(None, description="Accepted; codespark's sampler chain is fixed.")
    cache_prompt: bool = Field(True, description="Accepted; codespark always reuses the KV cache.")
    t_max_prompt_ms: float | None = Field(None, description="The router's budget for the prompt (negative: none).")
    t_max_predict_ms: float | None = Field(None, ge=0)
    response_fields: list[str] | None = Field(
        None, description="Only these fields, nested ones as 'timings/prompt_n' keys (llama-server's shape)."
    )
    temperature: float = Field(0.0, ge=0, le=2)
    top_k: int = Field(40, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    min_p: float = Field(0.0, ge=0, le=1)
    repeat_penalty: float = Field(1.0, gt=0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    # extensions
    model: str | None = Field(None, description="codespark: engine or alias; unset or 'auto' lets the router pick.")
    filename: str | None = Field(None, description="codespark: path of the file being edited.")
    session: str | None = Field(None, description="codespark: editing session id (or the X-Session header).")
    max_latency_ms: float | None = Field(
        None, ge=0, description="codespark: latency budget for the router (default: t_max_predict_ms)."
    )
    debug: bool = Field(False, description="codespark: return the context snippets used, in debug_data.")


# --------------------------------------------------------------------------- responses
# The shapes the routes send, in the order of the spec they mirror; ``timings`` and the
# ``codespark`` fields are our extensions.  ``logprobs`` is always null: we do not compute them.
# Optional parts (``usage`` on a chunk, ``debug_data``, a delta's fields) are left out when unset.


def _omitted_if_none() -> Any:
    return Field(None, exclude_if=lambda value: value is None)


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class Usage(BaseModel):
    """OpenAI ``usage``, plus llama-server-style ``timings`` (codespark)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    timings: dict[str, Any]  # llama-server's timings, and ours (typed_ahead, drafter, ...)


class CompletionChoice(BaseModel):
    text: str
    index: int = 0
    logprobs: None = None
    finish_reason: str | None


class Completion(BaseModel):
    """OpenAI ``text_completion`` (also each streamed chunk, without ``usage``)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = _omitted_if_none()
    debug_data: dict[str, Any] | None = _omitted_if_none()  # codespark/Tabby: the context snippets used


class FunctionCallOut(BaseModel):
    name: str | None = _omitted_if_none()
    arguments: str


class ToolCallOut(BaseModel):
    """A tool call in an answer, or a piece of one in a stream (``index`` set, the rest once)."""

    index: int | None = _omitted_if_none()
    id: str | None = _omitted_if_none()
    type: Literal["function"] | None = _omitted_if_none()
    function: FunctionCallOut


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = _omitted_if_none()


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    logprobs: None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    """OpenAI ``chat.completion``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    # After generation: what the answer's Python code imports or calls that does not exist (codespark).
    codespark_checks: list[str] | None = _omitted_if_none()


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = _omitted_if_none()
    content: str | None = _omitted_if_none()
    tool_calls: list[ToolCallOut] | None = _omitted_if_none()


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    logprobs: None = None
    finish_reason: str | None


class ChatCompletionChunk(BaseModel):
    """OpenAI ``chat.completion.chunk``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = _omitted_if_none()
    codespark_checks: list[str] | None = _omitted_if_none()  # on the chunk that finishes the answer


class Infill(BaseModel):
    """llama-server's ``/infill`` answer (the final one of a stream, or the whole answer)."""

    content: str
    model: str
    stop: bool = True
    stop_type: str
    finish_reason: str
    tokens_predicted: int
    tokens_evaluated: int
    tokens_cached: int
    truncated: bool = False
    timings: dict[str, Any]  # llama-server's timings, and ours (typed_ahead, drafter, ...)
    debug_data: dict[str, Any] | None = _omitted_if_none()


class InfillChunk(BaseModel):
    content: str
    stop: bool = False


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "codespark"
    codespark: dict[str, Any] = Field(description="codespark: the model file, n_ctx and aliases.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
