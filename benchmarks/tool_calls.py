"""Tool-call arguments, measured (``make bench-tools``): how often the arguments a local model writes are valid
JSON that fits the function's schema, with the grammar constraint and without it.

Eight functions (enums, integers with bounds, arrays, nested objects, patterns, optional fields) and five
requests each, written here.  Each request runs with ``tool_choice`` ``required`` and ``auto`` on the
codex engine (and spark with ``--engines``), once constrained (the server's behaviour) and once with
the grammar off (the plain template prompt).  A call counts as valid when the model called the expected
function and its arguments parse and validate against the schema (``jsonschema``).

    python benchmarks/tool_calls.py --engines codex spark --json bench-out/tool_calls.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import jsonschema

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name
from codespark.config import load_settings
from codespark.engine import chat
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Finished
from codespark.engine.loader import load_engines
from codespark.engine.tools import parse_tools
from codespark.services.chat import ChatCall
from codespark.services.state import AppState


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


TOOLS = [
    _fn("get_weather", "Current weather for a city.",
        {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        ["city", "unit"]),
    _fn("search_code", "Search the repository for code.",
        {"query": {"type": "string"}, "max_results": {"type": "integer", "minimum": 1, "maximum": 50},
         "file_glob": {"type": "string"}}, ["query", "max_results"]),
    _fn("create_issue", "Open an issue in the tracker.",
        {"title": {"type": "string"}, "body": {"type": "string"},
         "labels": {"type": "array", "items": {"type": "string", "enum": ["bug", "feature", "docs", "security"]}},
         "priority": {"type": "integer", "minimum": 1, "maximum": 5}}, ["title", "labels", "priority"]),
    _fn("run_sql", "Run a read-only SQL query.",
        {"query": {"type": "string"}, "database": {"type": "string", "enum": ["shop", "analytics"]},
         "limit": {"type": "integer", "minimum": 1}}, ["query", "database"]),
    _fn("send_email", "Send an email.",
        {"to": {"type": "array", "items": {"type": "string"}, "minItems": 1}, "subject": {"type": "string"},
         "body": {"type": "string"}, "cc": {"type": "array", "items": {"type": "string"}}},
        ["to", "subject", "body"]),
    _fn("schedule_meeting", "Put a meeting in the calendar.",
        {"title": {"type": "string"}, "date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
         "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 480},
         "attendees": {"type": "array", "items": {"type": "object", "properties": {
             "name": {"type": "string"}, "email": {"type": "string"}}, "required": ["name", "email"],
             "additionalProperties": False}}}, ["title", "date", "duration_minutes", "attendees"]),
    _fn("convert_currency", "Convert an amount between currencies.",
        {"amount": {"type": "number"}, "source": {"type": "string", "pattern": "^[A-Z]{3}$"},
         "target": {"type": "string", "pattern": "^[A-Z]{3}$"}}, ["amount", "source", "target"]),
    _fn("read_file", "Read lines of a file in the workspace.",
        {"path": {"type": "string"}, "start_line": {"type": "integer", "minimum": 1},
         "end_line": {"type": "integer", "minimum": 1}}, ["path", "start_line", "end_line"]),
]  # fmt: skip

REQUESTS = {
    "get_weather": ["What's the weather in Paris in celsius?", "Is it hot in Phoenix right now? Use fahrenheit.",
                    "Tell me the temperature in Tokyo, metric please.", "Weather for Oslo, celsius.",
                    "How warm is it in Miami? I think in fahrenheit."],
    "search_code": ["Find where parse_config is defined, show me at most 5 results.",
                    "Search for TODO comments in Python files, up to 20 hits.",
                    "Look for uses of the retry decorator, 10 results max.",
                    "Where do we open database connections? Give me 3 matches.",
                    "Search the code for 'class Router' in *.py, just one result."],
    "create_issue": ["File a bug: the login page crashes on empty passwords. It's urgent, priority 1.",
                     "Open a feature request for dark mode with priority 4.",
                     "Create a docs issue titled 'Document the fix loop', priority 3.",
                     "Report a security bug: API keys show up in logs. Priority 1, labels bug and security.",
                     "Make an issue to add CSV export, it's a feature, priority 2."],
    "run_sql": ["How many orders are in the shop database?", "In analytics, count the sessions from yesterday.",
                "List the 10 most expensive products in the shop database.",
                "Show the top 5 pages by views from the analytics database.",
                "What is the average order total in shop? Limit to 1 row."],
    "send_email": ["Email alice@example.com that the release is delayed to Friday.",
                   "Send bob@example.com and carol@example.com the subject 'Standup' saying it moves to 10am.",
                   "Write to team@example.com, cc boss@example.com: the build is green again.",
                   "Tell dave@example.com by email that his PR was merged.",
                   "Mail ops@example.com with subject 'Disk full' and ask them to clean /var/log."],
    "schedule_meeting": ["Book a 30 minute sync with Ann (ann@example.com) on 2026-12-03.",
                         "Schedule 'Design review' on 2026-12-10 for 90 minutes with Bo (bo@example.com) and "
                         "Cy (cy@example.com).",
                         "Set up a one-hour retro on 2027-01-05 with Dee, dee@example.com.",
                         "Put a 15 minute call with Eve <eve@example.com> on 2026-12-24 in my calendar.",
                         "Plan a 2 hour planning session on 2026-12-15 with Fay (fay@example.com)."],
    "convert_currency": ["Convert 100 US dollars to euros.", "How many yen is 250 GBP?",
                         "Change 19.99 EUR into Swiss francs.", "What is 1000 CAD in USD?",
                         "Convert 42.5 AUD to NZD."],
    "read_file": ["Show me lines 10 to 40 of src/codespark/router.py.", "Read README.md from line 1 to 20.",
                  "Open Makefile lines 60-70.", "Print lines 100 through 150 of tests/test_fix.py.",
                  "Read setup.cfg, lines 5 to 9."],
}  # fmt: skip


def check(call_name: str | None, arguments: str | None, expected: str, schemas: dict[str, Any]) -> dict[str, bool]:
    called = call_name is not None
    right = call_name == expected
    try:
        value = json.loads(arguments or "")
        parses = True
    except json.JSONDecodeError:
        value, parses = None, False
    valid = False
    if parses and call_name in schemas:
        try:
            jsonschema.validate(value, schemas[call_name])
            valid = True
        except jsonschema.ValidationError:
            valid = False
    return {"called": called, "right_function": right, "parses": parses, "valid": valid and right}


async def one(state: AppState, engine: str, text: str, choice: str, constrained: bool) -> dict[str, Any]:
    tools = parse_tools(TOOLS)
    call = ChatCall(
        messages=[chat.Message("user", text)],
        params=SamplingParams(max_tokens=0, temperature=0.0),
        max_tokens=200,
        model=engine,
        tools=tools,
        tool_choice=choice,
        constrained=constrained,
    )
    started = time.perf_counter()
    _, events = await state.chat.chat(call)
    result: Finished | None = None
    async with aclosing(events) as stream:
        async for item in stream:
            if isinstance(item, Finished):
                result = item
    assert result is not None
    first = result.tool_calls[0] if result.tool_calls else None
    return {"seconds": round(time.perf_counter() - started, 2), "name": first.name if first else None,
            "arguments": first.arguments if first else None, "content": result.text[:200]}  # fmt: skip


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted({(r["engine"], r["choice"], r["constrained"]) for r in rows}):
        group = [r for r in rows if (r["engine"], r["choice"], r["constrained"]) == key]
        n = len(group)
        out[f"{key[0]} {key[1]} {'constrained' if key[2] else 'unconstrained'}"] = {
            "requests": n,
            **{m: round(sum(r[m] for r in group) / n, 3) for m in ("called", "right_function", "parses", "valid")},
            "valid_of_calls": round(sum(r["valid"] for r in group) / max(1, sum(r["called"] for r in group)), 3),
            "seconds_median": round(statistics.median(r["seconds"] for r in group), 2),
        }
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings()
    engines = load_engines(settings, only=tuple(args.engines))
    state = AppState.build(settings, engines)
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    rows: list[dict[str, Any]] = []
    try:
        for engine in args.engines:
            for expected, texts in REQUESTS.items():
                for text in texts[: args.per_tool]:
                    for choice in args.choices:
                        for constrained in (True, False):
                            got = await one(state, engine, text, choice, constrained)
                            row = {"engine": engine, "expected": expected, "request": text, "choice": choice,
                                   "constrained": constrained, **got,
                                   **check(got["name"], got["arguments"], expected, schemas)}  # fmt: skip
                            rows.append(row)
                            print(f"{engine} {choice:8} {'C' if constrained else 'U'} {expected:17} "
                                  f"called={row['called']!s:5} valid={row['valid']!s:5} {got['seconds']} s",
                                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        engines.close()
    return {"cpu": cpu_name(), "summary": summarize(rows), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=["codex"], choices=("codex", "spark"))
    parser.add_argument("--choices", nargs="+", default=["required", "auto"], choices=("required", "auto"))
    parser.add_argument("--per-tool", type=int, default=5, help="Requests per function (at most 5).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(json.dumps(report["summary"], indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
