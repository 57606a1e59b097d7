"""Tool calling and structured output: tool definitions, decoding grammars, and the parser of tool calls.

A tool call is written the way the model's chat template teaches it.  For Qwen2.5 that is
``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``.  Small models get that JSON wrong,
so when a call is due (``tool_choice`` ``required`` or a named function) decoding is constrained from
the first token by a llama.cpp grammar built from the functions' parameter schemas; under ``auto`` the
same grammar switches on lazily, at the first ``<tool_call>`` the model writes.  ``response_format``
(``json_object``, ``json_schema``) uses the same mechanism for the whole answer.

The grammars come from llama.cpp's own JSON-schema converter (pure Python, shipped with the binding);
this module only composes them.  ``ToolCallParser`` turns the text back into calls, incrementally, so a stream can
send a call's name first and then its arguments as they are written.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

from codespark.engine.backend import Grammar
from codespark.errors import InvalidRequestError

OPEN, CLOSE = "<tool_call>", "</tool_call>"
# How small models also write a call, copying the fence of a JSON answer or the template's <tools> tag.
LOOSE = (("```json", "```"), ("<tools>", "</tools>"))
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class Tool:
    """One function the model may call."""

    name: str
    description: str
    parameters: dict[str, Any]

    def as_openai(self) -> dict[str, Any]:
        """The definition as the chat template expects it (OpenAI's shape)."""
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ToolCall:
    """A call the model made; ``arguments`` is JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str

    def arguments_object(self) -> Any:
        return json.loads(self.arguments)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


Choice = Literal["auto", "none", "required"] | str  # or the name of the one function to call


def parse_tools(raw: Sequence[dict[str, Any]]) -> tuple[Tool, ...]:
    """OpenAI ``tools``, checked: function tools with unique names and valid JSON-schema parameters."""
    tools: list[Tool] = []
    for i, item in enumerate(raw):
        where = f"tools[{i}]"
        if item.get("type") != "function" or not isinstance(item.get("function"), dict):
            raise InvalidRequestError(f'{where}: only {{"type": "function", "function": {{...}}}} tools are supported.',
                                      param="tools")  # fmt: skip
        fn = item["function"]
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequestError(
                f"{where}.function.name must be 1-64 letters, digits, '_', '-' or '.'; got {name!r}.", param="tools"
            )
        if any(t.name == name for t in tools):
            raise InvalidRequestError(f"{where}: the function name {name!r} is used twice.", param="tools")
        parameters = fn.get("parameters", {"type": "object", "properties": {}})
        check_schema(parameters, f"{where}.function.parameters", param="tools")
        description = fn.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRequestError(f"{where}.function.description must be a string.", param="tools")
        tools.append(Tool(name, description, parameters))
    return tuple(tools)


def check_schema(schema: Any, where: str, param: str) -> None:
    """A 400 unless ``schema`` is a JSON schema (an object) that the grammar converter can handle."""
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"{where} must be a JSON schema object.", param=param)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(f"{where} is not a valid JSON schema: {exc.message}", param=param) from exc
    except RecursionError as exc:
        raise InvalidRequestError(f"{where} is nested too deeply.", param=param) from exc
    _convert([(schema, "check")], where, param)


def parse_choice(choice: str | dict[str, Any] | None, tools: Sequence[Tool]) -> Choice:
    """OpenAI ``tool_choice``: ``auto`` (the default with tools), ``none``, ``required``, or a named function."""
    if choice is None:
        return "auto" if tools else "none"
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequestError("tool_choice must be 'auto', 'none', 'required' or a function.",
                                      param="tool_choice")  # fmt: skip
        if choice == "required" and not tools:
            raise InvalidRequestError("tool_choice is 'required' but no tools were sent.", param="tool_choice")
        return choice
    name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
    if not isinstance(name, str) or all(t.name != name for t in tools):
        known = ", ".join(t.name for t in tools) or "none"
        raise InvalidRequestError(f"tool_choice names a function that is not in tools (tools: {known}).",
                                  param="tool_choice")  # fmt: skip
    return name


_MAX_ENUM = 1000


def _bounded(schema: Any) -> Any:
    """``schema`` with small integer ranges (``minimum``..``maximum``) as enums: the binding's converter
    ignores integer bounds (the 0.5B wrote ``max_results: 100`` under ``maximum: 50``), an enum it keeps."""
    if isinstance(schema, list):
        return [_bounded(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _bounded(v) for k, v in schema.items()}
    low, high = out.get("minimum"), out.get("maximum")
    if out.get("type") == "integer" and isinstance(low, int) and isinstance(high, int) and 0 <= high - low < _MAX_ENUM:
        rest = {k: v for k, v in out.items() if k not in ("type", "minimum", "maximum")}
        return {**rest, "enum": list(range(low, high + 1))}
    return out


def _convert(schemas: Sequence[tuple[dict[str, Any], str]], where: str, param: str) -> Any:
    """Rules for each (schema, rule name), in one converter (rule names stay unique; it is untyped)."""
    from llama_cpp.llama_grammar import SchemaConverter  # pure Python, but importing the package loads llama.cpp

    converter: Any = SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={"name": 0, "arguments": 1}, allow_fetch=False, dotall=False,
                                raw_pattern=False)  # fmt: skip
    try:
        for schema, name in schemas:
            converter.visit(converter.resolve_refs(_bounded(schema), ""), name)
    except Exception as exc:  # the converter raises bare exceptions (asserts, KeyError, ...) on what it lacks
        raise InvalidRequestError(f"{where}: cannot constrain decoding to this schema ({exc!r}).",
                                  param=param) from exc  # fmt: skip
    return converter


@dataclass(frozen=True)
class ResponseFormat:
    """OpenAI ``response_format``: a JSON object (``json_object``), fitting ``schema`` when set (``json_schema``)."""

    schema: dict[str, Any] | None = None


def parse_response_format(raw: dict[str, Any] | None) -> ResponseFormat | None:
    if raw is None or raw.get("type") == "text":
        return None
    if raw.get("type") == "json_object":
        return ResponseFormat()
    if raw.get("type") == "json_schema":
        spec = raw.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        check_schema(schema, "response_format.json_schema.schema", param="response_format")
        return ResponseFormat(schema)
    raise InvalidRequestError("response_format.type must be 'text', 'json_object' or 'json_schema'.",
                              param="response_format")  # fmt: skip


def answer_grammar(
    tools: Sequence[Tool], choice: Choice, parallel: bool = True, response: ResponseFormat | None = None
) -> Grammar | None:
    """The grammar for an answer, or None when it is free text.

    - ``required`` or a named function: tool calls from the first token;
    - ``auto``: free text, constrained from the first ``<tool_call>``, ```` ```json ```` or ``<tools>`` on
      (lazily): in ``auto`` with tools, a fenced JSON block is a call (``response_format`` asks for JSON);
      with a ``response``
      format, either the calls or the JSON answer, from the first token;
    - no tools (or ``none``): the ``response`` format's JSON, if any.
    """
    text_schema: dict[str, Any] | None = None if response is None else (response.schema or {"type": "object"})
    if choice == "none" or not tools:
        if text_schema is None:
            return None
        return Grammar(_convert([(text_schema, "")], "response_format", "response_format").format_grammar())
    allowed = [t for t in tools if choice in ("auto", "required") or t.name == choice]
    call: dict[str, Any] = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in allowed
        ]
    }
    schemas = [(call, "call")]
    if text_schema is not None and choice == "auto":
        schemas.append((text_schema, "text"))
    converter = _convert(schemas, "tools", "tools")
    block = f'"{OPEN}\\n" call "\\n{CLOSE}"'
    calls = f'{block} ("\\n" {block})*' if parallel else block
    if choice != "auto":
        converter._add_rule("root", calls)
        return Grammar(converter.format_grammar())
    if len(schemas) > 1:
        converter._add_rule("calls", calls)
        converter._add_rule("root", "calls | text")
        return Grammar(converter.format_grammar())
    # The 1.5B writes a call in a ```json fence or <tools> tags about as often as in <tool_call> tags.
    forms = [f'"{o}" [ \\t\\n]{{0,4}} call [ \\t\\n]{{0,4}} "{c}"' for o, c in LOOSE]
    converter._add_rule("loose", " | ".join(forms))
    converter._add_rule("root", f"{calls} | loose")
    return Grammar(converter.format_grammar(), triggers=(OPEN, *(o for o, _ in LOOSE)))


# --------------------------------------------------------------------------- parsing the answer


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class CallStarted:
    index: int
    id: str
    name: str


@dataclass(frozen=True)
class ArgumentsPiece:
    index: int
    text: str


Piece = TextPiece | CallStarted | ArgumentsPiece
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


def _overlap(text: str, needle: str) -> int:
    """Length of the longest proper prefix of ``needle`` that ends ``text``."""
    return next((n for n in range(min(len(needle) - 1, len(text)), 0, -1) if text.endswith(needle[:n])), 0)


@dataclass
class _Block:
    """One ``<tool_call>`` block being read."""

    text: str = ""
    index: int = -1  # set once the name is known
    id: str = ""
    name: str = ""
    args_start: int = -1
    args_end: int = -1  # set once the arguments' JSON value is complete
    sent: int = 0  # argument characters already sent
    depth: int = 0
    in_string: bool = False
    escaped: bool = False

    def scan(self) -> str:
        """Argument text that is new since the last call (up to the end of the JSON value)."""
        start = self.args_start + self.sent
        out: list[str] = []
        for ch in self.text[start:]:
            if self.args_end >= 0:
                break
            out.append(ch)
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
                continue
            if ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.args_end = start + len(out)
        self.sent += len(out)
        return "".join(out)


@dataclass
class ToolCallParser:
    """Reads the model's text as it streams: plain content, and the tool calls in ``<tool_call>`` blocks.

    Small models also write a call as a fenced JSON block or in ``<tools>`` tags (Qwen2.5-Coder-1.5B does
    both under ``auto``, in spite of its template; the Continue CLI's prompt brings out the second): such a
    block whose JSON is exactly a call of one of ``names`` (``{"name": ..., "arguments": {...}}``) is a
    call too.  It is held back until it closes, since only then can it be told from JSON the user asked
    for; other blocks stream as content.
    """

    names: frozenset[str] = frozenset()
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    _pending: str = ""
    _block: _Block | None = None
    _loose: tuple[str, str] | None = None  # the open block's (opener, closer) when it is a loose form
    _started: int = 0

    def _openers(self) -> list[tuple[str, tuple[str, str] | None]]:
        return [(OPEN, None)] + ([(o, (o, c)) for o, c in LOOSE] if self.names else [])

    def push(self, text: str) -> list[Piece]:
        self._pending += text
        pieces: list[Piece] = []
        while self._pending:
            if self._block is None:
                found = [(at, opener, loose) for opener, loose in self._openers()
                         if (at := self._pending.find(opener)) >= 0]  # fmt: skip
                if not found:
                    keep = max(_overlap(self._pending, opener) for opener, _ in self._openers())
                    self._text(self._pending[: len(self._pending) - keep], pieces)
                    self._pending = self._pending[len(self._pending) - keep :]
                    break
                at, opener, loose = min(found, key=lambda f: f[0])
                self._text(self._pending[:at], pieces)
                self._pending = self._pending[at + len(opener) :]
                self._block, self._loose = _Block(), loose
                continue
            block = self._block
            closer = self._loose[1] if self._loose is not None else CLOSE
            end = self._pending.find(closer)
            block.text += self._pending if end < 0 else self._pending[:end]
            self._pending = "" if end < 0 else self._pending[end + len(closer) :]
            if self._loose is None:
                self._read(block, pieces)
            if end < 0:
                keep = _overlap(block.text, closer)
                if keep:  # a partial closer goes back to pending
                    block.text, self._pending = block.text[:-keep], block.text[-keep:]
                break
            self._close(block, pieces)
        return pieces

    def finish(self) -> list[Piece]:
        """The end of the text: what was held back, and an unterminated block (a call if it parses)."""
        pieces: list[Piece] = []
        if self._block is not None:
            self._block.text += self._pending
            if self._loose is None:
                self._read(self._block, pieces)
            self._close(self._block, pieces, closed=False)
        else:
            self._text(self._pending, pieces)
        self._pending = ""
        return pieces

    def _text(self, text: str, pieces: list[Piece]) -> None:
        if text:
            self.content += text
            pieces.append(TextPiece(text))

    def _read(self, block: _Block, pieces: list[Piece]) -> None:
        if block.index < 0:
            head = _HEAD.match(block.text)
            if head is None:
                return
            try:
                name = json.loads(f'"{head.group(1)}"')
            except json.JSONDecodeError:
                return
            block.index, block.id, block.name, block.args_start = self._started, new_call_id(), name, head.end()
            self._started += 1
            pieces.append(CallStarted(block.index, block.id, name))
        new = block.scan()
        if new:
            pieces.append(ArgumentsPiece(block.index, new))

    def _close(self, block: _Block, pieces: list[Piece], closed: bool = True) -> None:
        """A finished block: a call once its name was read (its arguments exactly as written and sent); a
        call written in another key order, or fenced, is taken whole now; anything else was content."""
        self._block, loose = None, self._loose
        if block.index >= 0:
            arguments = block.text[block.args_start : block.args_start + block.sent]
            self.calls.append(ToolCall(block.id, block.name, arguments))
            return
        whole = _whole_call(block.text)
        if whole is None or (loose is not None and whole[0] not in self.names):
            opener, closer = loose if loose is not None else (OPEN, CLOSE)
            self._text(opener + block.text + (closer if closed else ""), pieces)
            return
        call = ToolCall(new_call_id(), whole[0], whole[1])
        pieces += [CallStarted(self._started, call.id, call.name), ArgumentsPiece(self._started, call.arguments)]
        self._started += 1
        self.calls.append(call)


def _whole_call(text: str) -> tuple[str, str] | None:
    """``{"arguments": {...}, "name": "f"}`` (any key order) as (name, arguments JSON), else None."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or set(value) - {"name", "arguments"}:
        return None
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        return None
    return value["name"], json.dumps(arguments, ensure_ascii=False)
