"""``py2-to-py3`` measured on real Python-2-only releases from PyPI (``make bench-migrate``).

Each release's sdist (checked against PyPI's sha256) is unpacked into a temp folder and migrated three
ways on copies of the same files, then its own tests run on this Python:

- ``2to3``: fissix's fixers alone (``python -m fissix -w -n``), the classic tool;
- ``fixers``: codespark's deterministic part (``codespark migrate --engine none``);
- ``model``: codespark with the model's repairs (the fix loop on the local codex, ``--engine codex``).

The score is the share of the tests the original defines (read from its test files) that pass after the
migration.  Python 2 is not installed here, so the originals' own pass rate on Python 2 is not measured.

    python benchmarks/migrate_py2.py --rounds 2 --candidates 3 --json bench-out/migrate-py2.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name, print_report
from codespark.agent.sandbox import Limits
from codespark.agent.testrun import TestCommand, project_python
from codespark.migrate.run import Event, defined_tests
from codespark.services.migrate import MigrateRequest, MigrateService


@dataclass(frozen=True)
class Release:
    name: str
    version: str
    tests: tuple[str, ...]  # the test files, relative to the unpacked folder
    why: str  # why it runs on Python 2 only
    ports: tuple[str, ...] = ()  # PyPI ports of removed modules the migration names, installed as it advises

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.version}"


RELEASES = (
    Release("python-dateutil", "1.5", ("test.py",), "the last 1.x release; 2.0 was the Python 3 port"),
    Release("simplejson", "2.6.2", ("simplejson/tests",), "3.0 (2013) added Python 3; `except X, e`, `ur''`"),
    Release("BeautifulSoup", "3.2.1", ("BeautifulSoupTests.py",), "built on sgmllib, removed in Python 3.0",
            ("sgmllib3k==1.0.0",)),
    Release("python-gflags", "2.0", ("tests/gflags_unittest.py", "tests/gflags_helpxml_test.py",
                                     "tests/gflags_validators_test.py"), "3.0 added Python 3; print statements"),
)  # fmt: skip
CACHE = Path.home() / ".cache" / "codespark" / "bench" / "py2src"


def fetch(release: Release) -> bytes:
    """The release's sdist from PyPI, checked against the sha256 PyPI lists (cached)."""
    target = CACHE / f"{release.folder}.tar.gz"
    if target.exists():
        return target.read_bytes()
    page = httpx.get(f"https://pypi.org/simple/{release.name}/", timeout=60, follow_redirects=True).text
    found = re.search(rf'href="([^"]*/{re.escape(release.folder)}\.tar\.gz)#sha256=([0-9a-f]+)"', page)
    if found is None:
        raise SystemExit(f"{release.folder}.tar.gz is not on PyPI's index")
    data = httpx.get(found.group(1), timeout=120, follow_redirects=True).content
    if hashlib.sha256(data).hexdigest() != found.group(2):
        raise SystemExit(f"{release.folder}.tar.gz does not match PyPI's sha256")
    CACHE.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return data


def unpack(release: Release, into: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(fetch(release))) as archive:
        archive.extractall(into, filter="data")
    return into / release.folder


def test_files(root: Path, release: Release) -> list[str]:
    out = []
    for entry in release.tests:
        path = root / entry
        files = sorted(path.rglob("test*.py")) if path.is_dir() else [path]
        out += [f.relative_to(root).as_posix() for f in files]
    return out


def command(root: Path, release: Release) -> str:
    """The release's tests, run by the project's interpreter (its own .venv, when ports were installed)."""
    return f"{project_python(root)} -m pytest --continue-on-collection-errors {' '.join(release.tests)}"


def install_ports(root: Path, release: Release) -> None:
    """A project venv (seeing this environment's packages) with the ports the migration report names."""
    if release.ports:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root / ".venv")], check=True)
        subprocess.run([str(root / ".venv/bin/python"), "-m", "pip", "install", "--quiet", *release.ports],
                       check=True)  # fmt: skip


def passing(root: Path, release: Release, defined: dict[str, set[str]]) -> dict[str, Any]:
    """How many of the tests the original defines pass in ``root`` now."""
    runner = TestCommand("pytest", command(root, release), "benchmark")
    report = runner.run(root, Limits(timeout_s=900), test_timeout_s=60)
    passed = set()
    for test, outcome in report.outcomes.items():
        file, _, name = test.partition("::")
        module = next((p for p in defined if p == file or p.endswith("/" + file)), None)
        if module is not None and outcome == "passed" and name.split("[", 1)[0] in defined[module]:
            passed.add(f"{module}::{name}")
    total = sum(len(v) for v in defined.values())
    return {"passed": len(passed), "of": total, "share": round(len(passed) / max(1, total), 4),
            "collect_errors": len(report.collect_errors)}  # fmt: skip


async def migrate(service: MigrateService, root: Path, release: Release, engine: str, rounds: int,
                  candidates: int) -> list[Event]:  # fmt: skip
    request = MigrateRequest(root, "py2-to-py3", command(root, release), apply=True, engine=engine, rounds=rounds,
                             candidates=candidates)  # fmt: skip
    events = []
    async for event in service.start(request):
        events.append(event)
        if event.kind == "repair" and event.data["step"] in ("round", "best", "finished"):
            print(f"  {event.data['step']}: {event.data.get('target') or event.data.get('summary')}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return events


def modules_row(events: list[Event]) -> dict[str, Any]:
    finished = next(e.data for e in events if e.kind == "finished")
    last: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.kind == "module":
            last[event.data["path"]] = event.data
    model = set(finished["model_changed"])
    statuses = [m["status"] for m in last.values()]
    return {"modules": len(last), "unchanged": statuses.count("unchanged"),
            "fixers_alone": sum(m["status"] == "verified" and m["path"] not in model for m in last.values()),
            "model_changed": sorted(model), "repaired": finished["repaired"], "failed": finished["failed"],
            "repair_rounds": sum(e.kind == "repair" and e.data["step"] == "round" for e in events),
            "repair_candidates": sum(e.kind == "repair" and e.data["step"] == "candidate" for e in events),
            "status": finished["status"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--releases", nargs="*", default=None, help="Names of the releases to run (default: all).")
    parser.add_argument("--no-model", action="store_true", help="Only 2to3 and the deterministic part.")
    parser.add_argument("--rounds", type=int, default=2, help="The fix loop's rounds per release.")
    parser.add_argument("--candidates", type=int, default=3)
    args = parser.parse_args()
    releases = [r for r in RELEASES if args.releases is None or r.name in args.releases]
    plain = MigrateService(Path(tempfile.gettempdir()) / "codespark-bench-cache")
    modelled = None
    engines = None
    if not args.no_model:
        from codespark.config import load_settings
        from codespark.engine.loader import load_engines
        from codespark.services.state import AppState

        settings = load_settings(None)
        engines = load_engines(settings, only=("codex",))
        modelled = AppState.build(settings, engines).migrate
    rows: list[dict[str, Any]] = []
    try:
        for release in releases:
            with tempfile.TemporaryDirectory(prefix="codespark-py2-") as tmp:
                original = unpack(release, Path(tmp) / "original")
                texts = {p: (original / p).read_text(encoding="latin-1") for p in test_files(original, release)}
                defined = defined_tests(texts)
                row: dict[str, Any] = {"release": release.folder, "why": release.why,
                                       "tests_defined": sum(len(v) for v in defined.values())}  # fmt: skip
                print(f"{release.folder}: {row['tests_defined']} tests", file=sys.stderr, flush=True)
                copy = Path(tmp) / "2to3"
                shutil.copytree(original, copy)
                install_ports(copy, release)
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "fissix", "-w", "-n", "--no-diffs", "."], cwd=copy,
                               capture_output=True, check=False)  # fmt: skip
                row["2to3"] = {**passing(copy, release, defined), "seconds": round(time.perf_counter() - started, 1)}
                ways = [("fixers", plain, "none")] + ([("model", modelled, "codex")] if modelled else [])
                for way, service, engine in ways:
                    copy = Path(tmp) / way
                    shutil.copytree(original, copy)
                    install_ports(copy, release)
                    started = time.perf_counter()
                    events = asyncio.run(migrate(service, copy, release, engine, args.rounds, args.candidates))
                    row[way] = {**passing(copy, release, defined), **modules_row(events),
                                "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
                print(json.dumps(row)[:900], file=sys.stderr, flush=True)
                rows.append(row)
    finally:
        if engines is not None:
            engines.close()
    totals = {way: {"passed": sum(r[way]["passed"] for r in rows if way in r),
                    "of": sum(r["tests_defined"] for r in rows if way in r)}
              for way in ("2to3", "fixers", "model")}  # fmt: skip
    report = {"cpu": cpu_name(), "python": sys.version.split()[0], "rounds": args.rounds,
              "candidates": args.candidates, "rows": rows, "totals": totals}  # fmt: skip
    print_report(report, args.json)


if __name__ == "__main__":
    main()
