"""Windows into long units: the fix loop's edit for a function too long to rewrite whole.

A small model asked to rewrite a 250-line function to change one line decodes hundreds of tokens per
candidate, runs out of its token budget, or changes what it should not.  For a long unit with a known
failing line, the prompt shows a window of whole statements around that line (the unit's header and the
rest elided), and the answer replaces exactly those lines.  Every check of a whole-unit edit still holds
on the result: the file compiles, tests are never edited.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from codespark.agent.edit import Edit, RefusedEdit, code_blocks
from codespark.agent.localize import Project, Unit, is_test_path

LONG_UNIT_LINES = 60  # units longer than this are edited through a window
WINDOW_LINES = 24  # about how many lines a window holds


@dataclass(frozen=True)
class Window:
    start: int  # file lines, 1-based, inclusive
    end: int

    def relative(self, unit: Unit) -> tuple[int, int]:
        return self.start - unit.start + 1, self.end - unit.start + 1


def choose(project: Project, unit: Unit, focus: int) -> Window | None:
    """Whole statements around line ``focus`` of a long unit (None for a short one, or a focus outside it).

    The window is the innermost statement block holding the focus, grown by neighbouring statements to
    about ``WINDOW_LINES``; in a file that does not parse, plain lines around the focus."""
    if unit.end - unit.start + 1 <= LONG_UNIT_LINES or not unit.start <= focus <= unit.end:
        return None
    body_start = unit.def_line + 1
    try:
        tree = ast.parse(project.text(unit.path))
    except SyntaxError:
        half = WINDOW_LINES // 2
        return Window(max(body_start, focus - half), min(unit.end, focus + half))
    blocks = [b for b in _blocks_holding(tree, focus) if _first_line(b[0]) > unit.def_line]
    chosen: tuple[int, int] | None = None
    for block in reversed(blocks):  # innermost first
        index = next(i for i, s in enumerate(block) if _first_line(s) <= focus <= _last_line(s))
        if chosen is not None and _last_line(block[index]) - _first_line(block[index]) + 1 > WINDOW_LINES:
            break  # this level's statement is too long: keep the inner window
        lo, hi = _grow(block, index)
        chosen = (_first_line(block[lo]), _last_line(block[hi]))
        if chosen[1] - chosen[0] + 1 >= WINDOW_LINES // 2:
            break
    if chosen is None:
        return None
    start, end = max(body_start, chosen[0]), min(chosen[1], unit.end)
    return Window(start, end) if start <= end else None


def _grow(block: list[ast.stmt], index: int) -> tuple[int, int]:
    """Neighbouring statements added around ``block[index]`` while the span stays within the window."""
    lo = hi = index

    def span(a: int, b: int) -> int:
        return _last_line(block[b]) - _first_line(block[a]) + 1

    grown = True
    while grown:
        grown = False
        if hi + 1 < len(block) and span(lo, hi + 1) <= WINDOW_LINES:
            hi, grown = hi + 1, True
        if lo > 0 and span(lo - 1, hi) <= WINDOW_LINES:
            lo, grown = lo - 1, True
    return lo, hi


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _last_line(node: ast.stmt) -> int:
    return node.end_lineno or node.lineno


def _blocks_holding(tree: ast.AST, line: int) -> list[list[ast.stmt]]:
    """The statement lists that hold the line, outermost first."""
    found = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            statements = block if isinstance(block, list) and block else []
            holds = bool(statements) and all(isinstance(s, ast.stmt) for s in statements)
            if holds and _first_line(statements[0]) <= line <= _last_line(statements[-1]):
                found.append(statements)
        for handler in getattr(node, "handlers", []) or []:
            if handler.body and _first_line(handler.body[0]) <= line <= _last_line(handler.body[-1]):
                found.append(handler.body)
    return sorted(found, key=lambda b: (_first_line(b[0]), -_last_line(b[-1])))


def excerpt(project: Project, unit: Unit, window: Window) -> str:
    """The unit as the model sees it: its first lines, the window between markers, the rest elided."""
    lines = project.source(unit).splitlines()
    rel_start, rel_end = window.relative(unit)
    head = lines[: min(unit.def_line - unit.start + 1, rel_start - 1)]
    while head and head[-1].rstrip().endswith((",", "(")) and len(head) < rel_start - 1:
        head.append(lines[len(head)])  # a signature over several lines, whole
    indent = _indent_of(lines[rel_start - 1 : rel_end])
    out = [*head]
    if rel_start - 1 > len(head):
        out.append(f"{indent}# ... (lines {len(head) + 1}-{rel_start - 1} unchanged) ...")
    out.append(f"{indent}# >>> lines {rel_start}-{rel_end}: rewrite these")
    out += lines[rel_start - 1 : rel_end]
    out.append(f"{indent}# <<< end of lines {rel_start}-{rel_end}")
    if rel_end < len(lines):
        out.append(f"{indent}# ... (lines {rel_end + 1}-{len(lines)} unchanged) ...")
    return "\n".join(out)


def _indent_of(lines: list[str]) -> str:
    widths = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    return " " * min(widths) if widths else ""


def replace_window(project: Project, unit: Unit, window: Window, answer: str, allow_test_edits: bool = False) -> Edit:
    """The file with the window's lines replaced by the answer's code, re-indented to the window's level."""
    if is_test_path(unit.path) and not allow_test_edits:
        raise RefusedEdit(f"{unit.path} is a test file; tests are never edited (unless --allow-test-edits).")
    before = project.text(unit.path)
    lines = before.splitlines(keepends=True)
    indent = _indent_of([line.rstrip("\n") for line in lines[window.start - 1 : window.end]])
    problems = []
    for block in code_blocks(answer):
        kept = [line for line in block.splitlines() if not _is_marker(line)]
        code = textwrap.dedent("\n".join(kept)).strip("\n")
        if not code.strip():
            continue
        new = "".join(indent + line + "\n" if line.strip() else "\n" for line in code.splitlines())
        after = "".join([*lines[: window.start - 1], new, *lines[window.end :]])
        if after == before:
            problems.append(f"it leaves lines {window.start}-{window.end} unchanged")
            continue
        try:
            compile(after, unit.path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            problems.append(f"with it, {unit.path} does not compile (line {exc.lineno}: {exc.msg})")
            continue
        return Edit(unit.path, before, after, unit.name)
    raise RefusedEdit("The answer cannot be used: " + ("; ".join(dict.fromkeys(problems)) or "no code") + ".")


def _is_marker(line: str) -> bool:
    text = line.strip()
    return text.startswith(("# >>> lines", "# <<< end of lines", "# ... (lines"))
