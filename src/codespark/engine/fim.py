"""Fill-in-the-middle prompt formats for Qwen2.5-Coder.

Qwen was trained on PSM order: ``<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>``,
and on a repo-level form where other files come first::

    <|repo_name|>NAME\\n<|file_sep|>path/a.py\\nTEXT ... <|file_sep|>path/cur.py\\n<|fim_prefix|>...

The prompts are data; the engine turns text into tokens (as plain text) and
``Special`` parts into control tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from codespark.engine.engine import Engine
from codespark.engine.prompt import Prompt, Special
from codespark.errors import InvalidRequestError

FIM_PREFIX = Special("<|fim_prefix|>")
FIM_SUFFIX = Special("<|fim_suffix|>")
FIM_MIDDLE = Special("<|fim_middle|>")
REPO_NAME = Special("<|repo_name|>")
FILE_SEP = Special("<|file_sep|>")

# Any of these ends a FIM answer: the model has left the middle.
FIM_STOP_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|repo_name|>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|im_end|>",
)


@dataclass(frozen=True)
class ExtraFile:
    """Another file given as context (llama-server ``input_extra``)."""

    filename: str
    text: str


@dataclass(frozen=True)
class FimRequest:
    """The text around the cursor, plus optional context files."""

    prefix: str
    suffix: str
    extra: tuple[ExtraFile, ...] = field(default_factory=tuple)
    filename: str | None = None


def build_prompt(req: FimRequest) -> Prompt:
    """Qwen FIM prompt: plain PSM, or the repo-level form when context is given."""
    body: Prompt = [FIM_PREFIX, req.prefix, FIM_SUFFIX, req.suffix, FIM_MIDDLE]
    if not req.extra and req.filename is None:
        return body
    head: Prompt = [REPO_NAME, "repo\n"]
    for extra in req.extra:
        text = extra.text if extra.text.endswith("\n") else extra.text + "\n"
        head += [FILE_SEP, extra.filename + "\n", text]
    head += [FILE_SEP, (req.filename or "main.py") + "\n"]
    return head + body


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass(frozen=True)
class Echo:
    """A suffix line whose generation means the model is echoing the suffix.

    ``line`` is stripped; ``lead_newlines`` counts the newlines the suffix has
    before it, which, generated just before an echoed line, belong to the
    suffix and go with it.  A newline the suffix lacks (the hole ends a line)
    is kept.
    """

    line: str
    lead_newlines: int = 0


def echo_target(suffix: str) -> Echo | None:
    """The first non-blank line of ``suffix``; lines under two visible characters
    (``}``, ``)``) are too common to judge by."""
    lead = 0
    for line in suffix.splitlines(keepends=True):
        stripped = line.strip()
        if stripped:
            return Echo(stripped, lead) if len(stripped) >= 2 else None
        lead += line.count("\n")
    return None


class FimStops:
    """Where a FIM answer ends, decided line by line (a ``text.StopPolicy``).

    Three rules, all about not writing code the suffix already has:

    - **Echo.** A generated line equal to the suffix's first non-blank line
      means the model has started copying the suffix: cut before it.
    - **Single line inside a block** (``block=True``). If the code after the
      cursor goes on at the cursor line's indentation or deeper, or the cursor
      is mid-line with text after it, the user is inserting into existing
      code: the answer is the cursor line only.
    - **Block end** (``block=True``). Otherwise the answer may span lines, but
      ends before the first line indented less than the cursor line: the
      block the user is writing is closed.

    The last two are the usual editor policy (single-line inside code,
    multi-line at an empty block); ``block=False`` turns them off.

    ``min_indent`` (llama-server's ``n_indent``, which llama.vim sends): a later
    line indented by fewer whitespace characters ends the answer before it.
    """

    def __init__(self, prefix: str, suffix: str, block: bool = True, min_indent: int = 0) -> None:
        self._min_indent = min_indent
        self._head = prefix.rsplit("\n", 1)[-1]  # the cursor line, before the cursor
        self._echo = echo_target(suffix)
        blank = suffix[: len(suffix) - len(suffix.lstrip())]
        self._lead = blank.count("\n")  # newlines the suffix has before its first non-blank line
        self._block = block
        rest = suffix if self._head.strip() == "" else suffix.split("\n", 1)[1] if "\n" in suffix else ""
        # Mid-line with text after the cursor: the answer must stay on this line.
        self._inside_line = bool(self._head.strip()) and bool(suffix.split("\n", 1)[0].strip())
        self._next_indent = next((_indent(x) for x in rest.splitlines() if x.strip()), None)

    def _lines(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, line) for each line of the answer; the first starts on the cursor line."""
        out = []
        start = 0
        while True:
            nl = text.find("\n", start)
            end = len(text) if nl < 0 else nl
            out.append((start, end, text[start:end]))
            if nl < 0:
                return out
            start = nl + 1

    def _drop_lead(self, text: str, start: int) -> int:
        """``start`` moved back over the newlines (and blank lines) that belong to the suffix."""
        cut = start
        for _ in range(self._lead):
            nl = text.rfind("\n", 0, cut)
            if nl < 0 or text[nl + 1 : cut].strip():
                break
            cut = nl
        return cut

    def _end_before(self, text: str, start: int) -> int:
        """Cut before the line at ``start``: drop trailing blank lines, keep one newline."""
        body = text[:start].rstrip()
        keep = len(body) + 1 if "\n" in text[len(body) : start] else start
        return self._drop_lead(text, keep)

    def cut(self, text: str, final: bool) -> int | None:
        lines = self._lines(text)
        first_indent: int | None = None
        for i, (start, end, line) in enumerate(lines):
            complete = end < len(text) or final
            full = self._head + line if i == 0 else line
            if not full.strip():
                continue
            if i > 0 and self._echo is not None and complete and line.strip() == self._echo.line:
                return self._drop_lead(text, start)
            if i > 0 and _indent(line) < self._min_indent:
                return self._end_before(text, start)
            if not self._block:
                continue
            indent = _indent(full)
            if first_indent is None:
                first_indent = indent
                same_block = self._next_indent is not None and self._next_indent >= indent
                if complete and end < len(text) and (self._inside_line or same_block):
                    # Mid-line, the rest of the line follows in the suffix: no newline of ours.
                    return end if self._head.strip() else self._drop_lead(text, end + 1)
            elif indent < first_indent:
                return self._end_before(text, start)
        return None

    def hold_from(self, text: str) -> int:
        start = text.rfind("\n") + 1
        line = text[start:].strip()
        if start == 0:
            undecided = self._block and not (self._head + line).strip()
        else:
            undecided = not line or (self._echo is not None and self._echo.line.startswith(line))
        # An undecided line may be cut, and with it the blank lines before it.
        return len(text[:start].rstrip()) if undecided else len(text)


def _keep_tail_lines(text: str, count: Callable[[str], int], budget: int) -> str:
    """The longest run of whole lines ending ``text`` that fits ``budget`` tokens."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        cost = count(line)
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return "".join(reversed(kept))


def _keep_head_lines(text: str, count: Callable[[str], int], budget: int) -> str:
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = count(line)
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return "".join(kept)


def fit(req: FimRequest, count: Callable[[str], int], budget: int) -> FimRequest:
    """Trim ``req`` so its text fits ``budget`` tokens, the way editors expect.

    Extra files go first (the last given first).  Then the suffix is kept to at
    most a quarter of the budget (cut from its end) and the prefix gets the rest
    (cut from its start), both at line boundaries, so the text nearest the
    cursor always survives.  Control tokens are few; callers leave headroom.
    """
    n_prefix, n_suffix = count(req.prefix), count(req.suffix)
    extra = list(req.extra)
    n_extra = [count(e.filename) + count(e.text) + 2 for e in extra]
    while extra and n_prefix + n_suffix + sum(n_extra) > budget:
        extra.pop()
        n_extra.pop()
    if n_prefix + n_suffix + sum(n_extra) <= budget:
        return replace(req, extra=tuple(extra))
    suffix = req.suffix
    if n_suffix > budget // 4:
        suffix = _keep_head_lines(req.suffix, count, budget // 4)
        n_suffix = count(suffix)
    prefix = req.prefix
    if n_prefix + n_suffix > budget:
        prefix = _keep_tail_lines(req.prefix, count, budget - n_suffix)
        if not prefix:  # one huge cursor line: keep its end (≥1 char per token)
            prefix = req.prefix[-max(1, budget - n_suffix) :]
    return replace(req, prefix=prefix, suffix=suffix, extra=())


# Room left for control tokens and file headers when fitting a FIM prompt.
FIM_HEADROOM = 32


def prompt_budget(engine: Engine, max_tokens: int, reserved: int = 0) -> int:
    """Tokens left for the FIM text once the answer, control tokens and ``reserved`` are set aside."""
    budget = engine.n_ctx - max_tokens - FIM_HEADROOM - reserved
    if budget <= 0:
        raise InvalidRequestError(
            f"max_tokens={max_tokens} leaves no room for the prompt in a {engine.n_ctx}-token context.",
            param="max_tokens",
        )
    return budget
