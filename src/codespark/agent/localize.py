"""From failing tests to the code to change: the units (functions, methods, classes) ranked by the
failures' traceback frames in the user's code, or, when no frame reaches it (``assert f(x) == y`` fails
in the test), by the names the failing test calls; and the feedback a model needs for one unit.

Frames in tests, in installed packages and in the standard library never become targets.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from codespark.agent.testrun import Failure, Frame, TestReport

_VENDOR_PARTS = {"site-packages", "dist-packages", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".git"}
_TEST_DIRS = {"tests", "test", "testing", "fixtures", "testdata", "test_data", "__tests__", "spec"}


def is_test_path(path: str) -> bool:
    """Tests, fixtures and test data: never edited unless the user allows it."""
    p = Path(path)
    name = p.name
    if _TEST_DIRS.intersection(p.parts[:-1]):
        return True
    return (
        name.startswith("test_")
        or name == "conftest.py"
        or p.stem.endswith(("_test", "_tests", "_unittest", "Test", "Tests"))  # gflags_unittest, FooTests
        or bool(re.search(r"\.(test|spec)\.[jt]sx?$", name))
        or name in ("tests.py", "test.py")
    )


def is_user_code(path: str, root: Path) -> bool:
    """Inside the project, not vendored, not a test."""
    if Path(path).is_absolute() or path.startswith(".."):
        return False
    if _VENDOR_PARTS.intersection(Path(path).parts):
        return False
    return (root / path).is_file() and not is_test_path(path)


@dataclass(frozen=True)
class Unit:
    """A function, method or class: the unit an answer replaces whole."""

    path: str
    name: str  # qualified: ``func``, ``Class``, ``Class.method``
    kind: str  # function | class
    start: int  # 1-based, decorators included
    end: int  # 1-based, inclusive
    def_line: int  # the ``def``/``class`` line

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def units_of(source: str, path: str) -> list[Unit]:
    """Top-level functions and classes, and the methods of top-level classes."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return _units_by_indent(source, path)
    found: list[Unit] = []

    def add(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, prefix: str) -> None:
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        found.append(Unit(path, prefix + node.name, kind, start, node.end_lineno or node.lineno, node.lineno))

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            add(node, "")
        if isinstance(node, ast.ClassDef):
            for child in node.body:
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    add(child, node.name + ".")
    return found


_DEF = re.compile(r"^([ \t]*)(?:async\s+def|def|class)\s+(\w+)")


def _units_by_indent(source: str, path: str) -> list[Unit]:
    """Units of a file that does not parse (a syntax error), found by indentation."""
    lines = source.splitlines()
    found: list[Unit] = []
    classes: list[tuple[int, str]] = []  # (indent, name) of top-level classes seen
    for i, line in enumerate(lines):
        match = _DEF.match(line)
        if match is None:
            continue
        indent = len(match.group(1).expandtabs())
        if indent > 4:
            continue
        end = i
        for j in range(i + 1, len(lines)):
            text = lines[j]
            if text.strip() and len(text) - len(text.lstrip()) <= indent and not text.lstrip().startswith(("#", ")")):
                break
            if text.strip():
                end = j
        name = match.group(2)
        if indent == 0:
            classes = [(0, name)] if line.lstrip().startswith("class") else []
        elif classes:
            name = f"{classes[-1][1]}.{name}"
        else:
            continue
        kind = "class" if line.lstrip().startswith("class") else "function"
        found.append(Unit(path, name, kind, i + 1, end + 1, i + 1))
    return found


def enclosing(units: Iterable[Unit], line: int) -> Unit | None:
    """The innermost unit holding ``line``."""
    holding = [u for u in units if u.start <= line <= u.end]
    return min(holding, key=lambda u: u.end - u.start) if holding else None


@dataclass
class Target:
    unit: Unit
    score: float
    why: list[str] = field(default_factory=list)


class Project:
    """The project's Python sources, parsed on demand (the files change between rounds: call ``forget``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._units: dict[str, list[Unit]] = {}
        self._by_name: dict[str, list[Unit]] | None = None
        self._files: list[str] | None = None

    def forget(self, path: str | None = None) -> None:
        if path is None:
            self._units.clear()
        else:
            self._units.pop(path, None)
        self._by_name = None
        self._files = None

    def text(self, path: str) -> str:
        return (self.root / path).read_text(encoding="utf-8", errors="replace")

    def units(self, path: str) -> list[Unit]:
        if path not in self._units:
            self._units[path] = units_of(self.text(path), path) if path.endswith(".py") else []
        return self._units[path]

    def python_files(self, limit: int = 3000) -> list[str]:
        """The project's Python files (tests included), vendored folders left out."""
        if self._files is None:
            files: list[str] = []
            for path in sorted(self.root.rglob("*.py")):
                rel = path.relative_to(self.root)
                if not _VENDOR_PARTS.intersection(rel.parts) and path.is_file():
                    files.append(str(rel))
                if len(files) >= limit:
                    break
            self._files = files
        return self._files

    def user_files(self) -> list[str]:
        return [f for f in self.python_files() if not is_test_path(f)]

    def by_name(self) -> dict[str, list[Unit]]:
        """Units of user code by their short name (``method`` finds ``Class.method``)."""
        if self._by_name is None:
            table: dict[str, list[Unit]] = defaultdict(list)
            for path in self.user_files():
                for unit in self.units(path):
                    table[unit.short].append(unit)
            self._by_name = dict(table)
        return self._by_name

    def source(self, unit: Unit) -> str:
        lines = self.text(unit.path).splitlines(keepends=True)
        return "".join(lines[unit.start - 1 : unit.end])


def called_names(node: ast.AST) -> list[str]:
    """Names called in ``node``: ``f(...)`` and ``x.f(...)`` give ``f``, in source order."""
    names: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                names.append(func.id)
            elif isinstance(func, ast.Attribute):
                names.append(func.attr)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            names.append(sub.id)  # a function passed as a value (``check(candidate=f)``)
        elif isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Load):
            names.append(sub.attr)  # ``module.func`` passed as a value
    return names


def _test_node(project: Project, failure: Failure) -> ast.AST | None:
    """The failing test's function, parsed."""
    if not failure.path.endswith(".py") or failure.line is None or not (project.root / failure.path).is_file():
        return None
    unit = enclosing(units_of(project.text(failure.path), failure.path), failure.line)
    if unit is None:
        return None
    try:
        return ast.parse(_dedent_block(project.source(unit)))
    except SyntaxError:
        return None


def _helper_nodes(project: Project, failure: Failure) -> list[ast.AST]:
    """The test-file functions the failure's traceback passes through, other than the test itself."""
    nodes: list[ast.AST] = []
    seen: set[Unit] = set()
    for frame in failure.frames:
        if frame.path != failure.path or frame.line is None or not (project.root / frame.path).is_file():
            continue
        unit = enclosing(units_of(project.text(frame.path), frame.path), frame.line)
        if unit is None or unit in seen or unit.kind == "class" or unit.start <= (failure.line or 0) <= unit.end:
            continue
        seen.add(unit)
        try:
            nodes.append(ast.parse(_dedent_block(project.source(unit))))
        except SyntaxError:
            continue
    return nodes


def _dedent_block(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)


def localize(report: TestReport, project: Project, allow_test_edits: bool = False) -> list[Target]:
    """Units to change, best first."""
    scores: dict[Unit, Target] = {}

    def credit(unit: Unit, points: float, why: str) -> None:
        target = scores.setdefault(unit, Target(unit, 0.0))
        target.score += points
        if why not in target.why:
            target.why.append(why)

    def editable(path: str) -> bool:
        if allow_test_edits:
            return (project.root / path).is_file() and not _VENDOR_PARTS.intersection(Path(path).parts)
        return is_user_code(path, project.root)

    for failure in report.failures:
        frames = [f for f in failure.frames if f.path.endswith(".py") and editable(f.path)]
        for depth, frame in enumerate(reversed(frames)):  # innermost first
            unit = enclosing(project.units(frame.path), frame.line)
            if unit is not None:
                credit(unit, 3.0 / (1 + depth), f"in the traceback of {failure.test} ({frame.path}:{frame.line})")
        if frames:
            continue
        test = _test_node(project, failure)
        if test is None:
            continue
        # The assertion may sit in a helper of the test file (``self._check(...)``): what the helpers the
        # traceback passes through call counts too, and what the failing line itself calls counts most.
        failing_line = next((f.source for f in reversed(failure.frames) if f.path == failure.path), "")
        try:
            in_line = set(called_names(ast.parse(failing_line.strip()))) if failing_line else set()
        except SyntaxError:
            in_line = set()
        called = called_names(test) + [n for helper in _helper_nodes(project, failure) for n in called_names(helper)]
        table = project.by_name()
        for name in dict.fromkeys([*called, *in_line]):
            for unit in table.get(name, []):
                if allow_test_edits or not is_test_path(unit.path):
                    credit(unit, 3.0 if name in in_line else 1.0, f"called by the failing test {failure.test}")
    for error in report.collect_errors:
        for path, line in error_places(project, error):
            if editable(path):
                unit = enclosing(project.units(path), line)
                if unit is not None:
                    credit(unit, 3.0, f"a collection error points here ({path}:{line})")
    return sorted(scores.values(), key=lambda t: -t.score)


def error_places(project: Project, error: str) -> list[tuple[str, int]]:
    """The project's files and lines a collection error names: traceback lines ("pkg/mod.py:12: in
    <module>") and a SyntaxError's ('File "/abs/pkg/mod.py", line 3')."""
    found = re.findall(r"([\w./\-]+\.py):(\d+)", error) + re.findall(r'File "([^"]+\.py)", line (\d+)', error)
    places = [(_relative(project, where), int(line)) for where, line in found]
    return [(path, line) for path, line in places if path is not None]


def blames(report: TestReport, project: Project, unit: Unit) -> bool:
    """Whether one of the report's collection errors points into ``unit``."""
    return any(path == unit.path and unit.start <= line <= unit.end
               for error in report.collect_errors for path, line in error_places(project, error))  # fmt: skip


def focus_line(report: TestReport, project: Project, unit: Unit) -> int | None:
    """The line of ``unit`` the failures point at most often (traceback frames, collection errors)."""
    lines: list[int] = []
    for failure in report.failures:
        frame = _user_frame(failure, unit)
        if frame is not None:
            lines.append(frame.line)
    for error in report.collect_errors:
        lines += [
            line for path, line in error_places(project, error) if path == unit.path and unit.start <= line <= unit.end
        ]
    return max(set(lines), key=lines.count) if lines else None


def _relative(project: Project, path: str) -> str | None:
    """``path`` relative to the project (None for an absolute path outside it)."""
    if not path.startswith("/"):
        return path
    try:
        return Path(path).resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return None


def _user_frame(failure: Failure, unit: Unit) -> Frame | None:
    for frame in reversed(failure.frames):
        if frame.path == unit.path and unit.start <= frame.line <= unit.end:
            return frame
    return None


def feedback(report: TestReport, project: Project, unit: Unit, max_failures: int = 3) -> str:
    """What failed, for a model about to rewrite ``unit``: the tests' source, the error with actual and
    expected values, where it was raised and the locals there."""
    relevant = sorted(report.failures, key=lambda f: _user_frame(f, unit) is None)
    blocks: list[str] = []
    seen_messages: set[str] = set()
    for failure in relevant:
        if len(blocks) >= max_failures:
            break
        message = failure.message.strip()
        if message in seen_messages:
            continue
        seen_messages.add(message)
        lines = [f"Test {failure.test} failed."]
        test_source = _test_source(project, failure)
        if test_source:
            lines.append(f"Its code:\n```python\n{test_source}```")
        if failure.timeout:
            lines.append("It ran too long and was stopped: an endless loop, or far too slow.")
        else:
            lines.append(f"Error: {failure.exc_type}: {_clip(message, 1500)}")
        frame = _user_frame(failure, unit)
        if frame is not None:
            lines.append(f"Raised in {unit.name} at line {frame.line - unit.start + 1} of it: `{frame.source}`")
            shown = [f"{k} = {v}" for k, v in frame.locals.items() if k != "self"][:8]
            if shown:
                lines.append("Local variables there: " + ", ".join(shown))
        blocks.append("\n".join(lines))
    rest = len(report.failed) - len(blocks)
    if rest > 0:
        blocks.append(f"({rest} more failing tests not shown.)")
    shown_errors: dict[str, int] = {}  # an error's text without its test module -> test modules failing so
    for error in report.collect_errors:
        shown_errors[_import_trace(error)] = shown_errors.get(_import_trace(error), 0) + 1
    for trace, count in list(shown_errors.items())[:2]:
        also = f" ({count} test modules fail this way)" if count > 1 else ""
        places = error_places(project, trace)
        here = [line for path, line in places if path == unit.path and unit.start <= line <= unit.end]
        where = ""
        if here:
            source = project.text(unit.path).splitlines()[here[-1] - 1].strip()
            where = f"\nRaised in {unit.name} at line {here[-1] - unit.start + 1} of it: `{source}`"
        blocks.append(f"Collecting the tests failed{also}:\n{trace}{where}")
    if not blocks and report.run.output:
        blocks.append("The test run's output ends with:\n" + report.run.output[-2000:])
    return "\n\n".join(blocks)


def _import_trace(error: str, limit: int = 1500) -> str:
    """A collection error for the prompt: from the test module's own import line on (so that test modules
    failing the same way read the same), without the import machinery's frames (``<frozen importlib…>``,
    ``???``), and its end kept when cut, since the exception is at the end."""
    module, _, text = error.partition(": ") if error.split(": ", 1)[0].endswith(".py") else ("", "", error)
    noise = ("<frozen importlib", "importlib/__init__.py", "_bootstrap._gcd_import")
    lines = [line for line in text.splitlines() if line.strip() != "???" and not any(n in line for n in noise)]
    own = [i for i, line in enumerate(lines) if module and line.startswith(f"{module}:")]
    if own and own[-1] + 2 < len(lines):
        lines = lines[own[-1] + 2 :]  # after the test module's frame and its source line
    kept = "\n".join(lines).strip()
    return kept if len(kept) <= limit else "[...]\n" + kept[-limit:]


def _test_source(project: Project, failure: Failure, max_lines: int = 30) -> str:
    if not failure.path.endswith(".py") or failure.line is None or not (project.root / failure.path).is_file():
        return ""
    unit = enclosing(units_of(project.text(failure.path), failure.path), failure.line)
    if unit is None or unit.kind == "class":
        return ""
    lines = project.source(unit).splitlines(keepends=True)
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], "    ...\n"]
    return _dedent_block("".join(lines))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + "\n[... clipped ...]"


def used_definitions(project: Project, unit: Unit, limit: int = 8) -> list[str]:
    """Signatures (and first docstring lines) of the user's functions that ``unit`` calls."""
    try:
        tree = ast.parse(_dedent_block(project.source(unit)))
    except SyntaxError:
        return []
    table = project.by_name()
    out: list[str] = []
    for name in dict.fromkeys(called_names(tree)):
        for other in table.get(name, [])[:2]:
            if other == unit or other.kind != "function":
                continue
            out.append(f"# {other.path}\n{_signature(project, other)}")
            if len(out) >= limit:
                return out
    return out


@cache
def _first_doc_line(doc: str) -> str:
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _signature(project: Project, unit: Unit) -> str:
    source = project.source(unit)
    lines = source.splitlines()
    head_end = next((i for i, line in enumerate(lines) if line.rstrip().endswith(":")), 0)
    head = " ".join(line.strip() for line in lines[: head_end + 1])
    try:
        node = ast.parse(_dedent_block(source)).body[0]
        doc = ast.get_docstring(node) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None
    except (SyntaxError, IndexError):
        doc = None
    first = _first_doc_line(doc or "")
    return head + (f'\n    """{first}"""' if first else "") + "\n    ..."


def dependents(project: Project, unit: Unit, files: Sequence[str] | None = None) -> list[str]:
    """Files (other than the unit's own lines) that use the unit's name: its callers."""
    name = unit.short
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    users: list[str] = []
    for path in files if files is not None else project.python_files():
        text = project.text(path)
        if path == unit.path:
            lines = text.splitlines()
            text = "\n".join(lines[: unit.start - 1] + lines[unit.end :])
        if pattern.search(text):
            users.append(path)
    return users
