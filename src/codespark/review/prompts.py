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


def _call_shape(node: ast.expr, name: str) -> list[ast.Call] | None:
    """The calls whose arguments must be literals, when ``node`` is ``name(...)`` or ``Class(...).method(...)``."""
    if not isinstance(node, ast.Call):
        return None
    if "." not in name:
        return [node] if isinstance(node.func, ast.Name) and node.func.id == name else None
    cls, method = name.split(".", 1)
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == method and isinstance(func.value, ast.Call):
        made = func.value
        if isinstance(made.func, ast.Name) and made.func.id == cls:
            return [node, made]
    return None


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


def _evaluable(node: ast.expr, names: frozenset[str]) -> bool:
    """A literal, or a call of one of the module's own ``names`` whose arguments are evaluable."""
    if isinstance(node, ast.Call):
        return (isinstance(node.func, ast.Name) and node.func.id in names
                and all(_evaluable(a, names) for a in node.args if not isinstance(a, ast.Starred))
                and not any(isinstance(a, ast.Starred) for a in node.args)
                and all(k.arg is not None and _evaluable(k.value, names) for k in node.keywords))  # fmt: skip
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(_evaluable(e, names) for e in node.elts)
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, RecursionError):
        return False
    return True


def parse_calls(answer: str, name: str, limit: int = 12, names: frozenset[str] = frozenset()) -> list[str]:
    """Calls ``name(...)`` (or ``Class(...).method(...)``) whose arguments are literals or calls of the
    module's own ``names`` with such arguments, normalized by ``ast.unparse``; anything else in the answer
    is ignored (the calls run in the sandbox, and they are shown to the user)."""
    blocks = re.findall(r"```(?:python|py)?\n(.*?)```", answer, re.S) or [answer]
    out: list[str] = []
    for line in "\n".join(blocks).splitlines():
        line = line.strip().rstrip(";")
        if not line or line.startswith("#"):
            continue
        try:
            node = _unwrap(ast.parse(line).body)
        except SyntaxError:
            continue
        shape = _call_shape(node, name) if node is not None else None
        if shape is None or node is None:
            continue
        args = [a for c in shape for a in (*c.args, *(k.value for k in c.keywords))]
        if any(isinstance(a, ast.Starred) for c in shape for a in c.args) or any(
            k.arg is None for c in shape for k in c.keywords
        ):
            continue
        if not all(_evaluable(a, names) for a in args):
            continue
        call = ast.unparse(node)
        if call not in out and len(call) <= 300:
            out.append(call)
        if len(out) >= limit:
            break
    return out
