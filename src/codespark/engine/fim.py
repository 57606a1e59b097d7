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

from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Engine, GenerationRequest
from codespark.engine.prompt import Prompt, Special
from codespark.engine.text import Echo
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
    repo_name: str | None = None


def build_prompt(req: FimRequest) -> Prompt:
    """Qwen FIM prompt: plain PSM, or the repo-level form when context is given."""
    body: Prompt = [FIM_PREFIX, req.prefix, FIM_SUFFIX, req.suffix, FIM_MIDDLE]
    if not req.extra and req.filename is None and req.repo_name is None:
        return body
    head: Prompt = [REPO_NAME, (req.repo_name or "repo") + "\n"]
    for extra in req.extra:
        text = extra.text if extra.text.endswith("\n") else extra.text + "\n"
        head += [FILE_SEP, extra.filename + "\n", text]
    head += [FILE_SEP, (req.filename or "main.py") + "\n"]
    return head + body


def echo_target(suffix: str) -> Echo | None:
    """How to recognise the model echoing ``suffix`` back.

    The target is the first non-blank line of the suffix, stripped; lines of
    fewer than two visible characters (``}``, ``)``) are too common to judge by.
    ``lead_newlines`` counts the newlines the suffix has before that line: the
    same newlines generated just before an echoed line belong to the suffix
    and are dropped too, while a newline the suffix lacks (the hole ends a
    line) is kept.
    """
    lead = 0
    for line in suffix.splitlines(keepends=True):
        stripped = line.strip()
        if stripped:
            return Echo(stripped, lead) if len(stripped) >= 2 else None
        lead += line.count("\n")
    return None


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


def generation(
    engine: Engine,
    req: FimRequest,
    params: SamplingParams,
    stops: tuple[str, ...] = (),
    t_max_predict_ms: float | None = None,
) -> GenerationRequest:
    """A FIM generation fitted to ``engine``'s context, stopping at suffix echoes."""
    budget = engine.n_ctx - params.max_tokens - FIM_HEADROOM
    if budget <= 0:
        raise InvalidRequestError(
            f"max_tokens={params.max_tokens} leaves no room for the prompt in a {engine.n_ctx}-token context.",
            param="max_tokens",
        )
    req = fit(req, engine.count_tokens, budget)
    return GenerationRequest(
        prompt=build_prompt(req),
        params=params,
        stops=stops,
        echo=echo_target(req.suffix),
        at_line_start=req.prefix.rsplit("\n", 1)[-1].strip() == "",
        t_max_predict_ms=t_max_predict_ms,
    )
