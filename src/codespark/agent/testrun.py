"""Which test command a project uses, and what its run says: each test's outcome and, per failure, the
exception, the assertion and the traceback frames (for pytest, through ``plugin/codespark_report.py``;
for other runners, what can be read from their output).

Paths in a report are relative to the directory the tests ran in, so a report from a worktree names the
same files as the user's tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codespark.agent import sandbox
from codespark.agent.sandbox import Limits, RunResult
from codespark.errors import InvalidRequestError

PLUGIN_DIR = Path(__file__).parent / "plugin"
KINDS = ("pytest", "unittest", "npm", "go", "cargo", "custom")


@dataclass(frozen=True)
class Frame:
    path: str  # relative to the run's root when inside it, else absolute
    line: int
    function: str
    source: str = ""
    locals: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    test: str  # the test id (pytest node id), or "(run)" when the runner's output names none
    path: str
    line: int | None
    exc_type: str
    message: str
    frames: tuple[Frame, ...] = ()
    timeout: bool = False


@dataclass(frozen=True)
class TestReport:
    __test__ = False

    run: RunResult
    outcomes: dict[str, str]  # test id -> passed | failed | skipped (empty when the runner gives none)
    failures: tuple[Failure, ...]
    collect_errors: tuple[str, ...] = ()
    structured: bool = False

    @property
    def passed(self) -> int:
        return sum(o == "passed" for o in self.outcomes.values())

    @property
    def failed(self) -> list[str]:
        return [t for t, o in self.outcomes.items() if o == "failed"]

    @property
    def green(self) -> bool:
        return self.run.ok and not self.failed and not self.collect_errors

    def summary(self) -> str:
        if self.run.timed_out:
            return f"timed out after {self.run.seconds:.0f} s ({self.passed} passed before)"
        if not self.structured:
            return "passed" if self.green else f"failed (exit {self.run.returncode})"
        parts = [f"{self.passed} passed", f"{len(self.failed)} failed"]
        if self.collect_errors:
            parts.append(f"{len(self.collect_errors)} collection errors")
        return ", ".join(parts)


@dataclass(frozen=True)
class TestCommand:
    __test__ = False  # not a test class, for pytest

    kind: str  # one of KINDS
    command: str  # a shell command, run in the project's root
    reason: str  # why this command (shown to the user)

    @property
    def pytest(self) -> bool:
        return self.kind == "pytest"

    def run(self, root: Path, limits: Limits, only: Sequence[str] = (), test_timeout_s: float = 0) -> TestReport:
        """Run the tests in ``root`` (only the test ids in ``only`` when the runner can select them)."""
        # The copy's own code first: an editable install of the project points at the user's tree.
        paths = [str(p) for p in (root / "src", root) if p.is_dir()]
        if not self.pytest:
            result = sandbox.run(self.command, root, limits, {"PYTHONPATH": os.pathsep.join(paths)})
            return parse_output(result, root)
        with tempfile.TemporaryDirectory(prefix="codespark-report-") as tmp:
            report = Path(tmp) / "report.jsonl"
            selected = " ".join(shlex.quote(t) for t in only)
            command = f"{self.command} -p codespark_report -p no:cacheprovider -q {selected}".rstrip()
            env = {"PYTHONPATH": os.pathsep.join([*paths, str(PLUGIN_DIR)]), "CODESPARK_REPORT": str(report),
                   "CODESPARK_TEST_TIMEOUT": str(test_timeout_s or "")}  # fmt: skip
            result = sandbox.run(command, root, limits, env)
            lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
        return parse_report(result, lines, root)


def detect(root: Path, test_cmd: str | None = None) -> TestCommand:
    """The project's test command: ``test_cmd`` if given (classified), else found from its files."""
    if test_cmd:
        if _is_pytest(test_cmd):
            return TestCommand("pytest", test_cmd, "--test-cmd (pytest: structured results)")
        return TestCommand("custom", test_cmd, "--test-cmd")
    package = root / "package.json"
    if package.is_file():
        script = _npm_test_script(package)
        if script:
            return TestCommand("npm", "npm test --silent", f"package.json scripts.test ({script})")
    if (root / "go.mod").is_file():
        return TestCommand("go", "go test ./...", "go.mod")
    if (root / "Cargo.toml").is_file():
        return TestCommand("cargo", "cargo test", "Cargo.toml")
    python = project_python(root)
    marker = _pytest_marker(root)
    has_pytest = _has_module(python, "pytest")
    if marker and has_pytest:
        return TestCommand("pytest", f"{shlex.quote(python)} -m pytest", f"pytest ({marker}; {python})")
    tests = _python_tests(root)
    if tests:
        if has_pytest:  # pytest runs unittest suites too, and reports them in detail
            return TestCommand("pytest", f"{shlex.quote(python)} -m pytest", f"test files such as {tests[0]} "
                               f"(run by pytest, which also runs unittest suites; {python})")  # fmt: skip
        return TestCommand("unittest", f"{shlex.quote(python)} -m unittest discover", f"unittest ({tests[0]})")
    raise InvalidRequestError(
        f"No tests found in {root}: no pytest or unittest files, package.json test script, go.mod or "
        "Cargo.toml. Pass the command with --test-cmd, e.g. --test-cmd 'python -m pytest tests'.",
        param="test_cmd",
    )


def project_python(root: Path) -> str:
    """The project's own interpreter (``.venv``/``venv``) when it has one, else this one."""
    for name in (".venv", "venv", "env"):
        candidate = root / name / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def _has_module(python: str, module: str) -> bool:
    try:
        done = subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _is_pytest(command: str) -> bool:
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):  # `DJANGO_SETTINGS_MODULE=x pytest`
        words = words[1:]
    return bool(words) and (Path(words[0]).name in ("pytest", "py.test") or words[1:3] == ["-m", "pytest"])


def _npm_test_script(package: Path) -> str | None:
    try:
        scripts = json.loads(package.read_text(encoding="utf-8")).get("scripts") or {}
    except (OSError, ValueError, AttributeError):
        return None
    script = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(script, str) or "no test specified" in script:
        return None
    return script


def _pytest_marker(root: Path) -> str | None:
    for name in ("pytest.ini", "conftest.py"):
        if (root / name).is_file():
            return name
    for name, section in (("pyproject.toml", "[tool.pytest"), ("setup.cfg", "[tool:pytest]"), ("tox.ini", "[pytest]")):
        path = root / name
        if path.is_file() and section in path.read_text(encoding="utf-8", errors="replace"):
            return f"{name} {section}"
    return None


_SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", "__pycache__", ".tox", "build", "dist", "site-packages"}


def _python_tests(root: Path, limit: int = 2000) -> list[str]:
    found: list[str] = []
    seen = 0
    for path in sorted(root.rglob("*.py")):
        seen += 1
        if seen > limit:
            break
        if _SKIP_DIRS.intersection(path.relative_to(root).parts):
            continue
        if path.name.startswith("test") or path.stem.endswith("_test"):
            found.append(str(path.relative_to(root)))
    return found


def relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` when inside it."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except (ValueError, OSError):
        return path


def parse_report(result: RunResult, lines: Sequence[str], root: Path) -> TestReport:
    """A pytest run's report lines (see the plugin) as a ``TestReport``."""
    outcomes: dict[str, str] = {}
    failures: list[Failure] = []
    collect_errors: list[str] = []
    for line in lines:
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue  # the last line of a killed run may be cut
        if "test" in record:
            if outcomes.get(record["test"], "passed") == "passed":
                outcomes[record["test"]] = record["outcome"]
        elif "failure" in record:
            frames = tuple(
                Frame(
                    relative(f["path"], root), int(f["line"]), f["function"], f.get("source", ""), f.get("locals", {})
                )
                for f in record.get("frames", [])
            )
            path = relative(record["path"], root)
            timeout = bool(record.get("timeout"))
            failures.append(
                Failure(
                    record["failure"], path, record.get("line"), record["exc_type"], record["message"], frames, timeout
                )
            )
        elif "collect_error" in record:
            collect_errors.append(f"{record['collect_error']}: {record['message']}")
    if not lines and not result.ok:  # pytest never started (a bad command, a crash at start-up)
        return parse_output(result, root)
    return TestReport(result, outcomes, tuple(failures), tuple(collect_errors), structured=True)


_PY_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_PATH_LINE = re.compile(r"((?:[\w.\-]+/)*[\w.\-]+\.(?:py|js|jsx|ts|tsx|go|rs|java)):(\d+)")
_UNITTEST_FAIL = re.compile(r"^(FAIL|ERROR): (\w+) \(([\w.]+)\)", re.M)


def parse_output(result: RunResult, root: Path) -> TestReport:
    """What can be read from a runner's plain output: unittest's failures, Python tracebacks, and
    ``file:line`` references into the project (Go, Rust, JavaScript)."""
    frames: list[Frame] = []
    for match in _PY_FRAME.finditer(result.output):
        frames.append(Frame(relative(match.group(1), root), int(match.group(2)), match.group(3)))
    if not frames:
        for match in _PATH_LINE.finditer(result.output):
            path = relative(match.group(1), root)
            if (root / path).is_file():
                frames.append(Frame(path, int(match.group(2)), ""))
    outcomes = {f"{m.group(3)}.{m.group(2)}" if not m.group(3).endswith(m.group(2)) else m.group(3): "failed"
                for m in _UNITTEST_FAIL.finditer(result.output)}  # fmt: skip
    failures: tuple[Failure, ...] = ()
    if not result.ok:
        tail = result.output[-3000:]
        exc = re.findall(r"^(\w+(?:Error|Exception)|AssertionError)\b:?\s*(.*)$", result.output, re.M)
        exc_type, message = exc[-1] if exc else ("failure", tail)
        failures = (Failure("(run)", frames[-1].path if frames else "", frames[-1].line if frames else None,
                            exc_type, message if exc else tail, tuple(frames), result.timed_out),)  # fmt: skip
    return TestReport(result, outcomes, failures)


def executed_lines(root: Path, path: str, tests: Sequence[str], limits: Limits) -> tuple[set[int], set[int]] | None:
    """The lines of ``path`` that pytest running ``tests`` (ids or paths) executes, and its statements that it
    does not (coverage.py, under the project's interpreter); None when that run gives no data."""
    with tempfile.TemporaryDirectory(prefix="codespark-coverage-") as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "coverage.json"
        py = shlex.quote(project_python(root))
        targets = " ".join(shlex.quote(t) for t in tests)
        command = (f"{py} -m coverage run --data-file={data} --include={shlex.quote(path)} -m pytest -q "
                   f"-p no:cacheprovider {targets}; {py} -m coverage json --data-file={data} -o {out} -q")  # fmt: skip
        paths = os.pathsep.join(str(p) for p in (root / "src", root) if p.is_dir())
        sandbox.run(command, root, limits, {"PYTHONPATH": paths})
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
    files = report.get("files", {})
    entry = files.get(path) or next((v for k, v in files.items() if k.endswith(path)), None)
    if entry is None:
        return set(), set()
    return set(entry.get("executed_lines", [])), set(entry.get("missing_lines", []))
