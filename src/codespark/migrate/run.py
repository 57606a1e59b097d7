"""A migration run: plan, then each module rewritten, verified and committed, in a worktree until ``--apply``.

Each module is checked before the next one starts: it must compile, and for a test recipe the fidelity
check must hold: the module's tests, collected by pytest before and after, are the same ids with the same
outcomes (a lost, added, skipped or newly failing test fails the module).  A module that fails is put
back as it was and reported with the reason; the run goes on.  At the end the whole suite runs once more
against the baseline.  Every verified module is one commit on the run's branch, so the history shows the
migration module by module; the user's tree changes only with ``apply`` (all or none, as the fix loop).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codespark.agent.sandbox import Limits
from codespark.agent.testrun import TestCommand, TestReport, project_python
from codespark.agent.workspace import Workspace
from codespark.migrate.plan import order
from codespark.migrate.recipe import Recipe, RecipeError, python_files


@dataclass(frozen=True)
class Event:
    kind: str  # plan | baseline | module | suite | finished
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **self.data}


@dataclass(frozen=True)
class MigrateOptions:
    modules: str | None = None  # a glob over paths relative to the project root
    limits: Limits = field(default_factory=lambda: Limits(timeout_s=600))
    test_timeout_s: float = 60
    journal: Path | None = None  # where verified modules are recorded, so a crashed run resumes


class Journal:
    """The modules an unfinished run verified (JSON lines: path, the original's digest, the new text).  A
    run that starts while one is there takes those modules as they were verified instead of redoing them,
    when their original is unchanged; a run that ends removes it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done: dict[str, dict[str, str]] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.done[entry["path"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by the crash

    def recall(self, path: str, original: str) -> str | None:
        entry = self.done.get(path)
        return entry["text"] if entry is not None and entry.get("before") == _digest(original) else None

    def record(self, path: str, original: str, text: str) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"path": path, "before": _digest(original), "text": text}) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def close(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def fidelity(before: Mapping[str, str], after: Mapping[str, str], module: str | None = None) -> list[str]:
    """What differs between two runs' outcomes (of ``module``'s tests only, when given); empty when none."""

    def mine(ids: Mapping[str, str]) -> dict[str, str]:
        return {t: o for t, o in ids.items() if module is None or t.split("::", 1)[0] == module}

    old, new = mine(before), mine(after)
    problems = [f"lost {t} ({old[t]} before)" for t in sorted(set(old) - set(new))]
    problems += [f"new test {t} ({new[t]})" for t in sorted(set(new) - set(old))]
    problems += [f"{t}: {old[t]} before, {new[t]} after" for t in sorted(set(old) & set(new)) if old[t] != new[t]]
    return problems


def pytest_command(root: Path, given: TestCommand | None) -> TestCommand:
    """The runner the fidelity check reads outcomes from: the project's pytest command, or pytest itself
    (which collects unittest suites with the same ids)."""
    if given is not None and given.pytest:
        return given
    # One module that does not import must not hide every other module's outcomes.
    command = f"{project_python(root)} -m pytest --continue-on-collection-errors"
    return TestCommand("pytest", command, "pytest collects the unittest suite")


class Migration:
    def __init__(self, workspace: Workspace, recipe: Recipe, command: TestCommand | None,
                 options: MigrateOptions | None = None) -> None:  # fmt: skip
        self.ws = workspace
        self.recipe = recipe
        self.options = options or MigrateOptions()
        self.command = pytest_command(workspace.root, command)
        self.results: list[dict[str, Any]] = []
        self.journal = Journal(self.options.journal)

    def plan(self) -> list[str]:
        root = self.ws.root
        texts = {}
        for path in python_files(root):
            if self.options.modules and not fnmatch.fnmatch(path, self.options.modules):
                continue
            text = (root / path).read_text(encoding=source_encoding(root / path), errors="replace")
            if self.recipe.applies_to(path, text):
                texts[path] = text
        return order(texts)

    def _run(self, only: tuple[str, ...] = ()) -> dict[str, str]:
        return dict(self._report(only).outcomes)

    def _report(self, only: tuple[str, ...] = ()) -> TestReport:
        return self.command.run(self.ws.root, self.options.limits, only, self.options.test_timeout_s)

    def events(self) -> Iterator[Event]:
        plan = self.plan()
        yield Event("plan", {"recipe": self.recipe.name, "modules": plan, "checks": list(self.recipe.checks),
                             "runner": self.command.command, "branch": self.ws.branch})  # fmt: skip
        baseline = self._run() if "fidelity" in self.recipe.checks else {}
        if "fidelity" in self.recipe.checks:
            yield Event("baseline", {"tests": len(baseline), "outcomes": _counts(baseline)})
        for path in plan:
            result = self._module(path, baseline)
            self.results.append(result)
            yield Event("module", result)
        problems = fidelity(baseline, self._run()) if "fidelity" in self.recipe.checks and self.results else []
        if problems:
            yield Event("suite", {"ok": False, "problems": problems[:50]})
        if "tests" in self.recipe.checks:
            report = self._report()
            outcomes = dict(report.outcomes)
            tests_ok = bool(outcomes) and "failed" not in outcomes.values() and not report.collect_errors
            if not tests_ok:
                problems.append("the tests on the result " + ("did not run" if not outcomes else "fail"))
            yield Event("suite", {"ok": tests_ok, "outcomes": _counts(outcomes),
                                  "failing": sorted(t for t, o in outcomes.items() if o == "failed")[:50],
                                  "collect_errors": [e[-300:] for e in report.collect_errors[:10]]})  # fmt: skip
        verified = [r["path"] for r in self.results if r["status"] == "verified"]
        failed = [r["path"] for r in self.results if r["status"] == "failed"]
        status = "migrated" if not failed and not problems else "partial" if verified else "failed"
        self.journal.close()
        yield Event("finished", {"status": status, "verified": verified, "failed": failed,
                                 "unchanged": [r["path"] for r in self.results if r["status"] == "unchanged"],
                                 "suite_problems": problems[:50], "changed": self.ws.changed(),
                                 "branch": self.ws.branch, "diff": self.ws.diff()})  # fmt: skip

    def _module(self, path: str, baseline: Mapping[str, str]) -> dict[str, Any]:
        encoding = source_encoding(self.ws.root / path)  # old code declares latin-1 and the like
        original = self.ws.read(path, encoding)
        resumed = self.journal.recall(path, original)
        if resumed is not None:
            self.ws.write(path, resumed, encoding)
            self.ws.commit(f"migrate {self.recipe.name}: {path} (verified by an earlier run)")
            return {"path": path, "status": "verified", "reason": "verified by an earlier run that stopped; resumed",
                    "converted": 0, "kept": [], "needs_model": []}  # fmt: skip
        try:
            rewrite = self.recipe.rewrite(path, original, self.ws.root)
        except RecipeError as exc:
            return {"path": path, "status": "failed", "reason": str(exc)}
        info = {"path": path, "converted": rewrite.converted, "kept": list(rewrite.kept),
                "needs_model": list(rewrite.needs_model)}  # fmt: skip
        if rewrite.text == original:
            return {**info, "status": "unchanged", "reason": "nothing to rewrite"}
        problem = _compiles(rewrite.text, path)
        if problem is None and "fidelity" in self.recipe.checks:
            self.ws.write(path, rewrite.text, encoding)
            differences = fidelity(baseline, self._run((path,)), path)
            problem = "; ".join(differences[:5]) if differences else None
        if problem is not None:
            self.ws.write(path, original, encoding)  # put back as it was: the run goes on without this module
            return {**info, "status": "failed", "reason": problem}
        self.ws.write(path, rewrite.text, encoding)
        self.ws.commit(f"migrate {self.recipe.name}: {path}")
        self.journal.record(path, original, rewrite.text)
        return {**info, "status": "verified", "reason": f"{rewrite.converted} rewritten, checks held"}


def source_encoding(path: Path) -> str:
    """The encoding a Python file declares (PEP 263), else UTF-8."""
    with path.open("rb") as fh:
        try:
            return tokenize.detect_encoding(fh.readline)[0]
        except SyntaxError:
            return "utf-8"


def _compiles(text: str, path: str) -> str | None:
    try:
        compile(text, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"does not compile: {exc.msg} (line {exc.lineno})"
    return None


def _counts(outcomes: Mapping[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
