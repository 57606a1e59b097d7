"""``codespark tests``: pytest tests for chosen functions, written by the model and kept only when they
pass on the code as it is.  A test that fails is reported as a possible bug, with its failing assertion;
the coverage each function gains (coverage.py, the project's existing tests first) is measured.

Everything runs in a worktree copy; the user's tree gets a test file only with ``write``.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codespark.agent.localize import Unit, is_test_path, units_of
from codespark.agent.sandbox import Limits
from codespark.agent.testrun import TestCommand, executed_lines
from codespark.engine.chat import Message
from codespark.migrate.plan import module_name
from codespark.review.run import Asker

SYSTEM = (
    "You write pytest tests. Reply with one ```python code block: the imports it needs and 3 to 5 small test "
    "functions named test_..., each with plain assert statements on exact expected values. Test the "
    "behaviour the code's name, docstring and logic promise, edge cases included. No fixtures, no mocks."
)
LIMITS = Limits(timeout_s=120, cpu_s=120)


@dataclass(frozen=True)
class Candidate:
    name: str
    source: str


@dataclass
class FunctionTests:
    path: str
    function: str
    kept: list[Candidate] = field(default_factory=list)
    failing: list[tuple[Candidate, str]] = field(default_factory=list)  # (test, the failing assertion)
    broken: int = 0  # candidates that did not even run (syntax, imports)
    coverage_before: float | None = None
    coverage_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "function": self.function, "kept": [c.name for c in self.kept],
                "possible_bugs": [{"test": c.name, "assertion": why, "source": c.source} for c, why in self.failing],
                "broken": self.broken, "coverage_before": self.coverage_before,
                "coverage_after": self.coverage_after}  # fmt: skip


def messages(path: str, unit: Unit, source: str) -> list[Message]:
    module = module_name(path)
    user = (f"Module `{module}` (import it as `from {module} import {unit.name.split('.')[0]}`):\n"
            f"```python\n{source.rstrip()}\n```\n\nWrite pytest tests for `{unit.name}`.")  # fmt: skip
    return [Message("system", SYSTEM), Message("user", user)]


def candidates(answer: str) -> tuple[str, list[Candidate]]:
    """The answer's imports (and helpers) and its test functions, each on its own."""
    blocks = re.findall(r"```(?:python|py)?\n(.*?)```", answer, re.S) or [answer]
    code = textwrap.dedent(blocks[0])
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "", []
    header = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    seen: set[str] = set()
    out = []
    for node in tests:
        if node.name in seen:
            continue
        seen.add(node.name)
        out.append(Candidate(node.name, ast.unparse(node)))
    return "\n".join(ast.unparse(n) for n in header), out


def test_file(header: str, tests: Sequence[Candidate]) -> str:
    body = "\n\n\n".join(t.source for t in tests)
    return f'"""Tests written by codespark tests, kept because they pass."""\n\n{header}\n\n\n{body}\n'


def outcomes(root: Path, rel: str) -> tuple[dict[str, str], dict[str, str]]:
    """Each test's outcome in ``rel`` and the failing ones' messages (the loop's pytest report plugin)."""
    command = TestCommand("pytest", f"{shlex.quote(sys.executable)} -m pytest", "codespark tests")
    report = command.run(root, LIMITS, only=(rel,), test_timeout_s=10)
    results = {t.split("::")[-1]: o for t, o in report.outcomes.items()}
    why = {f.test.split("::")[-1]: f"{f.exc_type}: {f.message}".strip()[:400] for f in report.failures}
    return results, why


def coverage(root: Path, path: str, unit: Unit, tests: Sequence[str]) -> float | None:
    """The share of ``unit``'s lines that ``tests`` (pytest ids or paths) execute, by coverage.py."""
    found = executed_lines(root, path, tests, LIMITS)
    if found is None:
        return None
    ran, missed = found
    if not ran and not missed:
        return 0.0
    lines = set(range(unit.def_line + 1, unit.end + 1))
    statements = lines & (ran | missed)
    return round(len(lines & ran) / len(statements), 3) if statements else None


def existing_tests(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("test*.py")
                  if is_test_path(str(p.relative_to(root))) and ".venv" not in p.parts)  # fmt: skip


async def generate(asker: Asker, root: Path, path: str, unit: Unit, out_rel: str) -> tuple[FunctionTests, str]:
    """Tests for ``unit`` in the tree ``root`` (a copy): the kept ones, and the header they need."""
    text = (root / path).read_text(encoding="utf-8")
    source = "".join(text.splitlines(keepends=True)[unit.start - 1 : unit.end])
    answer = await asker.ask(messages(path, unit, source), 700)
    header, found = candidates(answer)
    result = FunctionTests(path, unit.name)
    if not found:
        return result, header
    target = root / out_rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(test_file(header, found), encoding="utf-8")
    results, why = outcomes(root, out_rel)
    for c in found:
        outcome = results.get(c.name)
        if outcome == "passed":
            result.kept.append(c)
        elif outcome == "failed" and "Error: " in why.get(c.name, "") and not why[c.name].startswith("AssertionError"):
            result.broken += 1  # it crashed before asserting anything (a wrong import, a wrong call)
        elif outcome == "failed":
            result.failing.append((c, why.get(c.name, "")))
        else:
            result.broken += 1
    target.unlink(missing_ok=True)
    return result, header


def pick(root: Path, target: str) -> list[tuple[str, Unit]]:
    """``path.py`` (its top-level functions and methods) or ``path.py::name``."""
    path, _, name = target.partition("::")
    file = root / path
    if not file.is_file() or not path.endswith(".py"):
        raise FileNotFoundError(f"{path} is not a Python file under {root}.")
    units = [u for u in units_of(file.read_text(encoding="utf-8"), path) if u.kind == "function"]
    chosen = [u for u in units if not name or u.name == name or u.short == name]
    return [(path, u) for u in chosen if not u.short.startswith("_") or name]
