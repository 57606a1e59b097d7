"""``codespark bench``: cold prefill tok/s, FIM TTFT and decode tok/s per engine, as medians.

Also measures this machine's memory read bandwidth, which bounds decode speed:
every generated token reads all the weights once, so ``bandwidth / file size``
is the decode ceiling.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from codespark.config import Settings
from codespark.engine import chat, fim
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Engine, GenerationRequest
from codespark.engine.loader import load_engines
from codespark.services.fim import one_shot

# Real code nobody here wrote: the standard library's argparse module.
_SOURCE = Path(argparse.__file__).read_text()
_DECODE_QUESTION = "Write a Python class implementing a red-black tree with insert, delete and search."


def memory_bandwidth_gbs(threads: int | None = None, size_mb: int = 1024, repeats: int = 5) -> float:
    """Median read bandwidth (GB/s) summing a large array with ``threads`` threads."""
    n = threads or os.cpu_count() or 1
    chunks = [np.ones(size_mb * 1024 * 1024 // 8 // n, dtype=np.float64) for _ in range(n)]
    total_bytes = sum(c.nbytes for c in chunks)
    speeds = []
    for _ in range(repeats):
        workers = [threading.Thread(target=np.sum, args=(c,)) for c in chunks]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        speeds.append(total_bytes / (time.perf_counter() - start) / 1e9)
    return statistics.median(speeds)


def _head_with_tokens(engine: Engine, text: str, n_tokens: int) -> str:
    """The longest run of whole lines from the start of ``text`` within ``n_tokens``."""
    out: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        cost = engine.count_tokens(line)
        if used + cost > n_tokens:
            break
        out.append(line)
        used += cost
    return "".join(out)


def _unique() -> str:
    # A fresh first line defeats the KV cache, so every run is cold.
    return f"# bench run {uuid.uuid4().hex}\n"


async def _measure_engine(engine: Engine, runs: int, fim_tokens: int) -> dict[str, Any]:
    prefill, ttft, decode = [], [], []
    code = _head_with_tokens(engine, _SOURCE, fim_tokens)
    split = int(len(code) * 0.75)
    split = code.rfind("\n", 0, split) + 1
    prefix, suffix = code[:split], code[split:]
    for _ in range(runs):
        cold = GenerationRequest([_unique() + code[:split]], SamplingParams(max_tokens=0))
        result = await engine.run(cold)
        prefill.append(result.timings.prompt_per_second)
        job = one_shot(engine, fim.FimRequest(_unique() + prefix, suffix), SamplingParams(max_tokens=1))
        result = await engine.run(job)
        ttft.append(result.timings.ttft_ms)
        prompt = chat.build_prompt(engine.backend.info, [chat.Message("user", _DECODE_QUESTION)])
        result = await engine.run(GenerationRequest(prompt, SamplingParams(max_tokens=128)))
        decode.append(result.timings.decode_per_second)
    size = os.path.getsize(engine.backend.info.path)
    return {
        "model": engine.backend.info.model_id,
        "file_bytes": size,
        "prefill_tokens": engine.count_tokens(code[:split]),
        "fim_prompt_tokens": engine.count_tokens(code),
        "prefill_tok_s": statistics.median(prefill),
        "fim_ttft_ms": statistics.median(ttft),
        "decode_tok_s": statistics.median(decode),
        "runs": runs,
    }


async def run_bench(
    settings: Settings, routes: tuple[str, ...], runs: int, fim_tokens: int, console: Console
) -> dict[str, Any]:
    """Measure each engine in ``routes``; return a JSON-able dict."""
    console.print("measuring memory bandwidth ...")
    bandwidth = memory_bandwidth_gbs(settings.n_threads)
    results: dict[str, Any] = {"memory_bandwidth_gbs": bandwidth, "threads": settings.n_threads or os.cpu_count()}
    for route in routes:
        engines = load_engines(settings, only=(route,))
        try:
            console.print(f"measuring {route} ({runs} runs) ...")
            row = await _measure_engine(engines.routes[route], runs, fim_tokens)
        finally:
            engines.close()
        row["decode_ceiling_tok_s"] = bandwidth * 1e9 / row["file_bytes"]
        results[route] = row
    return results


def render_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"codespark bench (medians; memory read bandwidth {results['memory_bandwidth_gbs']:.1f} GB/s)")
    for column in ("engine", "model", "cold prefill tok/s", "FIM TTFT ms", "decode tok/s", "decode ceiling tok/s"):
        table.add_column(column)
    for route, row in results.items():
        if not isinstance(row, dict):
            continue
        table.add_row(
            route,
            row["model"],
            f"{row['prefill_tok_s']:.1f} ({row['prefill_tokens']} tok)",
            f"{row['fim_ttft_ms']:.0f} ({row['fim_prompt_tokens']} tok)",
            f"{row['decode_tok_s']:.1f}",
            f"{row['decode_ceiling_tok_s']:.1f}",
        )
    return table
