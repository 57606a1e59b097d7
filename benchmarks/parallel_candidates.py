"""The fix loop's candidates sampled side by side (``Engine.run_many``) against one after another.

1. What one decoding step costs by the number of answers it carries (1, 2, 4, 8), after a 600-token
   prompt: the weights are read once per step, so a wider step costs far less than that many steps.
2. A fix prompt's candidates (the first greedy, the rest sampled at 0.8-1.1 with their own seeds), as the
   fix loop asks for them: one ``ChatSampler.sample`` each, in a row, against one ``sample_many``; the
   median over ``--runs``, and whether the answers are identical.

    python benchmarks/parallel_candidates.py --engine codex --runs 3 --json bench-out/parallel-candidates.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name
from codespark.config import load_settings
from codespark.engine.backend import SamplingParams
from codespark.engine.chat import Message
from codespark.engine.llama import LlamaBackend
from codespark.engine.loader import load_engines
from codespark.services.state import AppState

BUGGY = '''def median(values):
    """The median of a non-empty list of numbers."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle] + ordered[middle + 1]) / 2
'''
FIX_PROMPT = [
    Message(
        "system",
        "You fix bugs in Python code so that failing tests pass. Reply with the complete corrected "
        "definition in one ```python code block, and nothing else.",
    ),
    Message(
        "user",
        f"The tests fail. Fix the function `median`.\n\n```python\n{BUGGY}```\n\nTest test_even failed.\n"
        "Error: AssertionError: assert median([1, 2, 3, 4]) == 2.5 (got 3.5)\n\n"
        "Write the corrected `median` in full, in one ```python block.",
    ),
]


def step_costs(backend: LlamaBackend, widths: list[int], steps: int = 24) -> dict[int, float]:
    """Milliseconds per decoding step carrying one token of each of ``width`` answers (median of 3)."""
    llm = backend._llm
    prompt = backend.tokenize(BUGGY * 8)[:600]
    memory = llama_cpp.llama_get_memory(llm._ctx.ctx)
    llama_cpp.llama_memory_seq_rm(memory, -1, -1, -1)
    llm.n_tokens = 0
    llm.eval(prompt)
    raw = llm._batch.batch
    out: dict[int, float] = {}
    for width in widths:
        times = []
        for _ in range(3):
            for k in range(1, width + 1):
                llama_cpp.llama_memory_seq_rm(memory, k, -1, -1)
                llama_cpp.llama_memory_seq_cp(memory, 0, k, 0, len(prompt))
            started = time.perf_counter()
            for step in range(steps):
                for j in range(width):
                    raw.token[j], raw.pos[j], raw.n_seq_id[j], raw.logits[j] = 100 + j, len(prompt) + step, 1, 1
                    raw.seq_id[j][0] = j + 1
                raw.n_tokens = width
                llm._ctx.decode(llm._batch)
            times.append((time.perf_counter() - started) * 1000 / steps)
        for k in range(1, width + 1):
            llama_cpp.llama_memory_seq_rm(memory, k, -1, -1)
        out[width] = round(statistics.median(times), 1)
    return out


async def candidates(state: AppState, engine: str, n: int, runs: int) -> dict[str, Any]:
    sampler = state.fix.samplers(engine)[0][0]
    assert hasattr(sampler, "sample_many")
    params = [SamplingParams(max_tokens=256, temperature=0.0 if i == 0 else min(1.1, 0.8 + 0.1 * (i // 2)),
                             top_p=0.95, seed=1000 + i) for i in range(n)]  # fmt: skip
    await sampler.sample(FIX_PROMPT, params[0])  # the prompt cached for both ways alike
    alone_s, together_s, same = [], [], True
    for _ in range(runs):
        started = time.perf_counter()
        alone = [await sampler.sample(FIX_PROMPT, p) for p in params]
        alone_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        together = await sampler.sample_many(FIX_PROMPT, params)
        together_s.append(time.perf_counter() - started)
        same &= alone == together
    a, t = statistics.median(alone_s), statistics.median(together_s)
    return {"candidates": n, "one_after_another_s": round(a, 1), "side_by_side_s": round(t, 1),
            "speedup": round(a / t, 2), "identical_answers": same}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="codex", choices=("codex", "spark"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--candidates", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = load_settings()
    engines = load_engines(settings, only=(args.engine,))
    try:
        state = AppState.build(settings, engines)
        backend = state.router.engines.routes[args.engine].backend
        assert isinstance(backend, LlamaBackend)
        report: dict[str, Any] = {"cpu": cpu_name(), "engine": args.engine, "threads": settings.n_threads,
                                  "step_ms_by_width": step_costs(backend, [1, 2, 4, 8])}  # fmt: skip
        print(json.dumps(report), flush=True)
        report["candidates"] = [asyncio.run(candidates(state, args.engine, n, args.runs)) for n in args.candidates]
    finally:
        engines.close()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
