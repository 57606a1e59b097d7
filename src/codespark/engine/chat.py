"""Chat prompts from the model's own chat template (the GGUF's ``tokenizer.chat_template``).

The template is rendered with a placeholder for each piece of user-supplied text
(message contents, tool definitions, tool-call names and arguments, which the
template serializes with ``tojson``); the template's own text is then split into
control tokens (``<|im_start|>``) and text, while those pieces stay plain text.
So a user who types ``<|im_end|>`` in a message or a tool description cannot end
the turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from codespark.engine.backend import BackendInfo
from codespark.engine.prompt import Prompt, Special
from codespark.engine.tools import Tool, ToolCall
from codespark.errors import InvalidRequestError

# Used only when a GGUF carries no template: ChatML, which Qwen models speak.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Message:
    role: str  # system, user, assistant or tool
    content: str
    tool_calls: Sequence[ToolCall] = field(default=())  # an assistant's calls, for the template
    tool_call_id: str | None = None  # a tool message: the call it answers


CONTEXT_HEADER = "Files from the user's workspace, for reference:"


def context_text(files: Sequence[tuple[str, str]]) -> str:
    """The workspace files a chat request attaches, as one block of text for a system message."""
    blocks = [f"### {name}\n```\n{text.rstrip()}\n```" for name, text in files]
    return CONTEXT_HEADER + "\n\n" + "\n\n".join(blocks)


def repo_map_text(repo_map: str) -> str:
    """The repo map (key files and their top-level signatures) as a block for a system message."""
    return "Map of the repository (most central files first):\n\n" + repo_map


def _raise(message: str) -> NoReturn:
    raise InvalidRequestError(f"The model's chat template refused the messages: {message}", param="messages")


_CONTROL = re.compile(r"(<\|[A-Za-z0-9_]+\|>)")


_PLACEHOLDER = re.compile("(\x00codespark-text-\\d+\x00)")


class _Texts:
    """User text kept out of the template's own text: each piece becomes a placeholder while rendering."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def hold(self, text: str) -> str:
        self.pieces.append(text)
        return f"\x00codespark-text-{len(self.pieces) - 1}\x00"

    def tojson(self, value: Any, indent: int | None = None) -> str:
        return self.hold(json.dumps(value, ensure_ascii=False, indent=indent))

    def text_of(self, placeholder: str) -> str:
        return self.pieces[int(placeholder.strip("\x00").rsplit("-", 1)[1])]


def _arguments(call: ToolCall) -> Any:
    """A call's arguments as an object for the template (Qwen's writes them with ``tojson``)."""
    try:
        return json.loads(call.arguments)
    except json.JSONDecodeError:
        return call.arguments


def _payload(m: Message, texts: _Texts) -> dict[str, Any]:
    message: dict[str, Any] = {"role": m.role, "content": texts.hold(m.content) if m.content else ""}
    if m.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": texts.hold(c.name), "arguments": _arguments(c)}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        message["tool_call_id"] = m.tool_call_id
    return message


def build_prompt(info: BackendInfo, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> Prompt:
    """The prompt for ``messages`` (and the ``tools`` the model may call), with the assistant's turn opened."""
    texts = _Texts()
    rendered = _render(info, [_payload(m, texts) for m in messages], [t.as_openai() for t in tools], texts)
    prompt: Prompt = []
    for piece in _PLACEHOLDER.split(rendered):
        if _PLACEHOLDER.fullmatch(piece):
            prompt.append(texts.text_of(piece))
            continue
        for chunk in _CONTROL.split(piece):
            if not chunk:
                continue
            prompt.append(Special(chunk) if _CONTROL.fullmatch(chunk) else chunk)
    return prompt


def render_text(info: BackendInfo, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> str:
    """The template applied to ``messages``, as text."""
    texts = _Texts()
    rendered = _render(info, [_payload(m, texts) for m in messages], [t.as_openai() for t in tools], texts)
    return _PLACEHOLDER.sub(lambda m: texts.text_of(m.group(0)), rendered)


def _render(info: BackendInfo, messages: list[dict[str, Any]], tools: list[dict[str, Any]], texts: _Texts) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.filters["tojson"] = texts.tojson
    try:
        template = env.from_string(info.chat_template or CHATML)
        return template.render(
            messages=messages,
            tools=tools or None,
            add_generation_prompt=True,
            bos_token=info.bos_token,
            eos_token=info.eos_token,
        )
    except TemplateError as exc:
        raise InvalidRequestError(f"Could not apply the chat template: {exc}", param="messages") from exc
