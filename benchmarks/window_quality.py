"""What a short window costs in answers: the first keystroke's completion from N tokens around the cursor.

A cold keystroke (``COLD_WINDOW_TOKENS``) and a far cursor jump cut to the client's budget
(``JUMP_MIN_NEW_TOKENS``) answer from a window much shorter than the editor's 128 prefix and 32 suffix
lines.  This measures what that costs: for code lines of stdlib modules nobody here wrote (not the
jump replay's files), the user has typed the line's first 3 characters; the engine completes it from
the whole window and from windows fitted to each size (``engine.fim.fit``: the lines nearest the cursor
stay).  Reported per size: the share of first lines completed exactly, and their edit similarity.

    python benchmarks/window_quality.py --lines 60 --sizes 64 128 256 0 --engine spark
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.crossfile import edit_similarity
from benchmarks.harness import cpu_name
from benchmarks.latency import N_PREFIX_LINES, N_SUFFIX_LINES, _typable, stdlib_file
from codespark.config import load_settings
from codespark.engine.backend import SamplingParams
from codespark.engine.fim import FimRequest, fit
from codespark.engine.loader import load_engines
from codespark.services.fim import one_shot

FILES = ("difflib.py", "argparse.py", "configparser.py", "pprint.py", "calendar.py", "gettext.py")
TYPED = 3


def tasks(count: int) -> list[tuple[str, int, FimRequest, str]]:
    """(file, line, the request with the whole window, the rest of the line), evenly spread over ``FILES``."""
    out = []
    per_file = -(-count // len(FILES))
    for name in FILES:
        lines = stdlib_file(name).read_text().splitlines(keepends=True)
        ok = [i for i in range(N_PREFIX_LINES, len(lines) - N_SUFFIX_LINES) if _typable(lines[i])]
        step = max(1, len(ok) // per_file)
        for i in ok[step // 2 :: step][:per_file]:
            text = lines[i].strip()
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            prefix = "".join(lines[i - N_PREFIX_LINES : i]) + indent + text[:TYPED]
            suffix = "\n" + "".join(lines[i + 1 : i + 1 + N_SUFFIX_LINES])
            out.append((name, i + 1, FimRequest(prefix, suffix), text[TYPED:]))
    return out[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=60)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 0], help="window tokens (0: whole)")
    parser.add_argument("--engine", default="spark", choices=["spark", "codex"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    engines = load_engines(load_settings(), only=(args.engine,))
    engine = engines.routes[args.engine]
    loop = asyncio.new_event_loop()
    rows: list[dict[str, Any]] = []
    try:
        for n, (name, line, whole, truth) in enumerate(tasks(args.lines), 1):
            row: dict[str, Any] = {"file": name, "line": line, "truth": truth}
            for size in args.sizes:
                req = fit(whole, engine.count_tokens, size) if size else whole
                job = one_shot(engine, req, SamplingParams(max_tokens=48, temperature=0.0))
                said = loop.run_until_complete(engine.run(job)).text.split("\n", 1)[0].strip()
                row[str(size)] = {"exact": said == truth, "similarity": edit_similarity(said, truth), "said": said}
            rows.append(row)
            marks = " ".join(f"{s}={'Y' if row[str(s)]['exact'] else '.'}" for s in args.sizes)
            print(f"[{n}] {marks}  {name}:{line}  {truth[:50]}", file=sys.stderr, flush=True)
    finally:
        loop.close()
        engines.close()
    summary = {
        "cpu": cpu_name(),
        "engine": args.engine,
        "lines": len(rows),
        "by_size": {
            str(s): {
                "exact": sum(r[str(s)]["exact"] for r in rows) / len(rows),
                "similarity": statistics.mean(r[str(s)]["similarity"] for r in rows),
            }
            for s in args.sizes
        },
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
