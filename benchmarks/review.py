"""The review, measured (``make bench-review``): recall on seeded faults mixed into benign edits, and noise
on benign PRs (benchmarks/review_set.py), with and without the differential check, bandit beside the model.

- found: a shown finding (confidence >= the default threshold, not capped) starts or ends within 3 lines
  of the fault;
- noise: shown findings per 100 changed lines on benign PRs (and, on fault PRs, those not near the fault);
- without verification: the model's own claims (any confidence) within 3 lines, and per 100 lines;
- seconds per 100 changed lines, on this machine's CPU.

    python benchmarks/review.py --faults 100 --benign 50 --json bench-out/review.json
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import inspect
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import review_set
from benchmarks.harness import cpu_name
from benchmarks.repair_sets import faults
from codespark.config import load_settings
from codespark.engine.loader import load_engines
from codespark.review.findings import Finding
from codespark.review.run import ReviewOptions
from codespark.services.review import RepoReview, ReviewService
from codespark.services.state import AppState

NEAR = 3


def near(f: Finding, lines: tuple[int, ...]) -> bool:
    return any(f.start - NEAR <= line <= f.end + NEAR for line in lines)


def score(pr: review_set.PullRequest, result: Any) -> dict[str, Any]:
    shown = result.shown
    claims = [f for f in result.raw if f.source == "model"]
    return {
        "pr": pr.pr_id, "fault": bool(pr.fault_lines), "edits": list(pr.edits), "fault_lines": list(pr.fault_lines),
        "changed_lines": result.changed_lines, "units": result.units, "seconds": round(result.seconds, 1),
        "found": any(near(f, pr.fault_lines) for f in shown),
        "found_by": sorted({f.source for f in shown if near(f, pr.fault_lines)}),
        "claimed": any(near(f, pr.fault_lines) for f in claims),
        "shown": len(shown), "shown_off_fault": sum(not near(f, pr.fault_lines) for f in shown),
        "claims": len(claims), "claims_off_fault": sum(not near(f, pr.fault_lines) for f in claims),
        "bandit": sum(f.source == "bandit" for f in shown),
        "differential": sum(f.source == "differential" for f in result.findings),
        "verified": sum(f.verified for f in shown),
        "findings": [{"source": f.source, "rule": f.rule_id, "start": f.start, "end": f.end,
                      "confidence": f.confidence, "shown": f in shown, "message": f.message[:300]}
                     for f in result.findings],
    }  # fmt: skip


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fault = [r for r in rows if r["fault"]]
    benign = [r for r in rows if not r["fault"]]

    def per100(items: list[dict[str, Any]], key: str) -> float | None:
        lines = sum(r["changed_lines"] for r in items)
        return round(100 * sum(r[key] for r in items) / lines, 2) if lines else None

    seconds = sum(r["seconds"] for r in rows)
    lines = sum(r["changed_lines"] for r in rows)
    return {
        "fault_prs": len(fault), "benign_prs": len(benign),
        "recall": round(sum(r["found"] for r in fault) / len(fault), 3) if fault else None,
        "recall_by_kind": _by_kind(fault),
        "noise_per_100_lines": per100(benign, "shown"),
        "noise_on_fault_prs_per_100_lines": per100(fault, "shown_off_fault"),
        "unverified_recall": round(sum(r["claimed"] for r in fault) / len(fault), 3) if fault else None,
        "unverified_noise_per_100_lines": per100(benign, "claims"),
        "bandit_findings_shown": sum(r["bandit"] for r in rows),
        "bandit_per_100_lines": per100(rows, "bandit"),
        "found_by": {s: sum(s in r["found_by"] for r in fault) for s in ("differential", "model", "bandit")},
        "verified_by_test": sum(r["verified"] for r in rows),
        "seconds_per_100_lines": round(100 * seconds / lines, 1) if lines else None,
        "median_seconds_per_pr": statistics.median([r["seconds"] for r in rows]) if rows else None,
        "mean_changed_lines": round(lines / len(rows), 1) if rows else None,
    }  # fmt: skip


def _by_kind(rows: list[dict[str, Any]]) -> dict[str, str]:
    kinds: dict[str, list[bool]] = {}
    for r in rows:
        kinds.setdefault(r["pr"].split(":")[2], []).append(r["found"])
    return {k: f"{sum(v)}/{len(v)}" for k, v in sorted(kinds.items())}


def benign_targets() -> list[faults.Bug]:
    """Every doctested function of the fault modules, as a "bug" with no fault (the benign PRs' targets)."""
    out = []
    for module_name, file in faults.MODULES:
        module = importlib.import_module(module_name)
        source = inspect.getsource(module)
        functions = dict(faults._functions(ast.parse(source)))
        for name in faults._doctested(module):
            fn = functions.get(name)
            if fn is not None:
                text = faults._splice(source, fn, fn)
                out.append(faults.Bug(f"{module_name}.{name}:benign:0", module_name, file, name, "benign", text, text))
    return out


def build(n_faults: int, n_benign: int, seed: int, cache: Path) -> list[review_set.PullRequest]:
    rng = random.Random(seed)
    bugs = faults.seed_bugs(faults.FaultChecker(cache / "check"), n_faults + 30, seed=seed)
    prs: list[review_set.PullRequest] = []
    for bug in bugs:
        if len(prs) >= n_faults:
            break
        pr = review_set.make(bug, rng, cache / "verify" / bug.bug_id.replace(":", "_"), fault=True)
        if pr is not None:
            prs.append(pr)
    targets = benign_targets()
    rng.shuffle(targets)
    benign = 0
    for round_ in range(3):  # up to three PRs per function, each with its own random edits
        for bug in targets:
            if benign >= n_benign:
                break
            pr = review_set.make(bug, rng, cache / "verify" / f"{bug.bug_id.replace(':', '_')}-{round_}", fault=False)
            if pr is not None and pr.head != pr.base:
                prs.append(replace(pr, pr_id=f"{pr.pr_id}:{round_}"))
                benign += 1
    return prs


async def run(args: argparse.Namespace, service: ReviewService, prs: list[review_set.PullRequest],
              cache: Path, rows: list[dict[str, Any]], done: set[str]) -> None:  # fmt: skip
    options = ReviewOptions(verify=not args.no_verify)
    for i, pr in enumerate(prs, 1):
        if pr.pr_id in done:
            continue
        folder = cache / "prs" / pr.pr_id.replace(":", "_")
        review_set.write_repo(pr, folder)
        result = await service.review_repo(RepoReview(folder, "main", options, log=False))
        row = score(pr, result)
        rows.append(row)
        if args.json is not None:
            with args.json.with_suffix(".rows.jsonl").open("a") as out:
                out.write(json.dumps(row) + "\n")
        fault = [r for r in rows if r["fault"]]
        print(f"[{i}/{len(prs)}] {pr.pr_id}: found={row['found']} shown={row['shown']} ({row['seconds']} s) | "
              f"recall {sum(r['found'] for r in fault)}/{len(fault)}", file=sys.stderr, flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--benign", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", default="codex", choices=("codex", "spark"))
    parser.add_argument(
        "--calls-engine",
        default="spark",
        choices=("codex", "spark"),
        help="The engine that writes the differential check's calls.",
    )
    parser.add_argument("--no-verify", action="store_true", help="The model alone (no differential check).")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--resume", action="store_true", help="Keep the rows checkpointed beside --json.")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="codespark-review-bench-"))
    prs = build(args.faults, args.benign, args.seed, cache)
    print(f"{sum(bool(p.fault_lines) for p in prs)} fault PRs, {sum(not p.fault_lines for p in prs)} benign PRs",
          file=sys.stderr, flush=True)  # fmt: skip
    rows: list[dict[str, Any]] = []
    done: set[str] = set()
    rows_file = args.json.with_suffix(".rows.jsonl") if args.json else None
    if rows_file is not None and rows_file.exists():
        if args.resume:
            rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
            done = {r["pr"] for r in rows}
        else:
            rows_file.unlink()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    engines = load_engines(settings, only=tuple(dict.fromkeys((args.engine, args.calls_engine))))
    state = AppState.build(settings, engines)
    service = ReviewService(state.chat, settings.cache_dir, args.engine, args.calls_engine)
    started = time.perf_counter()
    try:
        asyncio.run(run(args, service, prs, cache, rows, done))
        interrupted = False
    except KeyboardInterrupt:
        interrupted = True
    finally:
        engines.close()
    summary = summarize(rows)
    report = {"cpu": cpu_name(), "engine": args.engine, "calls_engine": args.calls_engine,
              "verify": not args.no_verify, "seed": args.seed,
              "wall_s": round(time.perf_counter() - started), "interrupted": interrupted, "summary": summary,
              "rows": rows}  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
