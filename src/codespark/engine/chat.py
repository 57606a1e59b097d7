"""Chat prompts from the model's own chat template (the GGUF's ``tokenizer.chat_template``).

The template is rendered with a placeholder for each message's content; the
template's own text is then split into control tokens (``<|im_start|>``) and
text, while message contents stay plain text.  So a user who types
``<|im_end|>`` in a message cannot end the turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from codespark.engine.backend import BackendInfo
from codespark.engine.prompt import Prompt, Special
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
    role: str
    content: str


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


def _placeholder(i: int) -> str:
    return f"\x00codespark-message-{i}\x00"


def build_prompt(info: BackendInfo, messages: Sequence[Message]) -> Prompt:
    """The prompt for ``messages``, with the assistant's turn opened."""
    rendered = render_text(info, [Message(m.role, _placeholder(i)) for i, m in enumerate(messages)])
    prompt: Prompt = []
    pieces = re.split("(\x00codespark-message-\\d+\x00)", rendered)
    for piece in pieces:
        if piece.startswith("\x00codespark-message-"):
            prompt.append(messages[int(piece.strip("\x00").rsplit("-", 1)[1])].content)
            continue
        for chunk in _CONTROL.split(piece):
            if not chunk:
                continue
            prompt.append(Special(chunk) if _CONTROL.fullmatch(chunk) else chunk)
    return prompt


def render_text(info: BackendInfo, messages: Sequence[Message]) -> str:
    """The template applied to ``messages``, as text."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    try:
        template = env.from_string(info.chat_template or CHATML)
        payload: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
        return template.render(
            messages=payload,
            add_generation_prompt=True,
            bos_token=info.bos_token,
            eos_token=info.eos_token,
        )
    except TemplateError as exc:
        raise InvalidRequestError(f"Could not apply the chat template: {exc}", param="messages") from exc
