"""Cross-file completion: does repo context make the model call other modules' code right?

**Task set.** Real code nobody here wrote: installed packages (``click``, ``rich``, ``httpx``,
``sqlalchemy`` by default) are multi-module repos.  A line qualifies when it calls or instantiates a
name that the file imports from another module of the same package (``Name(``), as resolved through
the index.  The line is cut just after that call's ``(``, where an editor asks "what goes here?";
the model completes the rest of the line (single-line FIM): the arguments, which it can only get
right if it knows the definition.  ``--cut callee`` cuts before the called name instead, so the
model must also know which name to call; ``--cut kwarg`` cuts before the call's first keyword
argument, whose name only the definition gives; ``--cut member`` cuts just after ``obj.`` where Jedi
resolves the member to a definition in another module.  Lines are sampled with a fixed seed, round-robin over
packages.

**Conditions**, same prompt window (``--prefix-lines`` before, ``--suffix-lines`` after):
``none`` (no context), ``similar`` (BM25 snippets of other files only), ``full`` (definitions of
the names near the cursor resolved across files, then similar snippets), each packed into
``--context-tokens`` in Qwen's repo-level layout.

``mgd`` is ``none``'s prompt decoded under the Python monitor (context/monitor.py: Jedi's members at
``obj.``, imports), which sees the whole file above the cut as an editor's buffer.  Under a monitor the
prompt holds a final ``.`` back (token healing: the model writes ``.name`` as one token); ``heal`` is
that healing alone, with a monitor that never constrains, to tell the two apart.

**Scores.** Exact match of the first generated line with the rest of the real line (whitespace
stripped), and edit similarity (difflib ratio); on member tasks also the rate of completions whose first
member is not a member of the receiver (``invented``), and the masked steps per completion.
``--latency`` instead measures indexing and
retrieval speed on a large directory.

    python benchmarks/crossfile.py --tasks 200 --engine spark --json bench-out/crossfile.json
    python benchmarks/crossfile.py --latency --latency-root .venv/lib/python3.11/site-packages
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import random
import re
import statistics
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codespark.config import load_settings
from codespark.context.index import module_name
from codespark.context.monitor import PythonMonitor, lookup
from codespark.context.parse import parse
from codespark.context.retrieve import _bindings, merge_by_path
from codespark.context.service import RepoContext
from codespark.engine.backend import SamplingParams
from codespark.engine.fim import ExtraFile, FimRequest
from codespark.engine.loader import load_engines
from codespark.engine.mask import Monitor, Names
from codespark.services.fim import one_shot

SITE = Path(sysconfig.get_paths()["purelib"])
CONDITIONS = ("none", "similar", "full")
# ``layout``: no context, but the repo-level prompt form (file name, <|file_sep|>) the other two use:
# separates what the context adds from what the form costs.
# ``sig-inline``: only the called name's signature, as a comment just above the cursor line (plain PSM).
ALL_CONDITIONS = (*CONDITIONS, "layout", "full-comment", "similar-comment", "sig-inline", "mgd", "heal")


@dataclass
class Task:
    package: str
    path: str
    line: int
    prefix: str
    suffix: str
    target: str
    callee: str
    before: str = ""  # the whole file above the cut (what the monitor sees)
    after: str = ""


def find_tasks(
    package: str, ctx: RepoContext, prefix_lines: int, suffix_lines: int, cut_at: str = "args"
) -> list[Task]:
    """Every qualifying line of ``package``: a call of a name imported from another of its modules.

    ``cut_at``: "args" cuts after the call's ``(``, "callee" before the called name, "kwarg" before
    the call's first keyword argument (lines without one are left out).
    """
    tasks: list[Task] = []
    files = [row[0] for row in ctx.index.conn.execute("SELECT path FROM files WHERE language = 'python'")]
    if cut_at == "member":
        return member_tasks(package, ctx, sorted(files), prefix_lines, suffix_lines)
    for path in sorted(files):
        text = (ctx.root / path).read_text(errors="replace")
        imports = parse(text.encode(), "python").imports
        bound = _bindings(imports, module_name(path), path.endswith("__init__.py"))
        cross: set[str] = set()
        for local, target in bound.items():
            if "." in local:
                continue
            found = ctx.retriever._resolve(target, None) if target[1] is not None else None
            if found is not None and found[0] != path:
                cross.add(local)
        if not cross:
            continue
        pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(cross))) + r")\s*\(")
        lines = text.splitlines()
        last_import = max((i for i, ln in enumerate(lines) if re.match(r"\s*(from|import)\s", ln)), default=0)
        for i in range(last_import + 1, len(lines)):
            line = lines[i]
            match = pattern.search(line)
            if match is None or line.lstrip().startswith(("#", "def ", "class ", "@")):
                continue
            if not 4 <= len(line[match.end() :].rstrip()) <= 100 or line[match.end() :].startswith(")"):
                continue
            if cut_at == "args":
                cut: int | None = match.end()
            elif cut_at == "callee":
                cut = match.start(1)
            else:
                cut = _first_keyword(line, match.end())
            if cut is None:
                continue
            target = line[cut:].rstrip()
            before = "\n".join(lines[max(0, i - prefix_lines) : i])
            prefix = (before + "\n" if before else "") + line[:cut]
            suffix = "\n" + "\n".join(lines[i + 1 : i + 1 + suffix_lines])
            whole_before = "\n".join(lines[:i]) + "\n" + line[:cut]
            tasks.append(Task(package, path, i + 1, prefix, suffix, target, match.group(1), whole_before,
                              "\n".join(lines[i + 1 :])))  # fmt: skip
    return tasks


_ACCESS = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.([A-Za-z_]\w*)")
MEMBER_TASKS_PER_FILE = 8


def member_tasks(package: str, ctx: RepoContext, files: list[str], prefix_lines: int, suffix_lines: int) -> list[Task]:
    """Lines with ``obj.member`` where Jedi resolves the member to a definition in another module.

    At most ``MEMBER_TASKS_PER_FILE`` per file (in line order), so one big module does not dominate.
    """
    import jedi

    tasks: list[Task] = []
    project = jedi.Project(str(ctx.root))
    for path in files:
        full = ctx.root / path
        text = full.read_text(errors="replace")
        lines = text.splitlines()
        script = jedi.Script(text, path=str(full), project=project)
        last_import = max((i for i, ln in enumerate(lines) if re.match(r"\s*(from|import)\s", ln)), default=0)
        found = 0
        for i in range(last_import + 1, len(lines)):
            line = lines[i]
            if line.lstrip().startswith(("#", "def ", "class ", "@", "import ", "from ")):
                continue
            for match in _ACCESS.finditer(line):
                target = line[match.start(2) :].rstrip()
                if not 3 <= len(target) <= 100 or '"' in line[: match.start(2)].split("#")[0][-1:]:
                    continue
                try:
                    definitions = script.goto(i + 1, match.start(2), follow_imports=True)
                except Exception:
                    continue
                where = {str(d.module_path) for d in definitions if d.module_path is not None}
                if not where or str(full) in where or not all(w.startswith(str(ctx.root)) for w in where):
                    continue
                before_lines = "\n".join(lines[max(0, i - prefix_lines) : i])
                cut = match.start(2)
                prefix = (before_lines + "\n" if before_lines else "") + line[:cut]
                suffix = "\n" + "\n".join(lines[i + 1 : i + 1 + suffix_lines])
                whole_before = "\n".join(lines[:i]) + "\n" + line[:cut]
                whole_after = "\n".join(lines[i + 1 :])
                tasks.append(Task(package, path, i + 1, prefix, suffix, target, match.group(2), whole_before,
                                  whole_after))  # fmt: skip
                found += 1
                break
            if found >= MEMBER_TASKS_PER_FILE:
                break
    return tasks


def _first_keyword(line: str, start: int) -> int | None:
    """Where the first ``name=`` argument of the call opened just before ``start`` begins, if any."""
    depth = 0
    for m in re.finditer(r"[()\[\]{}]|\b[A-Za-z_]\w*=(?!=)", line[start:]):
        token = m.group()
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0:
            return start + m.start()
    return None


def comment_context(files: list[tuple[str, str]]) -> str:
    """Context as comment lines at the top of the prefix, in plain PSM (no repo-level tokens)."""
    lines = []
    for path, text in files:
        lines.append(f"# Path: {path}")
        lines += [f"# {line}" if line else "#" for line in text.splitlines()]
    return "\n".join(lines) + "\n" if lines else ""


def callee_signature(ctx: RepoContext, task: Task) -> str | None:
    """The called name's signature (a class's with its ``__init__``), resolved through the file's imports."""
    text = (ctx.root / task.path).read_text(errors="replace")
    bound = _bindings(parse(text.encode(), "python").imports, module_name(task.path), task.path.endswith("__init__.py"))
    target = bound.get(task.callee)
    found = ctx.retriever._resolve(target, None, brief=True) if target and target[1] else None
    return found[1] if found else None


def above_cursor(prefix: str, note: str | None) -> str:
    """``prefix`` with ``note`` as comment lines just above the cursor line, at its indentation."""
    if not note:
        return prefix
    head, _, line = prefix.rpartition("\n")
    indent = line[: len(line) - len(line.lstrip())]
    comment = "".join(f"{indent}# {part.strip()}\n" for part in note.splitlines() if part.strip())
    return (head + "\n" if head else "") + comment + line


def edit_similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(tempfile.mkdtemp(prefix="codespark-crossfile-"))
    contexts: dict[str, RepoContext] = {}
    pools: dict[str, list[Task]] = {}
    reuse = args.tasks_file is not None and args.tasks_file.is_file()
    for package in args.packages:
        ctx = RepoContext(SITE / package, cache)
        report = ctx.refresh()
        contexts[package] = ctx
        found = [] if reuse else find_tasks(package, ctx, args.prefix_lines, args.suffix_lines, args.cut)
        random.Random(f"{package}:{args.seed}").shuffle(found)
        pools[package] = found
        print(f"{package}: {report.files} files, {len(found)} qualifying lines")
    chosen: list[Task] = []
    if reuse:
        chosen = [Task(**t) for t in json.loads(args.tasks_file.read_text())]
    while len(chosen) < args.tasks and any(pools.values()):  # round-robin: as even as the packages allow
        for package in args.packages:
            if pools[package] and len(chosen) < args.tasks:
                chosen.append(pools[package].pop(0))
    chosen.sort(key=lambda t: (args.packages.index(t.package), t.path, t.line))
    if args.tasks_file and not args.tasks_file.is_file():
        args.tasks_file.parent.mkdir(parents=True, exist_ok=True)
        args.tasks_file.write_text(json.dumps([asdict(t) for t in chosen]))
    engines = load_engines(load_settings(), only=(args.engine,))
    engine = engines.routes[args.engine]
    loop = asyncio.new_event_loop()
    results: list[dict[str, Any]] = []
    try:
        for n, task in enumerate(chosen, start=1):
            row: dict[str, Any] = {**asdict(task), "prefix": None, "suffix": None}
            ctx = contexts[task.package]
            for condition in args.conditions:
                mode, _, layout = condition.partition("-")
                pieces = (
                    []
                    if mode in ("none", "layout", "sig")
                    else ctx.for_completion(
                        str(ctx.root / task.path), task.prefix, task.suffix, args.context_tokens, None, mode
                    )
                )
                monitor: Monitor | None = None
                if condition == "heal":
                    monitor, req = _Silent(), FimRequest(task.prefix, task.suffix)
                elif condition == "mgd":
                    monitor = PythonMonitor(task.before, task.after, ctx.root / task.path, ctx.root, args.mgd_budget_ms)
                    req = FimRequest(task.prefix, task.suffix)
                elif condition == "sig-inline":
                    req = FimRequest(above_cursor(task.prefix, callee_signature(ctx, task)), task.suffix)
                elif layout == "comment":
                    req = FimRequest(comment_context(merge_by_path(pieces)) + task.prefix, task.suffix)
                else:
                    extra = tuple(ExtraFile(p, t) for p, t in merge_by_path(pieces))
                    named = bool(extra) or condition == "layout"
                    req = FimRequest(task.prefix, task.suffix, extra, task.path if named else None)
                job = one_shot(engine, req, SamplingParams(max_tokens=48, temperature=0.0, monitor=monitor))
                started = time.perf_counter()
                finished = loop.run_until_complete(engine.run(job))
                text = finished.text
                first = text.split("\n", 1)[0].rstrip()
                row[condition] = {
                    "masked_steps": finished.timings.masked_steps,
                    "decode_ms_per_token": finished.timings.decode_ms / max(1, finished.timings.completion_tokens - 1),
                    "invented": _invented(task, first, ctx.root) if args.cut == "member" else None,
                    "late": isinstance(monitor, PythonMonitor) and monitor.late > 0,
                    "completion": first,
                    "exact": first.strip() == task.target.strip(),
                    "similarity": edit_similarity(first.strip(), task.target.strip()),
                    "snippets": [p.reason for p in pieces],
                    "definition_found": any(p.reason.startswith("definition of " + task.callee) for p in pieces),
                    "ms": (time.perf_counter() - started) * 1000,
                }
            results.append(row)
            marks = " ".join(f"{c}={'Y' if row[c]['exact'] else '.'}" for c in args.conditions)
            print(f"[{n}/{len(chosen)}] {marks}  {task.package}/{task.path}:{task.line}  {task.target[:60]}")
            if args.json and n % 10 == 0:
                _write(args.json, _summary(results, args), results)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        engines.close()
    summary = _summary(results, args)
    if args.json:
        _write(args.json, summary, results)
    return summary


class _Silent:
    """A monitor that never constrains (the ``heal`` condition: token healing without the mask)."""

    def names(self, text: str) -> Names | None:
        return None


def _invented(task: Task, completion: str, root: Path) -> bool:
    """Whether the completion's first member is not a member of the receiver (Jedi's members at the cut)."""
    word = re.match(r"[A-Za-z_]\w*", completion.strip())
    if word is None:
        return False
    members = lookup(task.before, task.after, str(root / task.path), str(root)).result()
    return members is not None and word.group(0) not in members


def _summary(results: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    n = len(results)
    out: dict[str, Any] = {"engine": args.engine, "tasks": n, "cut": args.cut, "context_tokens": args.context_tokens}
    for c in args.conditions:
        out[c] = {
            "exact_match": sum(r[c]["exact"] for r in results) / n if n else 0.0,
            "edit_similarity": statistics.mean(r[c]["similarity"] for r in results) if n else 0.0,
            "masked_steps": statistics.mean(r[c]["masked_steps"] for r in results) if n else 0.0,
            "decode_ms_per_token_median": statistics.median(r[c]["decode_ms_per_token"] for r in results) if n else 0.0,
            "ms_median": statistics.median(r[c]["ms"] for r in results) if n else 0.0,
        }
        if args.cut == "member":
            out[c]["invented_rate"] = sum(bool(r[c]["invented"]) for r in results) / n if n else 0.0
            out[c]["late_lookups"] = sum(bool(r[c].get("late")) for r in results)
    if "full" in args.conditions:
        out["definition_found_full"] = sum(r["full"]["definition_found"] for r in results) / n if n else 0.0
    out["by_package"] = {
        p: {c: sum(r[c]["exact"] for r in results if r["package"] == p) for c in args.conditions}
        | {"n": sum(r["package"] == p for r in results)}
        for p in args.packages
    }
    return out


def _write(path: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))


def latency(args: argparse.Namespace) -> dict[str, Any]:
    """Cold index, re-index, and retrieval p50/p95 on ``--latency-root``."""
    cache = Path(tempfile.mkdtemp(prefix="codespark-latency-"))
    ctx = RepoContext(args.latency_root, cache)
    cold = ctx.refresh()
    warm = ctx.refresh()
    files = [row[0] for row in ctx.index.conn.execute("SELECT path FROM files WHERE language = 'python'")]
    rng = random.Random(args.seed)
    ctx.retriever.similar("warm-up.py", "import os\n")  # builds the BM25 index once, as a server does at start
    timings = []
    for path in rng.sample(files, min(args.queries, len(files))):
        lines = (ctx.root / path).read_text(errors="replace").splitlines()
        cut = rng.randrange(len(lines)) if lines else 0
        prefix = "\n".join(lines[max(0, cut - args.prefix_lines) : cut])
        suffix = "\n".join(lines[cut : cut + args.suffix_lines])
        started = time.perf_counter()
        ctx.for_completion(str(ctx.root / path), prefix, suffix, args.context_tokens)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "root": str(args.latency_root),
        "files": cold.files,
        "cold_index_s": round(cold.seconds, 2),
        "reindex_unchanged_s": round(warm.seconds, 3),
        "skipped": cold.skipped,
        "with_errors": cold.with_errors,
        "queries": len(timings),
        "retrieval_p50_ms": round(timings[len(timings) // 2], 2),
        "retrieval_p95_ms": round(timings[int(len(timings) * 0.95)], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", nargs="+", default=["click", "rich", "httpx", "sqlalchemy"])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--engine", default="spark")
    parser.add_argument("--prefix-lines", type=int, default=20)
    parser.add_argument("--suffix-lines", type=int, default=6)
    parser.add_argument("--context-tokens", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cut", choices=("args", "callee", "kwarg", "member"), default="args",
                        help="where the line is cut")  # fmt: skip
    parser.add_argument("--tasks-file", type=Path, default=None, help="reuse the chosen tasks (written on first use)")
    parser.add_argument("--mgd-budget-ms", type=float, default=30.0, help="how long a step waits for Jedi")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=ALL_CONDITIONS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--latency", action="store_true", help="measure indexing and retrieval speed instead")
    parser.add_argument("--latency-root", type=Path, default=SITE)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    if args.latency:
        result = latency(args)
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
        return
    summary = evaluate(args)
    print(json.dumps({k: v for k, v in summary.items() if k != "by_package"}, indent=2))
    print(json.dumps(summary["by_package"], indent=2))


if __name__ == "__main__":
    main()
