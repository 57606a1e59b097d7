"""Seeded faults in real code nobody here wrote: functions of installed pure-Python modules that carry
their own doctests.  Each bug is one mutation of one function (off-by-one, comparison, operator, swapped
arguments, wrong variable, missing return, wrong constant), kept only when it makes the doctest fail.

A project per bug: the module's file (copied whole; the mutated function spliced in) and a pytest file
that runs that function's doctests.
"""

from __future__ import annotations

import ast
import copy
import doctest
import importlib
import inspect
import itertools
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from codespark.agent import sandbox
from codespark.agent.sandbox import Limits

# (module, file name in the project).  Pure Python, stdlib or installed, with doctests of their own.
MODULES = (
    ("statistics", "stats_mod.py"),
    ("difflib", "difflib_mod.py"),
    ("collections", "collections_mod.py"),
    ("fractions", "fractions_mod.py"),
    ("textwrap", "textwrap_mod.py"),
    ("heapq", "heapq_mod.py"),
)
KINDS = ("off-by-one", "comparison", "operator", "swapped-args", "wrong-variable", "missing-return", "constant")

TEST_FILE = "test_doctests.py"


@dataclass(frozen=True)
class Bug:
    bug_id: str
    module: str
    file: str
    function: str  # qualified name in the module
    kind: str
    original: str  # the module file before the fault
    faulty: str  # after


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef]]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for child in node.body:
                if isinstance(child, ast.FunctionDef):
                    yield f"{node.name}.{child.name}", child


class _Mutate(ast.NodeTransformer):
    """Applies mutation ``kind`` at its ``site``-th chance inside one function."""

    def __init__(self, kind: str, site: int, local_names: list[str]) -> None:
        self.kind, self.site, self.seen, self.done = kind, site, 0, False
        self.local_names = local_names

    def _hit(self) -> bool:
        if self.done:
            return False
        self.seen += 1
        if self.seen - 1 == self.site:
            self.done = True
            return True
        return False

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        swap = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq}  # fmt: skip
        if self.kind == "comparison" and type(node.ops[0]) in swap and self._hit():
            node.ops[0] = swap[type(node.ops[0])]()
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        swap = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Div, ast.Div: ast.Mult,
                ast.Mod: ast.FloorDiv}  # fmt: skip
        if self.kind == "operator" and type(node.op) in swap and self._hit():
            node.op = swap[type(node.op)]()
        elif self.kind == "off-by-one" and isinstance(node.op, ast.Add | ast.Sub) and self._hit():
            return ast.BinOp(node, ast.Add(), ast.Constant(1))
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if self.kind == "swapped-args" and len(node.args) >= 2 and not any(
            isinstance(a, ast.Starred) for a in node.args[:2]
        ) and ast.dump(node.args[0]) != ast.dump(node.args[1]) and self._hit():  # fmt: skip
            node.args[0], node.args[1] = node.args[1], node.args[0]
        elif (
            self.kind == "off-by-one"
            and isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and node.args
            and self._hit()
        ):
            stop = -1 if len(node.args) <= 2 else 1
            node.args[stop] = ast.BinOp(node.args[stop], ast.Sub(), ast.Constant(1))
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        index = node.slice
        if (
            self.kind == "off-by-one"
            and isinstance(index, ast.Constant)
            and isinstance(index.value, int)
            and self._hit()
        ):
            node.slice = ast.Constant(index.value + 1)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if self.kind == "wrong-variable" and isinstance(node.ctx, ast.Load) and node.id in self.local_names:
            others = [n for n in self.local_names if n != node.id]
            if others and self._hit():
                return ast.Name(others[self.site % len(others)], ast.Load())
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if self.kind == "missing-return" and node.value is not None and self._hit():
            return ast.Expr(node.value)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return node
        if self.kind == "constant" and value not in (0, 1) and self._hit():
            return ast.Constant(value * 2 if isinstance(value, float) else value + 1)
        return node


def _locals(fn: ast.FunctionDef) -> list[str]:
    names = [a.arg for a in fn.args.args + fn.args.kwonlyargs if a.arg not in ("self", "cls")]
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
    return sorted(set(names))


def _splice(source: str, fn: ast.FunctionDef, new_fn: ast.FunctionDef) -> str:
    lines = source.splitlines(keepends=True)
    start = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
    indent = lines[fn.lineno - 1][: len(lines[fn.lineno - 1]) - len(lines[fn.lineno - 1].lstrip())]
    body = "".join(indent + line + "\n" if line else "\n" for line in ast.unparse(new_fn).splitlines())
    return "".join([*lines[: start - 1], body, *lines[fn.end_lineno or fn.lineno :]])


def test_file(module_file: str, function: str) -> str:
    """A pytest file that runs one function's doctests and fails with doctest's own report."""
    module = module_file.removesuffix(".py")
    return f'''import doctest
import io

import {module}


def _doctests(obj, name):
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(recurse=False).find(obj, name, globs=dict(vars({module}))):
        runner.run(test, out=out.write)
    return runner.summarize(verbose=False), out.getvalue()


def test_{function.replace(".", "_")}():
    obj = {module}.{function}
    (failed, attempted), report = _doctests(obj, "{function}")
    assert attempted > 0
    assert failed == 0, report
'''


def _doctested(module: object) -> list[str]:
    names = []
    for test in doctest.DocTestFinder().find(module):
        if test.examples:
            parts = test.name.split(".")[1:]
            if 1 <= len(parts) <= 2:
                names.append(".".join(parts))
    return names


def seed_bugs(
    check: Callable[[Bug], bool], limit: int, seed: int = 0, sites: int = 3, per_function: int = 3
) -> list[Bug]:
    """Bugs for the modules, up to ``limit``, at most ``per_function`` (of different kinds) per function.
    ``check(bug) -> bool`` says whether the bug's doctest fails (and the original's passes): only those
    are kept."""
    per_module: list[list[Bug]] = []
    rng = random.Random(seed)
    for module_name, file in MODULES:
        bugs: list[Bug] = []
        per_module.append(bugs)
        module = importlib.import_module(module_name)
        source = inspect.getsource(module)
        tree = ast.parse(source)
        functions = dict(_functions(tree))
        for name in _doctested(module):
            fn = functions.get(name)
            if fn is None:
                continue
            kinds = list(KINDS)
            rng.shuffle(kinds)
            kept = 0
            for kind in kinds:
                if kept >= per_function or len(bugs) >= limit:  # no module needs more than ``limit``
                    break
                for site in range(sites):
                    mutated = copy.deepcopy(fn)
                    mutator = _Mutate(kind, site, _locals(fn))
                    mutated = mutator.visit(mutated)
                    if not mutator.done:
                        break
                    ast.fix_missing_locations(mutated)
                    original = _splice(source, fn, fn)  # the same layout as the faulty file, fault aside
                    faulty = _splice(source, fn, mutated)
                    if faulty == original:
                        continue
                    bug = Bug(f"{module_name}.{name}:{kind}:{site}", module_name, file, name, kind, original, faulty)
                    if check(bug):
                        bugs.append(bug)
                        kept += 1
                        break
    interleaved = [bug for row in itertools.zip_longest(*per_module) for bug in row if bug is not None]
    return interleaved[:limit]  # every module represented, not the first ones only


def write_project(bug: Bug, folder: Path, faulty: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / bug.file).write_text(bug.faulty if faulty else bug.original)
    (folder / TEST_FILE).write_text(test_file(bug.file, bug.function))


def doctest_passes(bug: Bug, folder: Path, faulty: bool) -> bool:
    """Whether the bug's doctest passes (run directly, without pytest: fast enough for seeding)."""
    write_project(bug, folder, faulty)
    code = f"import test_doctests as t; t.test_{bug.function.replace('.', '_')}()"
    return sandbox.run(f"{sys.executable} -c '{code}'", folder, Limits(timeout_s=10)).ok


class FaultChecker:
    """``seed_bugs``' check: the original passes its doctest (asked once per function), the faulty fails."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.original: dict[str, bool] = {}

    def __call__(self, bug: Bug) -> bool:
        key = f"{bug.module}.{bug.function}"
        where = self.folder / bug.bug_id.replace(":", "_")
        if key not in self.original:
            self.original[key] = doctest_passes(bug, where / "original", False)
        return self.original[key] and not doctest_passes(bug, where / "faulty", True)
