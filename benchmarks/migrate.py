"""Migration, measured (``make bench-migrate``): ``unittest-to-pytest`` on real unittest suites nobody here
wrote, beside ``unittest2pytest`` and ``pytestify`` on the same files.

The suites are standard-library test modules that run standalone (copied from this Python's ``test``
package into a temp project; they import ``test.support`` from the installed stdlib).  For each tool:
the modules it converted, and the tests whose outcome (pytest's, per test id) is the same as before:
**preserved** means the same id with the same outcome; a lost, renamed, newly failing or newly skipped
test is not preserved.  codespark also puts back any module whose own check fails, so its figure counts
what lands; the peers' figures count what their output does.

    python benchmarks/migrate.py --json bench-out/migrate.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name, print_report
from codespark.agent.sandbox import Limits
from codespark.agent.testrun import TestCommand
from codespark.agent.workspace import Workspace
from codespark.migrate.run import Event, MigrateOptions, Migration, fidelity
from codespark.migrate.unittest_pytest import UnittestToPytestRecipe

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("test_textwrap", "test_heapq", "test_bisect", "test_fractions", "test_difflib", "test_statistics",
           "test_shlex", "test_colorsys", "test_string", "test_keyword", "test_fnmatch", "test_glob")  # fmt: skip
PEERS = {"unittest2pytest": "unittest2pytest==0.5", "pytestify": "pytestify==1.5.0"}


def make_project(folder: Path) -> list[str]:
    stdlib_tests = Path(sysconfig.get_paths()["stdlib"]) / "test"
    folder.mkdir(parents=True)
    names = []
    for name in MODULES:
        source = stdlib_tests / f"{name}.py"
        if source.exists():
            shutil.copy(source, folder / source.name)
            names.append(source.name)
    return names


def outcomes(folder: Path) -> dict[str, str]:
    command = TestCommand("pytest", f"{sys.executable} -m pytest --continue-on-collection-errors", "benchmark")
    return dict(command.run(folder, Limits(timeout_s=900), test_timeout_s=120).outcomes)


def peer_tool(name: str) -> list[str]:
    target = ROOT / "bench-out" / "migrate-peers"
    if not (target / name).exists() and not any(target.glob(f"{name}*")):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), PEERS[name]],
                       check=True)  # fmt: skip
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r}); sys.argv[0] = {name!r}; "
            + {"unittest2pytest": "from unittest2pytest.__main__ import main; sys.exit(main())",
               "pytestify": "from pytestify._main import main; sys.exit(main())"}[name]]  # fmt: skip


def run_peer(name: str, files: list[str], folder: Path, before: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    cmd = peer_tool(name)
    args = ["-w", "-n", *files] if name == "unittest2pytest" else files
    done = subprocess.run([*cmd, *args], cwd=folder, capture_output=True, text=True, timeout=600)
    after = outcomes(folder)
    problems = fidelity(before, after)
    return {"tool": name, "exit": done.returncode, "stderr": done.stderr[-400:], **_score(before, after, problems),
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def _score(before: dict[str, str], after: dict[str, str], problems: list[str]) -> dict[str, Any]:
    same = sum(t in after and after[t] == o for t, o in before.items())
    return {"tests_before": len(before), "preserved": same, "preserved_share": round(same / max(1, len(before)), 4),
            "problems": problems[:20]}  # fmt: skip


async def _events(migration: Migration) -> list[Event]:
    return [e async for e in migration.events()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-peers", action="store_true", help="Only codespark.")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="codespark-migrate-bench-") as tmp:
        base = Path(tmp)
        files = make_project(base / "original")
        before = outcomes(base / "original")
        print(f"{len(files)} modules, {len(before)} tests", file=sys.stderr, flush=True)
        started = time.perf_counter()
        ws = Workspace.open(base / "original", base / "cache", kind="migrate")
        try:
            migration = Migration(ws, UnittestToPytestRecipe(), None, MigrateOptions(test_timeout_s=120))
            events = asyncio.run(_events(migration))
            after = outcomes(ws.root)
        finally:
            ws.close()
        modules = [e.data for e in events if e.kind == "module"]
        rows.append({"tool": "codespark", **_score(before, after, fidelity(before, after)),
                     "verified": sum(m["status"] == "verified" for m in modules),
                     "failed": {m["path"]: m["reason"][:200] for m in modules if m["status"] == "failed"},
                     "converted": sum(m.get("converted", 0) for m in modules),
                     "kept": sum(len(m.get("kept", [])) for m in modules),
                     "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
        print(json.dumps(rows[-1])[:600], file=sys.stderr, flush=True)
        if not args.no_peers:
            for name in PEERS:
                folder = base / name
                shutil.copytree(base / "original", folder)
                try:
                    rows.append(run_peer(name, files, folder, before))
                except (subprocess.SubprocessError, OSError) as exc:
                    rows.append({"tool": name, "error": f"{type(exc).__name__}: {exc}"[:400]})
                print(json.dumps(rows[-1])[:600], file=sys.stderr, flush=True)
    report = {"cpu": cpu_name(), "python": sys.version.split()[0], "modules": list(MODULES), "rows": rows}
    print_report(report, args.json)


if __name__ == "__main__":
    main()
