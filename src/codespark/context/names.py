"""After generation: names in Python code that do not exist (the monitors' check for whole answers).

A chat answer or a fix candidate is checked the way the SQL validator checks a query: every
import must resolve (in the project or the installed packages), every imported name must be
defined by its module, and ``module.attr`` on an imported module must name something the module
has.  Resolution is Jedi's, as in the decoding-time monitor (context/monitor.py).  Imports
guarded by ``try: ... except ImportError`` are optional by design and are not reported; a module
Jedi cannot read (a C extension without stubs) is given the benefit of the doubt.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Unknown:
    line: int
    name: str
    kind: str  # unknown-import | unknown-attribute
    message: str


def _guarded_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``try`` bodies whose handlers catch ImportError (optional imports)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if not any(n in text for text in caught for n in ("ImportError", "ModuleNotFoundError", "Exception")) and (
            caught or not node.handlers
        ):
            continue
        for stmt in node.body:
            lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def nonexistent(source: str, path: Path | None = None, root: Path | None = None) -> list[Unknown]:
    """Imports, imported names and module attributes in ``source`` that do not exist."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the syntax check reports it
    import jedi  # imported on first use: it loads its typeshed stubs

    script = jedi.Script(source, path=str(path) if path else None, project=jedi.Project(str(root)) if root else None)
    guarded = _guarded_lines(tree)
    found: list[Unknown] = []
    modules: dict[str, str] = {}  # local name -> module, for imports that resolved

    def resolves(line: int, column: int) -> bool:
        try:
            return bool(script.goto(line, column, follow_imports=True))
        except Exception:
            return True

    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and node.lineno not in guarded:
            for alias in node.names:
                last = alias.name.split(".")[-1]
                column = alias.col_offset + alias.name.rfind(last)
                if not resolves(alias.lineno, column):
                    found.append(Unknown(node.lineno, alias.name, "unknown-import",
                                         f"import {alias.name}: no such module"))  # fmt: skip
                elif alias.asname or "." not in alias.name:
                    modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.lineno not in guarded and node.level == 0 and node.module:
            for alias in node.names:
                if alias.name == "*" or resolves(alias.lineno, alias.col_offset):
                    continue
                message = f"from {node.module} import {alias.name}: {node.module} has no {alias.name!r}"
                found.append(Unknown(node.lineno, alias.name, "unknown-import", message))
    rebound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    rebound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in (*n.args, *n.kwonlyargs)}
    for name in rebound:
        modules.pop(name, None)  # ``os = ...`` or a parameter named like the module: not the module any more
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.end_lineno is not None
            and node.end_col_offset is not None
        ) and not resolves(node.end_lineno, node.end_col_offset - len(node.attr)):
            module = modules[node.value.id]
            found.append(Unknown(node.lineno, f"{node.value.id}.{node.attr}", "unknown-attribute",
                                 f"module {module!r} has no attribute {node.attr!r}"))  # fmt: skip
    return sorted(found, key=lambda u: (u.line, u.name))


def in_answer(text: str, root: Path | None = None) -> list[str]:
    """What a chat answer's Python code blocks import or call that does not exist, one message each
    (``block N, line L: ...``).  A block counts as Python when it is fenced as ``python``/``py``, or
    unlabelled and parses as Python; other languages are not checked."""
    found: list[str] = []
    for n, match in enumerate(_FENCE.finditer(text), 1):
        language, code = match.group(1).lower(), match.group(2)
        if language not in ("python", "py", "python3", ""):
            continue
        if not language:
            try:
                ast.parse(code)
            except SyntaxError:
                continue
        found += [f"block {n}, line {u.line}: {u.message}" for u in nonexistent(code, None, root)]
    return found
