"""Single-token repairs, tried before the model: the slips people make most (a comparison one step off, the
other arithmetic, bitwise or boolean operator, a condition negated, ``min`` for ``max``, a number or a bound
off by one, a flag flipped, two arguments or operands swapped, another variable of the same function, a
value computed and not returned), each one edit of the suspected unit.

They are enumerated nearest the failing line first and checked by the tests like any candidate: the
failing tests first, then the whole suite, and only a change that turns the suite green is kept.  No model
runs, so a slip costs a few test runs instead of a few hundred decoded tokens; what no single edit fixes
goes to the model.  Edits are made on the source text at the syntax tree's positions, so the rest of the
file keeps its formatting, and each mutant must compile.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from codespark.agent.localize import Unit

_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
            ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}  # fmt: skip
_COMPARE_ALTERNATIVES = {"<": ("<=", ">"), "<=": ("<", ">="), ">": (">=", "<"), ">=": (">", "<="),
                         "==": ("!=",), "!=": ("==",), "is": ("is not",), "is not": ("is",),
                         "in": ("not in",), "not in": ("in",)}  # fmt: skip
# Binary operators, by family: a slip stays in its family (``^`` for ``&``, ``*`` for ``**``, ``>>`` for ``<<``).
_FAMILIES = (
    {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"},
    {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^"},
    {ast.LShift: "<<", ast.RShift: ">>"},
)
_FAMILY = {op: family for family in _FAMILIES for op in family}
# Operands whose order matters (``+`` too: strings and lists); swapping them is one slip (``a - b``, ``s + c``).
_ORDERED = (ast.Add, ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift)
_BOOLEAN = {ast.And: "and", ast.Or: "or"}
_OPPOSITE_CALLS = {"min": "max", "max": "min", "any": "all", "all": "any"}
# On one line: a comparison or an operator first, then bounds and numbers, swapped arguments, a lost return,
# and another variable last (there are many of those).
_RANK = {"operator": 0, "bound": 1, "arguments": 2, "return": 3, "name": 4}


@dataclass(frozen=True)
class Mutant:
    line: int  # the file's line of the edit
    what: str  # e.g. "line 12: `<` → `<=`"
    text: str  # the whole file after the edit
    rank: int = 0  # on one line, the likelier slips first


class _Text:
    """The file as bytes with line offsets: the syntax tree's columns are UTF-8 byte offsets."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.starts = [0]
        for line in self.data.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def at(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        end_line, end_col = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
        assert end_line is not None and end_col is not None
        return self.at(node.lineno, node.col_offset), self.at(end_line, end_col)  # type: ignore[attr-defined]

    def code(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.data[start:end].decode("utf-8")

    def replace(self, start: int, end: int, new: str) -> str:
        return (self.data[:start] + new.encode("utf-8") + self.data[end:]).decode("utf-8")


def _between(text: _Text, left: ast.AST, right: ast.AST, old: str, new: str) -> str | None:
    """The file with the operator ``old`` between two operands replaced by ``new`` (the gap holds only the
    operator, spaces, parentheses and line continuations)."""
    start, _ = text.span(right)
    _, end = text.span(left)
    gap = text.data[end:start].decode("utf-8")
    at = gap.find(old)
    if at < 0 or gap.count(old) != 1 or gap.replace(old, "").strip(" \t\\\n()"):
        return None
    return text.replace(end, start, gap[:at] + new + gap[at + len(old) :])


def _locals(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, int]:
    """The function's parameters and local names, each with the line it is first bound on."""
    params = (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs)
    names = {a.arg: function.lineno for a in params}
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names[node.id] = min(names.get(node.id, node.lineno), node.lineno)
    return {name: line for name, line in sorted(names.items()) if name not in ("self", "cls")}


def _functions(tree: ast.Module, unit: Unit) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and unit.def_line <= n.lineno <= unit.end]  # fmt: skip


def _own_nodes(statement: ast.stmt) -> Iterator[ast.AST]:
    """The statement and the expressions that belong to it (not those of the statements nested in it)."""
    yield statement
    stack = list(ast.iter_child_nodes(statement))
    while stack:
        node = stack.pop()
        if not isinstance(node, ast.stmt):
            yield node
            stack.extend(ast.iter_child_nodes(node))


def _edits(text: _Text, function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[int, str, str, str]]:
    """(line, kind, what, new file text) for each single edit inside ``function``; the line is the first of the
    statement the edit is in (what coverage reports as executed)."""
    names = _locals(function)
    for statement in ast.walk(function):
        if not isinstance(statement, ast.stmt) or statement is function:
            continue
        line = statement.lineno
        for node in _own_nodes(statement):
            yield from _node_edits(text, function, names, node, line)
    yield from _missing_return(text, function, names)


def _node_edits(text: _Text, function: ast.FunctionDef | ast.AsyncFunctionDef, names: dict[str, int], node: ast.AST,
                line: int) -> Iterator[tuple[int, str, str, str]]:  # fmt: skip
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            old = _COMPARE[type(op)]
            for new in _COMPARE_ALTERNATIVES[old]:
                changed = _between(text, operands[i], operands[i + 1], old, new)
                if changed is not None:
                    yield line, "operator", f"`{old}` → `{new}`", changed
    elif isinstance(node, ast.BinOp) and type(node.op) in _FAMILY:
        yield from _binary_edits(text, node, line)
    elif isinstance(node, ast.AugAssign) and type(node.op) in _FAMILY:
        family = _FAMILY[type(node.op)]
        old = family[type(node.op)]
        for new in family.values():
            changed = _between(text, node.target, node.value, old + "=", new + "=") if new != old else None
            if changed is not None:
                yield line, "operator", f"`{old}=` → `{new}=`", changed
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        start, end = text.span(node)
        operand = text.code(node.operand)
        yield line, "operator", f"`{text.code(node)}` → `{operand}`", text.replace(start, end, operand)
    elif isinstance(node, ast.If | ast.While | ast.IfExp) and not _negated(node.test):
        start, end = text.span(node.test)
        code = text.code(node.test)
        wrapped = f"({code})" if isinstance(node.test, ast.BoolOp | ast.IfExp | ast.NamedExpr) else code
        yield line, "operator", f"`{code}` → `not {wrapped}`", text.replace(start, end, f"not {wrapped}")
    elif isinstance(node, ast.BoolOp):
        old = _BOOLEAN[type(node.op)]
        new = "or" if old == "and" else "and"
        for first, second in itertools.pairwise(node.values):
            changed = _between(text, first, second, old, new)
            if changed is not None:
                yield line, "operator", f"`{old}` → `{new}`", changed
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        start, end = text.span(node)
        for new_value in (node.value + 1, node.value - 1):
            if new_value >= 0:
                yield line, "bound", f"`{node.value}` → `{new_value}`", text.replace(start, end, str(new_value))
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        start, end = text.span(node)
        yield line, "bound", f"`{node.value}` → `{not node.value}`", text.replace(start, end, str(not node.value))
    elif isinstance(node, ast.Call):
        yield from _call_edits(text, node, line)
    elif isinstance(node, ast.Subscript):
        bounds = [node.slice] if not isinstance(node.slice, ast.Slice) else [node.slice.lower, node.slice.upper]
        for bound in bounds:
            if bound is not None and not isinstance(bound, ast.Constant | ast.Tuple):
                yield from _plus_minus_one(text, bound, line)
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
        start, end = text.span(node)
        for other, bound_at in names.items():
            if other != node.id and bound_at < line:  # a name bound before this statement (or a parameter)
                yield line, "name", f"`{node.id}` → `{other}`", text.replace(start, end, other)
    elif isinstance(node, ast.Expr) and _value_dropped(node, function):
        start, end = text.span(node)
        code = text.code(node)
        yield line, "return", f"`{code}` → `return {code}`", text.replace(start, end, f"return {code}")


def _value_dropped(statement: ast.Expr, function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """An expression statement whose value is likely the function's result: not a call made for its effect
    (unless it ends the function), not a docstring, await or yield."""
    value = statement.value
    if isinstance(value, ast.Constant | ast.Await | ast.Yield | ast.YieldFrom):
        return False
    return not isinstance(value, ast.Call) or statement is function.body[-1]


def _negated(test: ast.expr) -> bool:
    """A condition whose negation another edit already makes: ``not x`` (dropping it), a comparison (its
    operator's opposite)."""
    return isinstance(test, ast.Compare) or (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not))


def _binary_edits(text: _Text, node: ast.BinOp, line: int) -> Iterator[tuple[int, str, str, str]]:
    """Another operator of the same family, the operands swapped, ``x ± 1`` without the one."""
    family = _FAMILY[type(node.op)]
    old = family[type(node.op)]
    for new in family.values():
        changed = _between(text, node.left, node.right, old, new) if new != old else None
        if changed is not None:
            yield line, "operator", f"`{old}` → `{new}`", changed
    if isinstance(node.op, _ORDERED) and ast.dump(node.left) != ast.dump(node.right):
        (l_start, l_end), (r_start, r_end) = text.span(node.left), text.span(node.right)
        left, right = text.code(node.left), text.code(node.right)
        if _atomic(node.left) and _atomic(node.right):  # swapping ``a * b - c`` would change the grouping
            swapped = text.replace(l_start, r_end, right + text.data[l_end:r_start].decode("utf-8") + left)
            yield line, "arguments", f"operands `{left}` and `{right}` swapped", swapped
    right_node = node.right
    if isinstance(node.op, ast.Add | ast.Sub) and isinstance(right_node, ast.Constant) and right_node.value == 1:
        start, end = text.span(node)
        left = text.code(node.left)
        yield line, "bound", f"`{text.code(node)}` → `{left}`", text.replace(start, end, left)


def _atomic(node: ast.expr) -> bool:
    """An operand that keeps its meaning on either side of any binary operator."""
    return not isinstance(node, ast.BinOp | ast.BoolOp | ast.Compare | ast.IfExp | ast.Lambda | ast.UnaryOp
                          | ast.NamedExpr | ast.Await)  # fmt: skip


def _call_edits(text: _Text, call: ast.Call, line: int) -> Iterator[tuple[int, str, str, str]]:
    args = call.args
    if isinstance(call.func, ast.Name) and call.func.id in _OPPOSITE_CALLS:
        start, end = text.span(call.func)
        new = _OPPOSITE_CALLS[call.func.id]
        yield line, "operator", f"`{call.func.id}` → `{new}`", text.replace(start, end, new)
    for a, b in itertools.pairwise(args):
        if isinstance(a, ast.Starred) or isinstance(b, ast.Starred) or ast.dump(a) == ast.dump(b):
            continue
        (a_start, a_end), (b_start, b_end) = text.span(a), text.span(b)
        middle = text.data[a_end:b_start].decode("utf-8")
        swapped = text.replace(a_start, b_end, text.code(b) + middle + text.code(a))
        yield line, "arguments", f"arguments `{text.code(a)}` and `{text.code(b)}` swapped", swapped
    if isinstance(call.func, ast.Name) and call.func.id == "range":
        for arg in args:
            if not isinstance(arg, ast.Constant | ast.Starred):
                yield from _plus_minus_one(text, arg, line)


def _plus_minus_one(text: _Text, node: ast.AST, line: int) -> Iterator[tuple[int, str, str, str]]:
    start, end = text.span(node)
    code = text.code(node)
    wrapped = f"({code})" if isinstance(node, ast.BinOp | ast.BoolOp | ast.Compare | ast.IfExp | ast.Lambda) else code
    for sign in ("+", "-"):
        yield line, "bound", f"`{code}` → `{wrapped} {sign} 1`", text.replace(start, end, f"{wrapped} {sign} 1")


def _missing_return(text: _Text, function: ast.FunctionDef | ast.AsyncFunctionDef,
                    names: dict[str, int]) -> Iterator[tuple[int, str, str, str]]:  # fmt: skip
    """A function that never returns a value: ``return name`` after its last statement, for the names it
    assigns (last assigned first)."""
    if any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(function)):
        return
    if any(isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(function)):
        return
    last = function.body[-1]
    _, end = text.span(last)
    indent = " " * last.col_offset
    assigned = [n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    for name in dict.fromkeys(reversed(assigned)):
        if name in names:
            yield last.lineno, "return", f"`return {name}` added", text.replace(end, end, f"\n{indent}return {name}")


def mutants(source: str, unit: Unit, focus: int | None, limit: int, executed: set[int] | None = None) -> list[Mutant]:
    """Up to ``limit`` single edits of ``unit`` in the file ``source``, nearest ``focus`` (the failing line)
    first; only in statements the failing tests ``executed`` when that is known (a slip the failing run
    never reached cannot be its cause); each compiles.  Empty when the file does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    text = _Text(source)
    centre = focus if focus is not None else unit.def_line
    found: dict[str, Mutant] = {}
    for function in _functions(tree, unit):
        for line, kind, what, changed in _edits(text, function):
            if changed != source and changed not in found and (not executed or line in executed):
                found[changed] = Mutant(line, f"line {line}: {what}", changed, _RANK[kind])
    ordered = sorted(found.values(), key=lambda m: (abs(m.line - centre), m.line, m.rank))
    out: list[Mutant] = []
    for mutant in ordered:
        if len(out) >= limit:
            break
        try:
            compile(mutant.text, unit.path, "exec", dont_inherit=True)
        except SyntaxError:
            continue
        out.append(mutant)
    return out
