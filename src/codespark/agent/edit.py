"""Whole-unit edits: the model answers with one complete function, method or class, which replaces the
unit in the file.  Small models get whole units right far more often than diffs.

The parse is forgiving (fences or none, any indentation, the method alone or inside its class), the
checks are not: an edit must compile, keep the signature when anything calls the unit, and never touch a
test unless the user allows it.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from codespark.agent.localize import Project, Unit, dependents, is_test_path

_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)


class RefusedEdit(Exception):
    """An answer that cannot be applied; the message says why (it is fed back to the model)."""


class UnchangedEdit(RefusedEdit):
    """An answer that is the unit as it already was."""


@dataclass(frozen=True)
class Edit:
    path: str
    before: str  # the whole file, before and after
    after: str
    unit: str  # the unit replaced


def code_blocks(answer: str) -> list[str]:
    """The fenced code blocks of an answer; the whole answer when it has none."""
    blocks = [b for b in _FENCE.findall(answer) if b.strip()]
    return blocks or [answer]


def _find(tree: ast.Module, unit: Unit) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None:
    names = unit.name.split(".")
    nodes: list[ast.stmt] = list(tree.body)
    if len(names) == 2:  # a method: inside its class, or given alone
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == names[0]:
                nodes = list(node.body) + nodes
    for node in nodes:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == names[-1]:
            return node
    return None


def _parse(answer: str, unit: Unit) -> tuple[ast.Module, str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    problems: list[str] = []
    for block in code_blocks(answer):
        code = textwrap.dedent(block).strip("\n") + "\n"
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            problems.append(f"it does not parse (line {exc.lineno}: {exc.msg})")
            continue
        node = _find(tree, unit)
        if node is not None:
            return tree, code, node
        problems.append(f"it has no {unit.kind} named {unit.short}")
    raise RefusedEdit("The answer cannot be used: " + "; ".join(dict.fromkeys(problems)) + ".")


def _signature(node: ast.AST) -> str:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return ""
    a = node.args
    parts = [
        [p.arg for p in a.posonlyargs],
        [p.arg for p in a.args],
        a.vararg.arg if a.vararg else None,
        [p.arg for p in a.kwonlyargs],
        a.kwarg.arg if a.kwarg else None,
        len(a.defaults),
        [d is not None for d in a.kw_defaults],
    ]
    return repr(parts)


def _lines(code: str, node: ast.AST) -> list[str]:
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    body = code.splitlines(keepends=True)[start - 1 : node.end_lineno]
    return textwrap.dedent("".join(body)).splitlines(keepends=True)


def _indent(lines: list[str], prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in lines)


def replace_unit(project: Project, unit: Unit, answer: str, allow_test_edits: bool = False) -> Edit:
    """The file with ``unit`` replaced by the answer's version of it (plus new imports and helpers)."""
    if is_test_path(unit.path) and not allow_test_edits:
        raise RefusedEdit(f"{unit.path} is a test file; tests are never edited (unless --allow-test-edits).")
    tree, code, node = _parse(answer, unit)
    before = project.text(unit.path)
    try:
        old_tree = ast.parse(before)
    except SyntaxError:  # the file is broken (the fix's reason): no old definition to compare with
        old_tree = ast.Module(body=[], type_ignores=[])
    old_node = _find(old_tree, unit)
    if old_node is not None and isinstance(node, ast.ClassDef) != isinstance(old_node, ast.ClassDef):
        raise RefusedEdit(f"The answer replaces the {unit.kind} {unit.name} with a different kind of definition.")
    if old_node is not None and _signature(node) != _signature(old_node):
        users = dependents(project, unit)
        if users:
            raise RefusedEdit(
                f"The answer changes the parameters of {unit.name}, which {', '.join(users[:3])} uses; "
                "keep the signature."
            )
    if node.name.startswith("test") and is_test_path(unit.path) and not allow_test_edits:
        raise RefusedEdit("The answer rewrites a test.")
    lines = before.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    def_line = lines[unit.def_line - 1]
    prefix = def_line[: len(def_line) - len(def_line.lstrip())]
    new_unit = _indent(_lines(code, node), prefix)
    helpers = _helpers(tree, code, node, old_tree, unit)
    replaced = [*lines[: unit.start - 1], *helpers, new_unit, *lines[unit.end :]]
    after = _add_imports("".join(replaced), tree, old_tree)
    if after == before:
        raise UnchangedEdit(f"The answer leaves {unit.name} unchanged.")
    try:
        compile(after, unit.path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise RefusedEdit(f"With the answer, {unit.path} does not compile (line {exc.lineno}: {exc.msg}).") from exc
    return Edit(unit.path, before, after, unit.name)


def _helpers(tree: ast.Module, code: str, node: ast.AST, old_tree: ast.Module, unit: Unit) -> list[str]:
    """New top-level functions the answer defines beside the unit (only for a top-level unit)."""
    if "." in unit.name:
        return []
    existing = {n.name for n in old_tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    out: list[str] = []
    for other in tree.body:
        if other is node or not isinstance(other, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if other.name in existing or other.name.startswith("test"):
            continue
        out.append("".join(_lines(code, other)) + "\n\n")
    return out


def _add_imports(text: str, tree: ast.Module, old_tree: ast.Module) -> str:
    """The answer's top-level imports that the file lacks, added after the file's own imports."""
    have = {ast.unparse(n) for n in old_tree.body if isinstance(n, ast.Import | ast.ImportFrom)}
    new = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    new = [n for n in dict.fromkeys(new) if n not in have and not n.startswith("from __future__")]
    return insert_imports(text, new, old_tree)


def insert_imports(text: str, statements: list[str], tree: ast.Module | None = None) -> str:
    """``text`` with the import ``statements`` added after its own imports."""
    if not statements:
        return text
    lines = text.splitlines(keepends=True)
    at = _import_line(tree if tree is not None else ast.parse(text))
    return "".join([*lines[:at], *(n + "\n" for n in statements), *lines[at:]])


def _import_line(tree: ast.Module) -> int:
    """Where new imports go: after the last top-level import, else after the docstring."""
    at = 0
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom) or (
            i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            at = node.end_lineno or node.lineno
        elif not isinstance(node, ast.Import | ast.ImportFrom):
            break
    return at
