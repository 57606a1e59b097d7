"""What one llama.cpp batch costs by its size, and what a KV key shift adds, per load option, on this CPU.

A cursor jump evaluates a few small batches (the gaps between moved runs, then the tail), so their cost,
not the per-token speed of big batches, sets its latency.  For each load option (weight repacking,
flash attention, context size) the harness evaluates batches of 1-256 tokens after a 1,000-token
context (median of 3), one token after a key shift of half the cache, and a cold 1,024-token prompt.

    python benchmarks/prefill_batches.py --model spark
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name
from codespark.config import load_settings
from codespark.engine.llama import LlamaBackend, LlamaOptions
from codespark.models.provision import resolve

SIZES = (1, 4, 16, 64, 128, 256)
OPTIONS = {
    "default": LlamaOptions(),
    "repack": LlamaOptions(repack=True),
    "no flash attention": LlamaOptions(flash_attn=False),
    "n_ctx 4096": LlamaOptions(n_ctx=4096),
}
CONTEXT = 1000


def _ms(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def measure(path: Path, options: LlamaOptions) -> dict[str, float]:
    backend = LlamaBackend(path, path.stem, options)
    llm = backend._llm
    memory = llama_cpp.llama_get_memory(llm._ctx.ctx)
    text = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text()
    tokens = backend.tokenize(text)[:1600]

    def keep(n: int) -> None:
        llama_cpp.llama_memory_seq_rm(memory, 0, n, -1)
        llm.n_tokens = n

    keep(0)
    for i in range(0, CONTEXT, 512):
        llm.eval(tokens[i : min(CONTEXT, i + 512)])
    out: dict[str, float] = {}
    for size in SIZES:
        batch = tokens[CONTEXT : CONTEXT + size]
        times = []
        for _ in range(3):
            keep(CONTEXT)
            times.append(_ms(lambda: llm.eval(batch)))  # noqa: B023 (called at once)
        out[f"batch {size}"] = statistics.median(times)
    times = []
    for _ in range(3):
        keep(CONTEXT)
        llama_cpp.llama_memory_seq_add(memory, 0, CONTEXT // 2, -1, 2)  # a net shift of 0: keys re-rotated
        llama_cpp.llama_memory_seq_add(memory, 0, CONTEXT // 2 + 2, -1, -2)
        times.append(_ms(lambda: llm.eval(tokens[CONTEXT : CONTEXT + 1])))
    out["batch 1 after a key shift"] = statistics.median(times)
    keep(0)
    out["cold 1024"] = _ms(lambda: [llm.eval(tokens[i : i + 512]) for i in range(0, 1024, 512)])
    backend._llm.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="spark", choices=["spark", "codex"])
    args = parser.parse_args()
    settings = load_settings()
    _, path = resolve(
        settings.spark_model if args.model == "spark" else settings.codex_model, settings.models_dir, True
    )
    results = {"cpu": cpu_name(), "model": args.model, "ms": {}}
    for name, options in OPTIONS.items():
        results["ms"][name] = row = measure(path, options)
        print(name + ": " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
