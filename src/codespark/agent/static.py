"""Cheap fixes first: compile errors and undefined names, found statically (pyflakes) before any test
run is spent on them, and names that do not exist (an import that resolves to nothing, ``json.loadz``:
context/names.py, Jedi).  An undefined name that is a standard-library module, a ``typing`` name or a
definition in exactly one other module of the project gets its import added deterministically; the rest
go to the model with the exact message.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyflakes import api, messages
from pyflakes import reporter as flakes_reporter

from codespark.agent.edit import Edit, insert_imports
from codespark.agent.localize import Project
from codespark.context.names import nonexistent

_TYPING = {"Any", "Callable", "Dict", "FrozenSet", "Iterable", "Iterator", "List", "Mapping", "Optional",
           "Sequence", "Set", "Tuple", "Type", "Union", "Generator", "DefaultDict", "Deque", "Counter",
           "NamedTuple", "TypeVar", "Generic", "Literal", "cast"}  # fmt: skip
_FROM_MODULE = {"defaultdict": "collections", "deque": "collections", "Counter": "collections",
                "OrderedDict": "collections", "namedtuple": "collections", "reduce": "functools",
                "lru_cache": "functools", "partial": "functools", "dataclass": "dataclasses",
                "field": "dataclasses", "Path": "pathlib", "datetime": "datetime", "Decimal": "decimal",
                "Fraction": "fractions", "Enum": "enum", "sqrt": "math", "floor": "math", "ceil": "math",
                "gcd": "math", "inf": "math", "permutations": "itertools", "combinations": "itertools",
                "product": "itertools", "chain": "itertools", "heappush": "heapq", "heappop": "heapq",
                "bisect_left": "bisect", "bisect_right": "bisect", "insort": "bisect"}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    kind: str  # syntax | undefined-name | unknown-import | unknown-attribute
    message: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class _Collect(flakes_reporter.Reporter):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.found: list[Problem] = []

    def _rel(self, filename: str) -> str:
        try:
            return str(Path(filename).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return filename

    def unexpectedError(self, filename: str, msg: str) -> None:
        self.found.append(Problem(self._rel(filename), 1, "syntax", str(msg)))

    def syntaxError(self, filename: str, msg: str, lineno: int, offset: int | None, text: str | None) -> None:
        self.found.append(Problem(self._rel(filename), int(lineno or 1), "syntax", f"syntax error: {msg}"))

    def flake(self, message: messages.Message) -> None:
        if isinstance(message, messages.UndefinedName):
            name = str(message.message_args[0])
            self.found.append(Problem(self._rel(message.filename), message.lineno, "undefined-name",
                                      f"undefined name {name!r}", name))  # fmt: skip


NAME_KINDS = ("undefined-name", "unknown-import", "unknown-attribute")  # a name the code uses that does not exist


def problems(project: Project, paths: Iterable[str], names: bool = True) -> list[Problem]:
    """Syntax errors, undefined names and (``names``) nonexistent imports and module attributes in ``paths``
    (relative to the project's root)."""
    collect = _Collect(project.root)
    for path in paths:
        full = project.root / path
        if path.endswith(".py") and full.is_file():
            api.checkPath(str(full), collect)
            if names:
                text = full.read_text(encoding="utf-8", errors="replace")
                collect.found += [Problem(path, u.line, u.kind, u.message, u.name)
                                  for u in nonexistent(text, full, project.root)]  # fmt: skip
    return collect.found


def _module_of(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_for(project: Project, problem: Problem) -> str | None:
    """The import statement that defines an undefined name, when there is exactly one sure answer."""
    name = problem.name
    if not name:
        return None
    if name in _TYPING:
        return f"from typing import {name}"
    if name in _FROM_MODULE:
        return f"from {_FROM_MODULE[name]} import {name}"
    if name in sys.stdlib_module_names and not name.startswith("_"):
        return f"import {name}"
    owners = {u.path for u in project.by_name().get(name, []) if "." not in u.name and u.path != problem.path}
    if len(owners) == 1:
        module = _module_of(owners.pop())
        if module and all(part.isidentifier() for part in module.split(".")):
            return f"from {module} import {name}"
    return None


def deterministic_fixes(project: Project, found: list[Problem]) -> list[Edit]:
    """One edit per file: the imports for its undefined names that have a sure answer."""
    by_path: dict[str, list[str]] = {}
    for problem in found:
        if problem.kind != "undefined-name":
            continue
        statement = import_for(project, problem)
        if statement is not None and statement not in by_path.setdefault(problem.path, []):
            by_path[problem.path].append(statement)
    edits: list[Edit] = []
    for path, statements in by_path.items():
        before = project.text(path)
        after = insert_imports(before, statements)
        edits.append(Edit(path, before, after, "imports"))
    return edits
