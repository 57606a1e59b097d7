"""Python 2 semantics the classic fixers leave alone, rewritten where the meaning is certain (LibCST).

- A class ordered by ``__cmp__`` (ignored by Python 3) gets the rich comparisons, each defined through its
  ``__cmp__``; its hash stays what it was (Python 3 drops ``__hash__`` from a class that defines ``__eq__``).
- ``sorted(x, cmp=f)``, ``x.sort(cmp=f)`` and ``x.sort(f)`` become ``key=functools.cmp_to_key(f)``.
- The ``cmp`` builtin (gone) gets a module-level definition with Python 2's result for ordered values.

What needs judgement (bytes vs str, integer division) is not here: the tests and the model decide it.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst
import libcst.matchers as m

_RICH = (("__eq__", "=="), ("__ne__", "!="), ("__lt__", "<"), ("__le__", "<="), ("__gt__", ">"), ("__ge__", ">="))
_CMP_HELPER = "def cmp(a, b):\n    return (a > b) - (a < b)\n"


def _defines(body: cst.BaseSuite, name: str) -> bool:
    if not isinstance(body, cst.IndentedBlock):
        return False
    for stmt in body.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
            return True
        if m.matches(stmt, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name(name))])])):
            return True
    return False


class _Semantics(cst.CSTTransformer):
    def __init__(self) -> None:
        self.changed = 0
        self.needs_functools = False
        self.uses_cmp = False
        self.defines_cmp = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value == "cmp":
            self.defines_cmp = True

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        bound = node.asname.name if node.asname is not None else node.name
        if isinstance(bound, cst.Name) and bound.value == "cmp":
            self.defines_cmp = True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        body = updated.body
        if not _defines(body, "__cmp__") or any(_defines(body, name) for name, _ in _RICH):
            return updated
        assert isinstance(body, cst.IndentedBlock)
        methods = "".join(f"def {name}(self, other):\n    return self.__cmp__(other) {op} 0\n" for name, op in _RICH)
        if not _defines(body, "__hash__"):  # Python 2 kept the inherited hash; Python 3 would drop it
            methods += "def __hash__(self):\n    return super().__hash__()\n"
        blank = [cst.EmptyLine(indent=False)]  # a blank line before each, without trailing spaces
        added = [stmt.with_changes(leading_lines=blank) for stmt in cst.parse_module(methods).body
                 if isinstance(stmt, cst.FunctionDef)]  # fmt: skip
        self.changed += 1
        return updated.with_changes(body=body.with_changes(body=[*body.body, *added]))

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        func = updated.func
        if isinstance(func, cst.Name) and func.value == "cmp":
            self.uses_cmp = True
        is_sorted = isinstance(func, cst.Name) and func.value == "sorted"
        is_sort = isinstance(func, cst.Attribute) and func.attr.value == "sort"
        if not (is_sorted or is_sort):
            return updated
        args = list(updated.args)
        for i, arg in enumerate(args):
            by_name = arg.keyword is not None and arg.keyword.value == "cmp"
            by_place = is_sort and i == 0 and arg.keyword is None and arg.star == "" and len(args) <= 2
            if by_name or by_place:
                key = cst.parse_expression("functools.cmp_to_key(_)")
                assert isinstance(key, cst.Call)
                key = key.with_changes(args=[cst.Arg(arg.value)])
                tight = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
                args[i] = arg.with_changes(keyword=cst.Name("key"), value=key, equal=tight)
                self.changed += 1
                self.needs_functools = True
        return updated.with_changes(args=args)


def _after_imports(body: Sequence[cst.BaseStatement]) -> int:
    """Where module-level code may go: after the docstring and the leading imports."""
    index = 0
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            isinstance(s, cst.Import | cst.ImportFrom) or (i == 0 and m.matches(s, m.Expr(m.SimpleString())))
            for s in stmt.body
        ):
            index = i + 1
        else:
            break
    return index


def rewrite(text: str) -> tuple[str, int]:
    """``text`` with the rewrites above, and how many there were (the text unchanged when it does not parse)."""
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError:
        return text, 0
    semantics = _Semantics()
    new = module.visit(semantics)
    changed = semantics.changed
    extra: list[str] = []
    if semantics.needs_functools and "import functools" not in text:
        extra.append("import functools\n")
    if semantics.uses_cmp and not semantics.defines_cmp:
        extra.append("\n\n" + _CMP_HELPER + "\n\n")
        changed += 1
    if extra:
        body = list(new.body)
        at = _after_imports(body)
        added = list(cst.parse_module("".join(extra)).body)
        new = new.with_changes(body=[*body[:at], *added, *body[at:]])
    return (new.code, changed) if changed else (text, 0)
