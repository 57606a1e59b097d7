"""A migration run: plan, then each module rewritten, verified and committed, in a worktree until ``--apply``.

Each module is checked before the next one starts: it must compile, and for a test recipe the fidelity
check must hold: the module's tests, collected by pytest before and after, are the same ids with the same
outcomes (a lost, added, skipped or newly failing test fails the module).  A module that fails is put
back as it was and reported with the reason; the run goes on.  At the end the whole suite runs once more
against the baseline.  Every verified module is one commit on the run's branch, so the history shows the
migration module by module; the user's tree changes only with ``apply`` (all or none, as the fix loop).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import os
import re
import shlex
import tokenize
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from codespark.agent.sandbox import Limits
from codespark.agent.testrun import TestCommand, TestReport, project_python
from codespark.agent.workspace import Workspace
from codespark.migrate.plan import order
from codespark.migrate.recipe import Recipe, RecipeError, python_files


@dataclass(frozen=True)
class Event:
    kind: str  # plan | baseline | module | repair | suite | finished
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


def with_interpreter_flags(command: TestCommand, flags: Sequence[str]) -> TestCommand:
    """``command`` with ``flags`` after its interpreter when it starts with one (``python -m pytest``); as it
    is otherwise (a ``pytest`` script takes no interpreter flags)."""
    words = shlex.split(command.command)
    if not flags or not words or not Path(words[0]).name.startswith("python"):
        return command
    return replace(command, command=shlex.join([words[0], *flags, *words[1:]]))


class Repair(Protocol):
    """The model's part: given the failing suite, change the code until it passes (the fix loop)."""

    def events(self, workspace: Workspace, command: TestCommand) -> AsyncIterator[dict[str, Any]]: ...


class Migration:
    def __init__(self, workspace: Workspace, recipe: Recipe, command: TestCommand | None,
                 options: MigrateOptions | None = None, repair: Repair | None = None) -> None:  # fmt: skip
        self.ws = workspace
        self.recipe = recipe
        self.options = options or MigrateOptions()
        self.command = pytest_command(workspace.root, command)
        self.repair = repair if recipe.repairable else None
        self.results: list[dict[str, Any]] = []
        self.journal = Journal(self.options.journal)
        self._originals: dict[str, tuple[str, str]] = {}  # path -> (original text, encoding), for repair

    def plan(self) -> list[str]:
        return order(self._texts())

    def _texts(self) -> dict[str, str]:
        root = self.ws.root
        texts = {}
        for path in python_files(root):
            if self.options.modules and not fnmatch.fnmatch(path, self.options.modules):
                continue
            text = (root / path).read_text(encoding=source_encoding(root / path), errors="replace")
            if self.recipe.applies_to(path, text):
                texts[path] = text
        return texts

    def _run(self, only: tuple[str, ...] = ()) -> dict[str, str]:
        return dict(self._report(only).outcomes)

    def _report(self, only: tuple[str, ...] = ()) -> TestReport:
        return self.command.run(self.ws.root, self.options.limits, only, self.options.test_timeout_s)

    async def events(self) -> AsyncIterator[Event]:
        """``plan``, ``baseline`` (test recipes), ``module`` per module, ``repair`` (the model's steps, when
        the suite fails and the recipe allows it), ``suite`` and ``finished``."""
        texts = await asyncio.to_thread(self._texts)
        plan = order(texts)
        defined = defined_tests(texts)
        yield Event("plan", {"recipe": self.recipe.name, "modules": plan, "checks": list(self.recipe.checks),
                             "runner": self.command.command, "branch": self.ws.branch,
                             "repair": self.repair is not None})  # fmt: skip
        fidelity_check = "fidelity" in self.recipe.checks
        baseline = await asyncio.to_thread(self._run) if fidelity_check else {}
        if fidelity_check:
            yield Event("baseline", {"tests": len(baseline), "outcomes": _counts(baseline)})
        for path in plan:
            result = await asyncio.to_thread(self._module, path, baseline)
            self.results.append(result)
            yield Event("module", dict(result))  # a copy: the repair may update the result later
        problems = fidelity(baseline, await asyncio.to_thread(self._run)) if fidelity_check and self.results else []
        if problems:
            yield Event("suite", {"ok": False, "problems": problems[:50]})
        model: dict[str, Any] = {}
        if "tests" in self.recipe.checks:
            report = await asyncio.to_thread(self._report)
            if self.repair is not None and not _tests_ok(report):
                before = self.ws.commit(f"migrate {self.recipe.name}: before the model's repair")
                strict = with_interpreter_flags(self.command, self.recipe.repair_flags)
                async for step in self.repair.events(self.ws, strict):
                    yield Event("repair", step)
                for event in await asyncio.to_thread(self._settle_repaired):
                    yield event
                model = {"files": self.ws.changed(since=before), "diff": self.ws.diff(since=before)}
                report = await asyncio.to_thread(self._report)
            outcomes = dict(report.outcomes)
            lost = _lost(defined, outcomes, report)
            if not _tests_ok(report):
                problems.append("the tests on the result " + ("did not run" if not outcomes else "fail"))
            if lost:
                problems.append(f"{len(lost)} tests the original defines were not collected: {', '.join(lost[:5])}")
            yield Event("suite", {"ok": _tests_ok(report) and not lost, "outcomes": _counts(outcomes),
                                  "defined": sum(len(v) for v in defined.values()), "lost": lost[:50],
                                  "failing": sorted(t for t, o in outcomes.items() if o == "failed")[:50],
                                  "collect_errors": [e[-300:] for e in report.collect_errors[:10]]})  # fmt: skip
        verified = [r["path"] for r in self.results if r["status"] in ("verified", "repaired")]
        failed = [r["path"] for r in self.results if r["status"] == "failed"]
        status = "migrated" if not failed and not problems else "partial" if verified else "failed"
        self.journal.close()
        yield Event("finished", {"status": status, "verified": verified, "failed": failed,
                                 "repaired": [r["path"] for r in self.results if r["status"] == "repaired"],
                                 "unchanged": [r["path"] for r in self.results if r["status"] == "unchanged"],
                                 "suite_problems": problems[:50], "changed": self.ws.changed(),
                                 "model_changed": model.get("files", []), "model_diff": model.get("diff", ""),
                                 "branch": self.ws.branch, "diff": self.ws.diff()})  # fmt: skip

    def _settle_repaired(self) -> list[Event]:
        """After the model's repair: each module that did not compile after the rewrite either compiles now
        (repaired) or is put back as it was (failed)."""
        out = []
        for result in self.results:
            if result["status"] != "needs-repair":
                continue
            path = result["path"]
            original, encoding = self._originals[path]
            problem = _compiles(self.ws.read(path, encoding), path)
            if problem is None:
                result.update(status="repaired", reason="the fixers' output did not compile; the model repaired it")
            else:
                self.ws.write(path, original, encoding)
                result.update(status="failed", reason=f"{result['reason']}; the model's repair did not fix it")
            out.append(Event("module", dict(result)))
        if out:
            self.ws.commit(f"migrate {self.recipe.name}: after the model's repair")
        return out

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
        problem = _compiles(rewrite.text, path)
        # A recipe for code that did not run before (Python 2) must leave every module compiling, even one
        # it had nothing to rewrite in.
        if rewrite.text == original and (problem is None or "tests" not in self.recipe.checks):
            return {**info, "status": "unchanged", "reason": "nothing to rewrite"}
        if problem is not None and self.repair is not None:
            # Kept as the fixers left it: the model repairs it with the suite (a failing module is put back then).
            self.ws.write(path, rewrite.text, encoding)
            self.ws.commit(f"migrate {self.recipe.name}: {path} (fixers; {problem})")
            self._originals[path] = (original, encoding)
            return {**info, "status": "needs-repair", "reason": problem}
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


def _tests_ok(report: TestReport) -> bool:
    outcomes = dict(report.outcomes)
    return bool(outcomes) and "failed" not in outcomes.values() and not report.collect_errors


_CLASS = re.compile(r"^class\s+(\w+)\s*(?:\(([^)]*)\))?\s*:", re.MULTILINE)
_METHOD = re.compile(r"^([ \t]*)def\s+(test\w*)\s*\(", re.MULTILINE)


def defined_tests(texts: Mapping[str, str]) -> dict[str, set[str]]:
    """The tests each module defines, read from its source (Python 2 or 3, so no parser): top-level
    ``test*`` functions, and ``test*`` methods of classes that derive from a ``TestCase`` (directly or
    through a class of the same module), as pytest ids without the module: ``Class::test_x``, ``test_y``."""
    out: dict[str, set[str]] = {}
    for path, text in texts.items():
        bases = {name: (base or "") for name, base in _CLASS.findall(text)}

        def is_case(name: str, bases: dict[str, str] = bases, seen: frozenset[str] = frozenset()) -> bool:
            base = bases.get(name, "")
            if "TestCase" in base:
                return True
            parents = [b.strip() for b in base.split(",")]
            return any(p in bases and p not in seen and is_case(p, bases, seen | {name}) for p in parents)

        classes = [(c.start(), c.group(1)) for c in _CLASS.finditer(text)]
        names: set[str] = set()
        for method in _METHOD.finditer(text):
            if not method.group(1):
                names.add(method.group(2))
                continue
            owner = next((name for start, name in reversed(classes) if start < method.start()), None)
            if owner is not None and is_case(owner):
                names.add(f"{owner}::{method.group(2)}")
        if names:
            out[path] = names
    return out


def _lost(defined: Mapping[str, set[str]], outcomes: Mapping[str, str], report: TestReport) -> list[str]:
    """Tests the original defines in the modules the runner collected from (or failed to collect) that are
    not among the results: the migration lost them.  (pytest's ids are relative to its rootdir, which may
    be a subfolder: a module is matched by its path's ending.)"""

    def module_of(file: str) -> str | None:
        return next((p for p in defined if p == file or p.endswith("/" + file)), None)

    found: dict[str, set[str]] = {}
    for test in outcomes:
        file, _, name = test.partition("::")
        module = module_of(file)
        if module is not None:
            found.setdefault(module, set()).add(name.split("[", 1)[0])
    for error in report.collect_errors:
        module = module_of(error.split(":", 1)[0])
        if module is not None:
            found.setdefault(module, set())
    return [f"{path}::{name}" for path in sorted(found) for name in sorted(defined[path] - found[path])]


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
