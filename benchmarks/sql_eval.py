"""Execution accuracy of the SQL assistant on our dev set (benchmarks/sql_dev), per engine.

``--set foreign`` runs the second set instead (benchmarks/sql_foreign): schemas whose naming is not
ours (Chinook's CamelCase, Spider's abbreviations and ``Ref_`` prefixes).  ``--variants`` compares
name handling in one run: ``off`` (neither), ``monitor`` (the schema monitor masks nonexistent
names while decoding), ``names`` (deterministic name repair only), ``full`` (both, the default).

Each question runs once per engine and schema rendering, greedy, with validation and up to two
repair rounds.  Since decoding is greedy, round 1 is exactly what the assistant would produce
without validation, so each run gives both numbers:

- **no validation**: round 1's SQL executed as it is (a failure counts as wrong);
- **validation + repair**: the assistant's final answer (nothing runs that failed validation).

A prediction is right when its result equals the gold result: rows compared as a multiset
(in order when the gold query orders its output), numbers rounded to 2 places, and columns matched
by their values, so column order does not matter and extra columns are allowed.  "Hallucinated
identifiers" are round-1 queries that the database itself rejects for a missing table or column;
"caught" counts those the validator stopped before anything ran.

    python benchmarks/sql_eval.py --engines codex spark --json bench-out/sql_eval.json
    python benchmarks/sql_eval.py --set foreign --variants off full --json bench-out/sql_foreign.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.sql_dev import build as dev_build
from benchmarks.sql_foreign import build as foreign_build
from codespark.config import load_settings
from codespark.engine.loader import load_engines
from codespark.errors import DatabaseError
from codespark.sql.assistant import Options, SqlAssistant
from codespark.sql.database import Database
from codespark.sql.schema import introspect

HERE = Path(__file__).resolve().parent
SETS = {"dev": (HERE / "sql_dev" / "questions.json", dev_build.build_sqlite),
        "foreign": (HERE / "sql_foreign" / "questions.json", foreign_build.build_sqlite)}  # fmt: skip
VARIANTS = {"off": (False, False), "monitor": (True, False), "names": (False, True), "full": (True, True)}
_MISSING = re.compile(r"no such (column|table)|does not exist|not found", re.I)


def _norm(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 2)
    try:
        return round(float(str(value)), 2)
    except ValueError:
        return str(value)


def _column_key(values: list[Any], ordered: bool) -> tuple[Any, ...]:
    return tuple(values) if ordered else tuple(sorted(values, key=repr))


def same_result(gold: list[tuple[Any, ...]], pred: list[tuple[Any, ...]], ordered: bool) -> bool:
    """Whether ``pred`` holds ``gold``'s rows: every gold column matched by a distinct predicted one."""
    if len(gold) != len(pred):
        return False
    if not gold:
        return True
    g_rows = [[_norm(v) for v in row] for row in gold]
    p_rows = [[_norm(v) for v in row] for row in pred]
    g_cols = [[r[i] for r in g_rows] for i in range(len(g_rows[0]))]
    p_cols = [[r[i] for r in p_rows] for i in range(len(p_rows[0]))]
    used: set[int] = set()
    mapping: list[int] = []
    for gc in g_cols:
        key = _column_key(gc, False)
        match = next((j for j, pc in enumerate(p_cols) if j not in used and _column_key(pc, False) == key), None)
        if match is None:
            return False
        used.add(match)
        mapping.append(match)
    projected = [tuple(r[j] for j in mapping) for r in p_rows]
    expected = [tuple(r) for r in g_rows]
    if ordered:
        return projected == expected
    return Counter(projected) == Counter(expected)


def evaluate(
    engine_name: str, style: str, variant: str, questions: list[dict[str, Any]], dbs: dict[str, Path]
) -> dict[str, Any]:
    engines = load_engines(load_settings(), only=(engine_name,))
    engine = engines.routes[engine_name]
    monitor, fix_names = VARIANTS[variant]
    assistants = {}
    for name, path in dbs.items():
        db = Database(f"sqlite:///{path}")
        assistants[name] = SqlAssistant(engine, db, introspect(db))
    rows = []
    loop = asyncio.new_event_loop()  # one loop for the whole run: the engine's lock belongs to it
    try:
        for i, item in enumerate(questions):
            assistant = assistants[item["db"]]
            db = assistant.db
            gold = db.run(item["gold"], 10_000).rows
            ordered = item.get("ordered", "ORDER BY" in item["gold"].upper() and "LIMIT 1" not in item["gold"].upper())
            options = Options(max_rows=10_000, style=style, monitor=monitor, fix_names=fix_names)
            answer = loop.run_until_complete(assistant.ask(item["q"], options))
            first_sql = answer.trail[0].sql if answer.trail else ""
            try:
                first_rows = db.run(first_sql, 10_000).rows
                first_error = ""
            except DatabaseError as exc:
                first_rows, first_error = None, exc.message
            hallucinated = bool(_MISSING.search(first_error))
            caught = hallucinated and any(s.check == "identifiers" and not s.ok for s in answer.trail[0].steps)
            final_ok = answer.valid and answer.rows is not None and same_result(gold, answer.rows.rows, ordered)
            last = answer.trail[-1] if answer.trail else None
            invalid_name = last is not None and (bool(last.unknown) or bool(_MISSING.search(answer.error or "")))
            row = {
                "db": item["db"],
                "question": item["q"],
                "first_sql": first_sql,
                "final_sql": answer.sql,
                "no_validation_correct": first_rows is not None and same_result(gold, first_rows, ordered),
                "repair_correct": final_ok,
                "rounds": answer.rounds,
                "hallucinated_first": hallucinated,
                "caught_first": caught,
                "validator_flagged_first": bool(answer.trail and answer.trail[0].unknown),
                "total_ms": answer.total_ms,
                "error": answer.error,
                "invalid_final": not answer.valid,
                "invalid_final_name": invalid_name and not final_ok,
                "names_fixed": [s.detail for v in answer.trail for s in v.steps if s.check == "names"],
                "masked_steps": answer.masked_steps,
            }
            rows.append(row)
            mark = "ok " if final_ok else "BAD"
            where = f"{engine_name}/{variant} {i + 1}/{len(questions)}"
            print(f"[{where}] {mark} {answer.total_ms:6.0f} ms  {item['q'][:70]}")
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        engines.close()
    n = len(rows)
    n_hallucinated = sum(r["hallucinated_first"] for r in rows)
    return {
        "engine": engine_name,
        "style": style,
        "variant": variant,
        "questions": n,
        "no_validation_accuracy": sum(r["no_validation_correct"] for r in rows) / n,
        "repair_accuracy": sum(r["repair_correct"] for r in rows) / n,
        "median_ms": statistics.median(r["total_ms"] for r in rows),
        "p90_ms": sorted(r["total_ms"] for r in rows)[int(n * 0.9)],
        "repaired_questions": sum(r["rounds"] > 1 for r in rows),
        "hallucinated_first_round": n_hallucinated,
        "hallucinated_caught": sum(r["caught_first"] for r in rows),
        "invalid_after_repair": sum(r["invalid_final"] for r in rows),
        "invalid_after_repair_name": sum(r["invalid_final_name"] for r in rows),
        "mean_rounds": statistics.mean(r["rounds"] for r in rows),
        "masked_steps_per_answer": statistics.mean(r["masked_steps"] for r in rows),
        "names_fixed": sum(bool(r["names_fixed"]) for r in rows),
        "by_db": {
            db: {
                "no_validation": sum(r["no_validation_correct"] for r in rows if r["db"] == db),
                "repair": sum(r["repair_correct"] for r in rows if r["db"] == db),
                "n": sum(r["db"] == db for r in rows),
            }
            for db in dbs
        },
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=["codex", "spark"])
    parser.add_argument("--styles", nargs="+", default=["ddl"], help="schema renderings: ddl, compact")
    parser.add_argument("--set", choices=sorted(SETS), default="dev", help="dev: ours; foreign: others' naming")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["full"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    path, build_sqlite = SETS[args.set]
    questions = json.loads(path.read_text())
    if args.limit:
        questions = questions[: args.limit]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        dbs = {name: build_sqlite(name, Path(tmp) / f"{name}.db") for name in sorted({q["db"] for q in questions})}
        for engine in args.engines:
            for style in args.styles:
                for variant in args.variants:
                    results.append(evaluate(engine, style, variant, questions, dbs))
                    if args.json:
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nset: {args.set} ({len(questions)} questions)")
    print("| engine | schema | names | round 1 | validation + repair | invalid after repair (names) | mean rounds "
          "| masked steps | names fixed | median s | p90 s | hallucinated caught |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['engine']} | {r['style']} | {r['variant']} | {r['no_validation_accuracy']:.3f} | "
            f"{r['repair_accuracy']:.3f} | {r['invalid_after_repair']} ({r['invalid_after_repair_name']}) | "
            f"{r['mean_rounds']:.2f} | {r['masked_steps_per_answer']:.1f} | {r['names_fixed']} | "
            f"{r['median_ms'] / 1000:.1f} | {r['p90_ms'] / 1000:.1f} | "
            f"{r['hallucinated_caught']}/{r['hallucinated_first_round']} |"
        )


if __name__ == "__main__":
    main()
