"""Prefill study: what build and configuration settings gain on this CPU.

Runs llama.cpp's own ``llama-bench``, built from the same vendored sources and
no-AMX flags as our wheel (``benchmarks/peers.py``), over a grid of settings:
threads, micro-batch size, flash attention, weight repacking, and quantization
types made from the shipped files with llama.cpp's ``llama-quantize``
(``--allow-requantize``; the quality of a requantized file must be checked
separately, e.g. ``CODESPARK_SPARK_MODEL=FILE python benchmarks/fim_quality.py``).

    python benchmarks/prefill.py --json bench-out/prefill.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.peers import llama_tool
from codespark.config import Settings
from codespark.models.catalog import find

QUANTS = ("Q4_0", "Q8_0")


def shipped(role: str) -> Path:
    spec = find(role)
    assert spec is not None
    return Settings().models_dir / spec.filename


def requantized(role: str, qtype: str, out_dir: Path) -> Path:
    """``role``'s shipped file requantized to ``qtype`` (made once)."""
    out = out_dir / f"{role}-{qtype}.gguf"
    if not out.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(llama_tool("llama-quantize")), "--allow-requantize", str(shipped(role)), str(out), qtype],
            check=True,
            capture_output=True,
        )
    return out


def bench(model: Path, reps: int, **params: str) -> dict[str, float]:
    """pp512 and tg32 tok/s (medians over ``reps``) for one setting."""
    args = [str(llama_tool("llama-bench")), "-m", str(model), "-p", "512", "-n", "32", "-r", str(reps), "-o", "jsonl"]
    for key, value in params.items():
        args += [("--" if len(key) > 2 else "-") + key, value]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = {}
    for line in out.splitlines():
        row = json.loads(line)
        name = "pp512" if row["n_prompt"] else "tg32"
        result[name] = statistics.median(row["samples_ts"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roles", nargs="+", default=["spark", "codex"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quant-dir", type=Path, default=Path("bench-out/quants"))
    parser.add_argument("--json", type=Path, default=Path("bench-out/prefill.json"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []

    def run(role: str, quant: str, model: Path, **params: str) -> None:
        row = {"role": role, "quant": quant, **params, **bench(model, args.reps, **params)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    for role in args.roles:
        model = shipped(role)
        # Our default: 2 threads, ubatch 512, repack off; flash attention and ubatch vary around it.
        for fa, ub, repack in itertools.product(("off", "on"), ("128", "512"), ("0", "1")):
            run(role, "Q4_K_M", model, t="2", fa=fa, ub=ub, repack=repack)
        run(role, "Q4_K_M", model, t="1", fa="off", ub="512", repack="0")
        for qtype in QUANTS:
            for repack in ("0", "1"):
                run(role, qtype, requantized(role, qtype, args.quant_dir), t="2", fa="off", ub="512", repack=repack)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
