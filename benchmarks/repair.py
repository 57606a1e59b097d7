"""The self-healing loop, measured (``make bench-repair``).

1. ``--part humaneval``: the 164 HumanEval problems with visible tests only.  The docstring's examples
   become the loop's tests; the plain answer is the codex engine's greedy completion; the loop starts
   from it, runs the visible tests and repairs or resamples on failure.  pass@1 on the hidden tests is
   scored once per problem, at the end, in a folder the loop never sees.
2. ``--part faults``: seeded faults in the functions of pure-Python modules nobody here wrote (their own
   doctests are the tests); fixed share, tests edited (must be 0) and the share of fixes that change
   only the faulty function.

    python benchmarks/repair.py --part humaneval --rounds 2 --candidates 4 --json bench-out/repair-humaneval.json
    python benchmarks/repair.py --part faults --bugs 100 --rounds 2 --candidates 3 --json bench-out/repair-faults.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name
from benchmarks.repair_sets import faults, humaneval
from codespark.agent import sandbox
from codespark.agent.edit import RefusedEdit, replace_unit
from codespark.agent.localize import Project, units_of
from codespark.agent.loop import FixLoop, FixOptions, Sampler
from codespark.agent.sandbox import Limits
from codespark.agent.testrun import TestCommand, detect
from codespark.agent.workspace import Workspace
from codespark.config import load_settings
from codespark.context import names
from codespark.engine.backend import SamplingParams
from codespark.engine.chat import Message
from codespark.engine.loader import load_engines
from codespark.services.state import AppState

NAMES_REFUSED = "uses names that do not exist"  # the loop's reason for a candidate refused before any test run
# The benchmark's workspaces need no pytest plugin; autoloading this environment's (hypothesis, schemathesis,
# anyio) costs ~2.5 s a test run on a 2-core AMD EPYC (3.0 s against 0.46 s for one test).
PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest"
PLAIN_PROMPT = (
    "Complete the following Python function. Reply with the whole function (and any imports it needs) "
    "in one ```python code block.\n\n```python\n{prompt}```"
)


def _options(args: argparse.Namespace) -> FixOptions:
    return FixOptions(rounds=args.rounds, candidates=args.candidates, mutants=args.mutants, trust=args.trust,
                      limits=Limits(timeout_s=60), test_timeout_s=5)  # fmt: skip


async def run_loop(
    folder: Path, command: TestCommand, sampler: Sampler, options: FixOptions, cache: Path
) -> dict[str, Any]:
    """The loop over ``folder`` (a temp copy); returns its final event and the best files it reached."""
    workspace = Workspace.open(folder, cache)
    try:
        loop = FixLoop(workspace, command, [sampler], options)
        candidates = 0
        final: dict[str, Any] = {}
        names_refused = 0
        mutation: dict[str, Any] = {"tried": 0, "fixed": None}
        static = False
        async for event in loop.events():
            static |= event.kind == "static"
            if event.kind == "candidate":
                candidates += 1
                d = event.data
                names_refused += d["reason"].startswith(NAMES_REFUSED)
                print(f"    round {d['round']} candidate {d['index'] + 1}: {d['outcome']}, {d['failing']} failing, "
                      f"{d['seconds']} s: {d['reason'][:100]}", file=sys.stderr, flush=True)  # fmt: skip
            if event.kind == "mutation":
                mutation = dict(event.data)
                print(f"    single-token repairs: {mutation['tried']} tried, {mutation['seconds']} s, fixed: "
                      f"{mutation['fixed']}, tests reject {mutation.get('rejected')}/{mutation.get('probed')} "
                      f"of its neighbours", file=sys.stderr, flush=True)  # fmt: skip
            if event.kind == "finished":
                final = dict(event.data)
        changed = {path: workspace.read(path) for path in final.get("changed", [])}
        return {**final, "candidates": candidates, "files": changed, "mutants_tried": mutation["tried"],
                "mutant_found": mutation["fixed"] is not None, "mutant_trusted": mutation.get("trusted"),
                "mutant_lines": mutation.get("lines", []), "names_refused": names_refused,
                "static": static}  # fmt: skip
    finally:
        workspace.close()


def _with_lines(text: str, lines: list[tuple[int, str]]) -> str:
    out = text.splitlines()
    for number, line in lines:
        out[number - 1] = line
    return "\n".join(out) + "\n"


def hidden_pass(problem: humaneval.Problem, solution: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="codespark-hidden-") as tmp:
        (Path(tmp) / "hidden.py").write_text(humaneval.hidden_program(problem, solution))
        done = sandbox.run(f"{sys.executable} hidden.py", Path(tmp), Limits(timeout_s=20))
    return done.ok


async def plain_solution(sampler: Sampler, problem: humaneval.Problem, folder: Path) -> tuple[str, list[str]]:
    """The engine's greedy answer, put in place of the stub (the stub stays when it cannot be parsed), and
    what the chat check (``names.in_answer``, as ``codespark_checks`` on a chat answer) flags in it."""
    stub = humaneval.stub(problem)
    messages = [Message("user", PLAIN_PROMPT.format(prompt=problem.prompt))]
    answer = await sampler.sample(messages, SamplingParams(max_tokens=768))
    flagged = names.in_answer(answer)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / humaneval.SOLUTION).write_text(stub)
    project = Project(folder)
    unit = next(u for u in units_of(stub, humaneval.SOLUTION) if u.name == problem.entry_point)
    try:
        return replace_unit(project, unit, answer).after, flagged
    except RefusedEdit:
        return stub, flagged


async def bench_humaneval(sampler: Sampler, args: argparse.Namespace, out: list[dict[str, Any]]) -> dict[str, Any]:
    options = _options(args)
    problems = [p for p in humaneval.load(args.limit) if not args.tasks or p.task_id in args.tasks]
    cache = Path(tempfile.mkdtemp(prefix="codespark-repair-"))
    done_ids = _resume(args, out, "task_id")
    for i, problem in enumerate(problems, 1):
        if problem.task_id in done_ids:
            continue
        started = time.perf_counter()
        folder = cache / problem.task_id.replace("/", "_")
        plain, flagged = await plain_solution(sampler, problem, folder)
        plain_ok = hidden_pass(problem, plain)
        examples = humaneval.visible_examples(problem)
        row: dict[str, Any] = {"task_id": problem.task_id, "plain": plain_ok, "visible": len(examples),
                               "plain_flagged": flagged}  # fmt: skip
        final = plain
        if examples:
            humaneval.write_workspace(problem, folder, plain)
            command = detect(folder, PYTEST)
            result = await run_loop(folder, command, sampler, options, cache / "runs")
            final = result["files"].get(humaneval.SOLUTION, plain)
            row.update(status=result["status"], rounds=result["rounds"], candidates=result["candidates"],
                       timeouts=result["timeouts"], endless=result["endless_tests"], fixed_by=result["fixed_by"],
                       mutants_tried=result["mutants_tried"], names_refused=result["names_refused"],
                       mutant_found=result["mutant_found"], mutant_trusted=result["mutant_trusted"],
                       mutant_lines=result["mutant_lines"], static=result["static"])  # fmt: skip
        else:
            row.update(status="no-visible-tests", rounds=0, candidates=0, timeouts=0, endless=0)
        row["loop"] = (final == plain and plain_ok) or (final != plain and hidden_pass(problem, final))
        if row.get("mutant_found") and not row.get("static"):  # before the trust rule the first green one-token
            # fix was the answer (its lines are the plain answer's, unless the static pass changed the file first)
            row["mutant_hidden"] = hidden_pass(problem, _with_lines(plain, row["mutant_lines"]))
        row["seconds"] = round(time.perf_counter() - started, 1)
        out.append(row)
        _checkpoint(args, row)
        done = len(out)
        print(f"[{i}/{len(problems)}] {problem.task_id}: plain {plain_ok} loop {row['loop']} ({row['status']}, "
              f"{row['seconds']} s) | plain {sum(r['plain'] for r in out) / done:.3f} "
              f"loop {sum(r['loop'] for r in out) / done:.3f}", file=sys.stderr, flush=True)  # fmt: skip
    return summarize_humaneval(out)


def summarize_humaneval(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    looped = [r for r in rows if r["status"] not in ("already-green", "no-visible-tests")]
    return {
        "problems": n,
        "plain_pass@1": round(sum(r["plain"] for r in rows) / n, 3),
        "loop_pass@1": round(sum(r["loop"] for r in rows) / n, 3),
        "without_visible_tests": sum(r["status"] == "no-visible-tests" for r in rows),
        "visible_green_at_once": sum(r["status"] == "already-green" for r in rows),
        "repaired_visible": sum(r["status"] == "fixed" for r in rows),
        "not_repaired_visible": sum(r["status"] == "not-fixed" for r in rows),
        "green_on_visible_but_hidden_fails": sum(
            r["status"] in ("fixed", "already-green") and not r["loop"] for r in rows
        ),
        "mean_rounds_when_looping": round(statistics.mean(r["rounds"] for r in looped), 2) if looped else 0,
        "mean_candidates_when_looping": round(statistics.mean(r["candidates"] for r in looped), 2) if looped else 0,
        "seconds_per_problem_median": round(statistics.median(r["seconds"] for r in rows), 1),
        "seconds_per_problem_mean": round(statistics.mean(r["seconds"] for r in rows), 1),
        "timeouts": sum(r["timeouts"] for r in rows),
        "endless_tests_stopped": sum(r["endless"] for r in rows),
        **_by_stage(rows),
        **_names_summary(rows),
    }


def _by_stage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What repaired the visible tests (the single-token stage or the model) and how many of those pass the
    hidden ones; and the one-token fixes the stage found, with how many of them the tests vouched for."""
    out: dict[str, Any] = {}
    for by in ("mutation", "model"):
        fixed = [r for r in rows if r["status"] == "fixed" and r.get("fixed_by") == by]
        out[f"repaired_by_{by}"] = len(fixed)
        out[f"repaired_by_{by}_passing_hidden"] = sum(r["loop"] for r in fixed)
    found = [r for r in rows if r.get("mutant_found")]
    out["one_token_fixes_found"] = len(found)
    out["one_token_fixes_trusted"] = sum(bool(r.get("mutant_trusted")) for r in found)
    out["one_token_fixes_passing_hidden"] = sum(bool(r.get("mutant_hidden")) for r in found)
    untrusted = [r for r in found if not r.get("mutant_trusted")]
    out["untrusted_one_token_fixes_passing_hidden"] = sum(bool(r.get("mutant_hidden")) for r in untrusted)
    out["untrusted_rows_passing_hidden_now"] = sum(r["loop"] for r in untrusted)
    # The same run as if the first green one-token fix had ended the search (the rule before trust):
    before = sum(r.get("mutant_hidden", r["loop"]) if r.get("mutant_found") else r["loop"] for r in rows)
    out["loop_pass@1_first_green_one_token_fix_kept"] = round(before / len(rows), 3) if rows else 0
    return out


def _names_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """#14's checks on this benchmark: plain chat answers the names check flags (and how many of those
    really fail), and the loop's candidates refused for names that do not exist, before any test run."""
    flagged = [r for r in rows if r.get("plain_flagged")]
    return {
        "plain_answers_flagged": len(flagged),
        "plain_answers_flagged_that_fail_hidden": sum(not r["plain"] for r in flagged),
        "candidates_refused_for_names": sum(r.get("names_refused", 0) for r in rows),
        "problems_with_a_candidate_refused_for_names": sum(r.get("names_refused", 0) > 0 for r in rows),
    }


def _changed_units(before: str, after: str, path: str) -> list[str]:
    old = {u.name: u for u in units_of(before, path)}
    new = {u.name: u for u in units_of(after, path)}
    b, a = before.splitlines(), after.splitlines()
    changed = []
    for name in sorted(set(old) | set(new)):
        if "." in name and name.split(".")[0] in old and name.split(".")[0] in new:
            pass  # methods are compared themselves; their class is compared below only through them
        o, n = old.get(name), new.get(name)
        if (
            o is None
            or n is None
            or (b[o.start - 1 : o.end] != a[n.start - 1 : n.end] and not any(m.startswith(name + ".") for m in old))
        ):
            changed.append(name)
    return changed


async def bench_faults(sampler: Sampler, args: argparse.Namespace, out: list[dict[str, Any]]) -> dict[str, Any]:
    options = _options(args)
    cache = Path(tempfile.mkdtemp(prefix="codespark-faults-"))
    bugs = faults.seed_bugs(faults.FaultChecker(cache / "check"), args.bugs, seed=args.seed)
    folder = cache / "detect"
    faults.write_project(bugs[0], folder)
    command = detect(folder, PYTEST)
    print(f"{len(bugs)} bugs seeded", file=sys.stderr, flush=True)
    done_ids = _resume(args, out, "bug")
    for i, bug in enumerate(bugs, 1):
        if bug.bug_id in done_ids:
            continue
        started = time.perf_counter()
        folder = cache / "bugs" / bug.bug_id.replace(":", "_")
        faults.write_project(bug, folder)
        result = await run_loop(folder, command, sampler, options, cache / "runs")
        fixed_text = result["files"].get(bug.file, bug.faulty)
        edited_tests = [p for p in result.get("changed", []) if p != bug.file]
        units = _changed_units(bug.faulty, fixed_text, bug.file)
        row = {"bug": bug.bug_id, "kind": bug.kind, "status": result["status"], "rounds": result["rounds"],
               "candidates": result["candidates"], "fixed_by": result["fixed_by"],
               "mutants_tried": result["mutants_tried"], "names_refused": result["names_refused"],
               "mutant_found": result["mutant_found"], "mutant_trusted": result["mutant_trusted"],
               "tests_edited": edited_tests, "changed_units": units,
               "only_faulty_function": units == [bug.function], "restored_original": fixed_text == bug.original,
               "timeouts": result["timeouts"], "endless": result["endless_tests"],
               "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        out.append(row)
        _checkpoint(args, row)
        fixed = sum(r["status"] == "fixed" for r in out)
        print(f"[{i}/{len(bugs)}] {bug.bug_id}: {row['status']} ({row['seconds']} s) | fixed {fixed}/{len(out)}",
              file=sys.stderr, flush=True)  # fmt: skip
    return summarize_faults(out)


def summarize_faults(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fixed = [r for r in rows if r["status"] == "fixed"]
    by_kind: dict[str, list[int]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r["status"] == "fixed")
    return {
        "bugs": len(rows),
        "fixed": len(fixed),
        "fixed_share": round(len(fixed) / len(rows), 3) if rows else 0,
        "tests_edited": sum(bool(r["tests_edited"]) for r in rows),
        "only_faulty_function_share_of_fixes": round(sum(r["only_faulty_function"] for r in fixed) / len(fixed), 3)
        if fixed
        else 0,
        "restored_original_exactly": sum(r["restored_original"] for r in fixed),
        "fixed_by_single_token_repair": sum(r.get("fixed_by") == "mutation" for r in fixed),
        "fixed_by_the_model": sum(r.get("fixed_by") == "model" for r in fixed),
        "by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_kind.items())},
        "seconds_per_bug_median": round(statistics.median(r["seconds"] for r in rows), 1) if rows else 0,
        "timeouts": sum(r["timeouts"] for r in rows),
        "endless_tests_stopped": sum(r["endless"] for r in rows),
        "candidates_refused_for_names": sum(r.get("names_refused", 0) for r in rows),
        "one_token_fixes_found": sum(bool(r.get("mutant_found")) for r in rows),
        "one_token_fixes_trusted": sum(bool(r.get("mutant_trusted")) for r in rows),
    }


def _resume(args: argparse.Namespace, out: list[dict[str, Any]], key: str) -> set[str]:
    """With ``--resume``, the rows an earlier run of the same command checkpointed count as done."""
    rows_file = args.json.with_suffix(".rows.jsonl") if args.json is not None else None
    if not args.resume or rows_file is None or not rows_file.exists():
        if rows_file is not None and rows_file.exists():
            rows_file.unlink()  # a fresh run starts a fresh checkpoint
        return set()
    rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    out.extend(rows)
    print(f"resuming: {len(rows)} rows from {rows_file}", file=sys.stderr, flush=True)
    return {row[key] for row in rows}


def _checkpoint(args: argparse.Namespace, row: dict[str, Any]) -> None:
    """Each finished row at once, beside the final JSON: a long run stopped early keeps its results."""
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with args.json.with_suffix(".rows.jsonl").open("a") as out:
            out.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("humaneval", "faults"), required=True)
    parser.add_argument("--limit", type=int, default=None, help="HumanEval: the first N problems.")
    parser.add_argument("--bugs", type=int, default=100, help="Faults: how many bugs to seed.")
    parser.add_argument("--tasks", nargs="+", default=None, help="HumanEval: only these task ids (HumanEval/90).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutants", type=int, default=80,
                        help="Single-token repairs tried before the model (0: the model only).")  # fmt: skip
    parser.add_argument("--trust", type=float, default=FixOptions.trust,
                        help="Share of a one-token fix's neighbours the tests must reject for it to end the search "
                             "(0: the first green one-token fix ends it).")  # fmt: skip
    parser.add_argument("--engine", default="codex", choices=("codex", "spark"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--resume", action="store_true",
                        help="Keep the rows already checkpointed beside --json and run only the rest.")  # fmt: skip
    args = parser.parse_args()
    settings = load_settings()
    engines = load_engines(settings, only=(args.engine,))
    state = AppState.build(settings, engines)
    sampler = state.fix.samplers(args.engine)[0][0]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        if args.part == "humaneval":
            summary = asyncio.run(bench_humaneval(sampler, args, rows))
        else:
            summary = asyncio.run(bench_faults(sampler, args, rows))
    except KeyboardInterrupt:
        summary = summarize_humaneval(rows) if args.part == "humaneval" else summarize_faults(rows)
        summary["interrupted"] = True
    finally:
        engines.close()
    report = {"part": args.part, "cpu": cpu_name(), "engine": args.engine, "rounds": args.rounds,
              "candidates": args.candidates, "mutants": args.mutants,
              "trust": args.trust,
              "wall_s": round(time.perf_counter() - started), "summary": summary, "rows": rows}  # fmt: skip
    print(json.dumps(report["summary"], indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
