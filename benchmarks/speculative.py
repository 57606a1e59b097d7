"""Edit task: decode speed with and without speculative drafting, output checked identical.

The task asks for a rewrite of a real 40-line function (``textwrap.TextWrapper._wrap_chunks``)
with one variable renamed throughout: the answer repeats most of the prompt, which
is where prompt-lookup (n-gram) drafting pays.  Each engine runs greedy, in
process, ``--runs`` times per drafter; medians are reported, and every drafted
output is compared token by token with the plain one.

    python benchmarks/speculative.py --runs 3
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codespark.config import Settings
from codespark.engine import chat
from codespark.engine.backend import CancelToken, GenerationStats, SamplingParams, Snapshot
from codespark.engine.engine import Engine
from codespark.engine.llama import LlamaBackend, LlamaOptions
from codespark.engine.speculative import Drafter, ModelDrafter, NgramDrafter
from codespark.models.catalog import find

FUNCTION = "\n".join(inspect.getsource(textwrap.TextWrapper._wrap_chunks).splitlines()[:40])
TASK = (
    "Rename the variable `chunks` to `pieces` everywhere in this function. "
    "Reply with the complete function only.\n\n```python\n" + FUNCTION + "\n```"
)


def model(role: str) -> Path:
    spec = find(role)
    assert spec is not None
    return Settings().models_dir / spec.filename


def decode(backend: LlamaBackend, tokens: list[int], max_tokens: int) -> tuple[list[int], float, GenerationStats]:
    stats = GenerationStats()
    out: list[int] = []
    first: float | None = None
    for token in backend.generate(tokens, SamplingParams(max_tokens=max_tokens), CancelToken(), stats):
        first = first or time.perf_counter()
        out.append(token)
    elapsed = time.perf_counter() - (first or time.perf_counter())
    return out, (len(out) - 1) / elapsed if elapsed > 0 else 0.0, stats


def measure(role: str, drafters: dict[str, Drafter | None], runs: int, max_tokens: int) -> dict[str, Any]:
    backend = LlamaBackend(model(role), role, LlamaOptions(n_ctx=4096))
    tokens = Engine(backend).tokenize_prompt(chat.build_prompt(backend.info, [chat.Message("user", TASK)]))
    reference: list[int] | None = None
    rows: dict[str, Any] = {"identical": True}
    for name, drafter in drafters.items():
        backend.drafter = drafter
        speeds, accept = [], []
        for _ in range(runs):
            backend.restore(Snapshot([], None, 0))  # cold cache: the same work each run
            out, tps, stats = decode(backend, tokens, max_tokens)
            reference = reference or out
            speeds.append(tps)
            accept.append(stats.accepted / stats.drafted if stats.drafted else 0.0)
            rows["identical"] = rows["identical"] and out == reference
        rows[name] = {
            "decode_tok_s": statistics.median(speeds),
            "acceptance": statistics.median(accept),
            "tokens": len(reference or []),
        }
        print(
            f"{role} {name}: {rows[name]['decode_tok_s']:.1f} tok/s, acceptance {rows[name]['acceptance']:.2f}",
            file=sys.stderr,
            flush=True,
        )
    plain = rows["plain"]["decode_tok_s"]
    for name in drafters:
        rows[name]["speedup"] = rows[name]["decode_tok_s"] / plain if plain else 0.0
    return rows


def peer(role: str, flags: dict[str, list[str]], runs: int, max_tokens: int) -> dict[str, Any]:
    """The same task through llama.cpp's llama-server (its own chat template and speculation)."""
    import httpx

    from benchmarks.peers import llama_server

    rows: dict[str, Any] = {}
    for name, extra in flags.items():
        with llama_server(model(role), extra, Path("bench-out/llama-spec.log"), n_ctx=4096) as base:
            speeds = []
            for _ in range(runs):
                r = httpx.post(
                    base + "/v1/chat/completions",
                    json={
                        "messages": [{"role": "user", "content": TASK}],
                        "temperature": 0,
                        "max_tokens": max_tokens,
                        "cache_prompt": False,
                    },
                    timeout=600,
                )
                speeds.append(r.json()["timings"]["predicted_per_second"])
        rows[name] = {"decode_tok_s": statistics.median(speeds)}
        print(f"llama-server {role} {name}: {rows[name]['decode_tok_s']:.1f} tok/s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("bench-out/speculative.json"))
    parser.add_argument("--peers", action="store_true", help="also run llama-server (built on first use)")
    args = parser.parse_args()
    results = {
        "spark": measure("spark", {"plain": None, "ngram": NgramDrafter()}, args.runs, args.max_tokens),
        "codex": measure(
            "codex",
            {
                "plain": None,
                "ngram": NgramDrafter(),
                "draft-0.5b": ModelDrafter(LlamaBackend(model("spark"), "draft", LlamaOptions(n_ctx=4096))),
            },
            args.runs,
            args.max_tokens,
        ),
    }
    if args.peers:
        draft = ["-md", str(model("spark")), "--spec-type", "draft-simple"]
        results["llama-server"] = {
            "spark": peer("spark", {"plain": [], "ngram": ["--spec-type", "ngram-simple"]}, args.runs, args.max_tokens),
            "codex": peer(
                "codex",
                {"plain": [], "ngram": ["--spec-type", "ngram-simple"], "draft-0.5b": draft},
                args.runs,
                args.max_tokens,
            ),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
