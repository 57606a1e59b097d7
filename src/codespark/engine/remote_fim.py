"""Fill-in-the-middle on an upstream: the request body for each kind of provider (``[[upstreams]] fim``).

- ``infill``: a llama-server upstream's own ``/infill`` (the context files go as ``input_extra``);
- ``suffix``: an OpenAI ``/v1/completions`` that supports ``suffix``;
- ``qwen``, ``starcoder``, ``codellama``, ``deepseek``: the model's own FIM prompt, written here as text
  and sent as a plain ``prompt`` (vLLM's completions have no ``suffix``), with that format's stop strings.

Bodies hold the user's text in ``prompt``/``suffix``/``input_*`` fields, which ``Upstream.start`` redacts
before anything leaves the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codespark.config import FimKind
from codespark.engine.backend import SamplingParams
from codespark.engine.fim import FimRequest


@dataclass(frozen=True)
class RawFormat:
    prefix: str
    suffix: str
    middle: str
    stops: tuple[str, ...]
    file_sep: str | None = None  # repo-level context: files before the current one, when the model has it


RAW_FORMATS: dict[str, RawFormat] = {
    "qwen": RawFormat(
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
        file_sep="<|file_sep|>",
    ),
    "starcoder": RawFormat(
        "<fim_prefix>", "<fim_suffix>", "<fim_middle>", ("<|endoftext|>", "<file_sep>"), file_sep="<file_sep>"
    ),
    "codellama": RawFormat("<PRE> ", " <SUF>", " <MID>", ("<EOT>",)),
    "deepseek": RawFormat("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", ("<｜end▁of▁sentence｜>",)),
}


def raw_prompt(kind: str, req: FimRequest) -> str:
    """The FIM prompt of format ``kind`` as text (context files first, where the format has files)."""
    fmt = RAW_FORMATS[kind]
    head = ""
    if fmt.file_sep is not None and req.extra:
        head = "".join(f"{fmt.file_sep}{e.filename}\n{e.text}" for e in req.extra)
        head += f"{fmt.file_sep}{req.filename or 'main.py'}\n"
    return f"{head}{fmt.prefix}{req.prefix}{fmt.suffix}{req.suffix}{fmt.middle}"


def parse_prompt(prompt: str) -> FimRequest | None:
    """A whole FIM prompt a client wrote itself (Tabby's ``prompt_template``, sent raw), back into its prefix
    and suffix, so it takes the FIM path with real control tokens; None when it is no known format.
    Text before the prefix marker (a repo-level header) is dropped."""
    for fmt in RAW_FORMATS.values():
        start = prompt.find(fmt.prefix.strip())
        end = prompt.rfind(fmt.middle.strip())
        if start < 0 or end < 0 or prompt[end:].strip() != fmt.middle.strip():
            continue
        body = prompt[start + len(fmt.prefix.strip()) : end]
        prefix, hole, suffix = body.partition(fmt.suffix.strip())
        if not hole:
            continue
        if fmt.prefix.endswith(" "):  # codellama's "<PRE> {prefix} <SUF>{suffix} <MID>": its spaces are format
            prefix = prefix.removeprefix(" ").removesuffix(" ")
            suffix = suffix.removesuffix(" ")
        return FimRequest(prefix, suffix)
    return None


def body(kind: FimKind, req: FimRequest, params: SamplingParams, stops: tuple[str, ...]) -> dict[str, Any]:
    """The request body for an upstream of ``kind`` (not ``none``)."""
    sampling: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p}
    if params.seed is not None:
        sampling["seed"] = params.seed
    if kind == "infill":
        return {
            "input_prefix": req.prefix,
            "input_suffix": req.suffix,
            "input_extra": [{"filename": e.filename, "text": e.text} for e in req.extra],
            "n_predict": params.max_tokens,
            "top_k": params.top_k,
            "stop": list(stops),
            **sampling,
        }
    if kind == "suffix":
        return {"prompt": req.prefix, "suffix": req.suffix, "max_tokens": params.max_tokens,
                "stop": list(stops)[:4], **sampling}  # fmt: skip
    # OpenAI allows four stop strings: the format's own end tokens go; the caller's are applied here, locally.
    stop = list(RAW_FORMATS[kind].stops)[:4]
    return {"prompt": raw_prompt(kind, req), "max_tokens": params.max_tokens, "stop": stop, **sampling}
