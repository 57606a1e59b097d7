"""What the model is asked during a review: findings on one changed function (JSON, constrained by a
schema), and calls that exercise it (for the differential check)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codespark.engine.chat import Message
from codespark.review.findings import CATEGORIES, SEVERITIES

REVIEW_SYSTEM = (
    "You review a code change. Report only real defects that the change introduces: wrong results, "
    "crashes, unhandled errors, security holes, missing tests for new behaviour. Never report style, naming, "
    "formatting or documentation. Point at a changed line (marked +). If the change is fine, return an "
    'empty list: {"findings": []}.'
)
CALLS_SYSTEM = (
    "You write example calls of a Python function to test it. Reply with one ```python code block holding "
    "only calls, one per line, with literal arguments (numbers, strings, lists, tuples, dicts, None, True, "
    "False) or objects made by calling the module's own classes. No imports, no assignments, no print."
)

FINDINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "findings": {
            "type": "array",
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": "integer"},
                    "category": {"enum": list(CATEGORIES)},
                    "severity": {"enum": list(SEVERITIES)},
                    "reason": {"type": "string", "maxLength": 400},
                },
                "required": ["line", "category", "severity", "reason"],
            },
        }
    },
    "required": ["findings"],
}


@dataclass(frozen=True)
class Claim:
    line: int
    category: str
    severity: str
    reason: str


def numbered(text: str, start: int, end: int, added: frozenset[int]) -> str:
    """Lines ``start..end`` of ``text`` with their numbers, changed lines marked ``+``."""
    lines = text.splitlines()
    out = []
    for n in range(start, min(end, len(lines)) + 1):
        out.append(f"{n:>5} {'+' if n in added else ' '} {lines[n - 1]}")
    return "\n".join(out)


def with_removed(shown: str, removed: dict[int, list[str]]) -> str:
    """``numbered`` lines with the removed lines (``-``, no number) put back before the line they preceded."""
    out = []
    for line in shown.splitlines():
        number = int(line[:5])
        out += [f"{'':>5} - {old}" for old in removed.get(number, [])]
        out.append(line)
    return "\n".join(out)


def review_messages(path: str, name: str, shown: str, new: bool, called: Sequence[str]) -> list[Message]:
    parts = [f"File: {path}", f"The change to `{name}` (line number, then + for an added line or - for a removed "
             "one, then the code):", shown]  # fmt: skip
    if new:
        parts.append("(new code: it did not exist before)")
    if called:
        parts += ["Definitions it calls:", "```python\n" + "\n\n".join(called) + "\n```"]
    parts.append('Answer with JSON: {"findings": [{"line": N, "category": ..., "severity": ..., "reason": ...}]}.')
    return [Message("system", REVIEW_SYSTEM), Message("user", "\n\n".join(parts))]


def parse_claims(answer: str, lines: frozenset[int]) -> list[Claim]:
    """The model's findings that point at a line of the unit (others are dropped: a finding must be placed)."""
    try:
        data = json.loads(answer)
    except json.JSONDecodeError:
        match = re.search(r"\{.*\}", answer, re.S)
        if match is None:
            return []
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            return []
    out = []
    for item in data.get("findings", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict) or not isinstance(item.get("line"), int) or item["line"] not in lines:
            continue
        category = item.get("category") if item.get("category") in CATEGORIES else "bug-risk"
        severity = item.get("severity") if item.get("severity") in SEVERITIES else "medium"
        reason = " ".join(str(item.get("reason", "")).split())[:400]
        if reason and category != "style":
            out.append(Claim(item["line"], str(category), str(severity), reason))
    return out


def calls_messages(name: str, source: str, count: int = 6, init: str = "") -> list[Message]:
    if "." in name:
        cls, method = name.split(".", 1)
        operator = {v: k for k, v in _SYMBOLS.items()}.get(method)
        if method in ("__init__", "__new__"):
            shape = f"`{cls}(...)`, each with different arguments"
        elif operator:
            shape = f"`{cls}(...) {operator} ...` (make instances with literal arguments)"
        else:
            shape = f"`{cls}(...).{method}(...)`: make an instance with literal arguments, then call the method"
        source = (init.rstrip() + "\n\n" if init else "") + source
    else:
        shape = f"`{name}(...)`"
    user = (
        f"```python\n{source.rstrip()}\n```\n\nWrite {count} different calls of the form {shape}, that exercise "
        "what it does, edge cases included (empty inputs, zero, negative numbers, boundaries, unusual but valid "
        "values)."
    )
    return [Message("system", CALLS_SYSTEM), Message("user", user)]


def _unwrap(body: list[ast.stmt]) -> ast.expr | None:
    """The call in ``f(x)``, ``y = f(x)``, ``print(f(x))`` or ``assert f(x) == y`` (small models add these)."""
    if len(body) != 1:
        return None
    stmt = body[0]
    if isinstance(stmt, ast.Expr):
        value = stmt.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print" and value.args:
            return value.args[0]
        return value
    if isinstance(stmt, ast.Assign):
        return stmt.value
    if isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare):
        return stmt.test.left
    return None


_BINARY_DUNDER = {
    ast.Add: "__add__",
    ast.Sub: "__sub__",
    ast.Mult: "__mul__",
    ast.Div: "__truediv__",
    ast.FloorDiv: "__floordiv__",
    ast.Mod: "__mod__",
    ast.Pow: "__pow__",
    ast.BitAnd: "__and__",
    ast.BitOr: "__or__",
    ast.BitXor: "__xor__",
    ast.LShift: "__lshift__",
    ast.RShift: "__rshift__",
}
_COMPARE_DUNDER = {
    ast.Eq: "__eq__",
    ast.NotEq: "__ne__",
    ast.Lt: "__lt__",
    ast.LtE: "__le__",
    ast.Gt: "__gt__",
    ast.GtE: "__ge__",
    ast.In: "__contains__",
    ast.NotIn: "__contains__",
}
_UNARY_DUNDER = {ast.USub: "__neg__", ast.UAdd: "__pos__", ast.Invert: "__invert__", ast.Not: "__bool__"}
MAX_NODES = 80
_SYMBOLS = {"+": "__add__", "-": "__sub__", "*": "__mul__", "/": "__truediv__", "//": "__floordiv__", "%": "__mod__",
            "**": "__pow__", "&": "__and__", "|": "__or__", "^": "__xor__", "==": "__eq__", "<": "__lt__",
            "<=": "__le__", ">": "__gt__", ">=": "__ge__"}  # fmt: skip


def evaluable(node: ast.AST, names: frozenset[str], method: str = "") -> bool:
    """What probe.py may evaluate: literals, the module's own ``names``, calls, attributes (no private ones
    but ``method``) and operators over them.  Nothing else is reachable: no builtins, no imports."""
    if sum(1 for _ in ast.walk(node)) > MAX_NODES:
        return False
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            if n.id not in names or not isinstance(n.ctx, ast.Load):
                return False
        elif isinstance(n, ast.Attribute):
            if n.attr.startswith("_") and n.attr != method:
                return False
        elif isinstance(n, ast.Call):
            if any(isinstance(a, ast.Starred) for a in n.args) or any(k.arg is None for k in n.keywords):
                return False
        elif isinstance(n, ast.Compare):
            if len(n.ops) != 1 or type(n.ops[0]) not in _COMPARE_DUNDER:
                return False
        elif isinstance(n, ast.BinOp):
            if type(n.op) not in _BINARY_DUNDER:
                return False
        elif isinstance(n, ast.UnaryOp):
            if type(n.op) not in _UNARY_DUNDER:
                return False
        elif isinstance(n, ast.Dict):
            if any(k is None for k in n.keys):
                return False
        elif not isinstance(n, ast.Constant | ast.List | ast.Tuple | ast.Set | ast.expr_context | ast.keyword
                            | ast.operator | ast.unaryop | ast.cmpop):  # fmt: skip
            return False
    return True


def mentions(node: ast.AST, name: str) -> bool:
    """Whether the expression exercises ``name``: calls the function, or (``Class.method``) uses the method,
    its operator, or the constructor for ``__init__``/``__new__``."""
    nodes = list(ast.walk(node))
    if "." not in name:
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in nodes)
    cls, method = name.split(".", 1)
    if not any(isinstance(n, ast.Name) and n.id == cls for n in nodes):
        return False
    if method in ("__init__", "__new__", "__post_init__"):
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == cls for n in nodes)
    for n in nodes:
        if isinstance(n, ast.Attribute) and n.attr == method:
            return True
        if isinstance(n, ast.BinOp):
            dunder = _BINARY_DUNDER[type(n.op)]
            if method in (dunder, "__r" + dunder[2:]):
                return True
        if isinstance(n, ast.Compare) and _COMPARE_DUNDER.get(type(n.ops[0])) == method:
            return True
        if isinstance(n, ast.UnaryOp) and _UNARY_DUNDER.get(type(n.op)) == method:
            return True
    return method in ("__repr__", "__str__", "__hash__", "__len__", "__iter__", "__bool__")


def parse_calls(answer: str, name: str, limit: int = 12, names: frozenset[str] = frozenset()) -> list[str]:
    """Expressions that exercise ``name`` (``f(...)``, ``Class(...).method(...)``, ``Class(...) + Class(...)``)
    over literals and the module's own ``names``, normalized by ``ast.unparse``; anything else in the answer is
    ignored (they run in the sandbox, and they are shown to the user)."""
    blocks = re.findall(r"```(?:python|py)?\n(.*?)```", answer, re.S) or [answer]
    method = name.split(".", 1)[1] if "." in name else ""
    allowed = names | {name.split(".")[0]}
    out: list[str] = []
    for line in "\n".join(blocks).splitlines():
        line = line.strip().rstrip(";")
        if not line or line.startswith("#"):
            continue
        try:
            node = _unwrap(ast.parse(line).body)
        except SyntaxError:
            continue
        if node is None or not evaluable(node, allowed, method) or not mentions(node, name):
            continue
        call = ast.unparse(node)
        if call not in out and len(call) <= 300:
            out.append(call)
        if len(out) >= limit:
            break
    return out


def constants(lines: Sequence[str]) -> list[int]:
    """The integers written in the changed (added and removed) lines, and their neighbours, with the small
    values where edge cases live (-1, 0, 1, 2): where a comparison, a bound or an index changed, the inputs
    worth trying sit at those values."""
    found: set[int] = {-1, 0, 1, 2}
    for line in lines:
        for m in re.finditer(r"(?<![\w.])(\d{1,6})(?![\w.])", line):
            value = int(m.group(1))
            found.update((value - 1, value, value + 1))
    return sorted(found)[:12]


def at_boundaries(calls: Sequence[str], values: Sequence[int], limit: int = 12) -> list[str]:
    """More calls: the model's, with each integer argument set to each of ``values`` in turn."""
    out: list[str] = []
    for call in calls[:4]:
        tree = ast.parse(call, mode="eval")
        spots = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is int]
        for spot in spots[:3]:
            original = spot.value
            for value in values:
                if value == original:
                    continue
                spot.value = value
                text = ast.unparse(tree)
                if text not in calls and text not in out:
                    out.append(text)
                if len(out) >= limit:
                    return out
            spot.value = original
    return out
