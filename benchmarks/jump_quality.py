"""What KV reuse across positions costs in answers: HumanEval single-line infilling after a cursor jump.

For each task, in its own session, the editor first asks at another place of the same file: the
cursor two lines above the hole, with the hole's line not yet written (the prompt's last two lines
and the real suffix after the cursor; the missing line itself is never sent).  Then it jumps to the
hole and asks for it, as the quality set does.  With a latency budget (``t_max_prompt_ms``, as
llama.vim sends) the second request reuses the first's KV out of place: the common prefix, and the
runs after it computed behind other text (``cache_reuse``).  Without a budget only the exact common
prefix is reused and the rest is evaluated afresh.  Comparing the two passes (same server, pinned
engine, same prompts, greedy) isolates what out-of-place reuse costs.

    python benchmarks/jump_quality.py --tasks 100 --engines spark codex
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.fim_quality import DATA, load_tasks, passes
from benchmarks.harness import codespark_server, cpu_name


def _cut(prompt: str, lines: int = 2) -> int:
    """Where the prompt's last ``lines`` lines start (the earlier place the cursor jumps from)."""
    at = len(prompt)
    for _ in range(lines + 1):
        found = prompt.rfind("\n", 0, at)
        if found < 0:
            return 0
        at = found
    return at + 1


def after_jumps(
    base: str, engine: str, tasks: list[dict[str, Any]], n_predict: int, budget: dict[str, Any]
) -> dict[str, Any]:
    results = []
    with httpx.Client(timeout=600) as http:
        for i, task in enumerate(tasks):
            session = {"X-Session": f"jump-{engine}-{i}-{time.time_ns()}"}
            cut = _cut(task["prompt"])
            before = {"model": engine, "input_prefix": task["prompt"][:cut], "n_predict": n_predict, "temperature": 0,
                      "input_suffix": task["prompt"][cut:] + task["suffix"], **budget}  # fmt: skip
            http.post(base + "/infill", json=before, headers=session).raise_for_status()
            asked = {"model": engine, "input_prefix": task["prompt"], "input_suffix": task["suffix"],
                     "n_predict": n_predict, "temperature": 0, **budget}  # fmt: skip
            r = http.post(base + "/infill", json=asked, headers=session)
            r.raise_for_status()
            body = r.json()
            timings = body["timings"]
            ok = passes(task, body["content"])
            results.append({"task_id": task["task_id"], "middle": body["content"], "pass": ok,
                            "prompt_n": timings["prompt_n"], "cache_n": timings["cache_n"],
                            "shift_n": timings.get("cache_shift_n", 0)})  # fmt: skip
            print(f"\r  {engine}: {i + 1}/{len(tasks)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {
        "engine": engine,
        "tasks": len(results),
        "pass_rate": sum(r["pass"] for r in results) / len(results),
        "shifted_share": statistics.mean(r["shift_n"] / max(1, r["prompt_n"]) for r in results),
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--engines", nargs="+", default=["spark", "codex"])
    parser.add_argument("--n-predict", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench-out/jump_quality.json"))
    args = parser.parse_args()
    tasks = load_tasks(DATA / "HumanEval-SingleLineInfilling.jsonl.gz", args.tasks)
    runs: dict[str, Any] = {"cpu": cpu_name()}
    with codespark_server(args.out.parent / "jump_quality.log") as base:
        for label, budget in (("shifted", {"t_max_prompt_ms": 500}), ("prefix-only", {})):
            runs[label] = [after_jumps(base, e, tasks, args.n_predict, budget) for e in args.engines]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1) + "\n")
    for shifted, exact in zip(runs["shifted"], runs["prefix-only"], strict=True):
        same = sum(a["middle"] == b["middle"] for a, b in zip(shifted["results"], exact["results"], strict=True))
        print(f"{shifted['engine']}: pass rate after a jump {shifted['pass_rate']:.2f} with out-of-place reuse "
              f"({shifted['shifted_share']:.0%} of each prompt), {exact['pass_rate']:.2f} exact; "
              f"same answer {same}/{shifted['tasks']}")  # fmt: skip


if __name__ == "__main__":
    main()
