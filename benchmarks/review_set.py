"""The review benchmark's pull requests, over real code nobody here wrote (the seeded-fault modules of
``repair_sets/faults.py``: statistics, difflib, collections, fractions, textwrap, heapq).

- A *fault* PR: one seeded fault (a mutation that makes the function's own doctest fail) mixed into
  benign edits: a local variable renamed in the faulty function, a docstring reworded in another
  function, another top-level function moved to the end of the file.
- A *benign* PR: the same kinds of edits with no fault, verified behaviour-preserving by the doctests.

The reviewer never sees a doctest: every ``>>>`` example (the tests that seeded the faults) is removed
from the files of both sides of every PR.
"""

from __future__ import annotations

import ast
import difflib
import io
import random
import subprocess
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.repair_sets import faults

NAMES = ("count", "value", "item", "result", "current", "total", "index", "parts", "chunk", "acc")
_GIT = ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]


@dataclass(frozen=True)
class PullRequest:
    pr_id: str
    file: str
    base: str
    head: str
    fault_lines: tuple[int, ...]  # lines of the head holding the fault (empty for a benign PR)
    edits: tuple[str, ...]  # what the benign edits were


def strip_doctests(text: str) -> str:
    """Remove ``>>>`` examples and their expected output (up to the next blank line or example)."""
    out: list[str] = []
    in_example = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
            continue
        if in_example and stripped and not stripped.startswith(('"""', "'''")):
            continue
        in_example = False
        out.append(line)
    return "".join(out)


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for qual, node in faults._functions(tree):
        if qual == name:
            return node
    return None


def _rename_in(text: str, fn: ast.FunctionDef, old: str, new: str) -> str:
    """Rename the NAME tokens ``old`` inside ``fn``'s lines (not attributes, not keyword arguments)."""
    lines = text.splitlines(keepends=True)
    start, end = fn.lineno, fn.end_lineno or fn.lineno
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    edits: list[tuple[int, int]] = []
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME or tok.string != old or not start <= tok.start[0] <= end:
            continue
        before = tokens[i - 1].string if i else ""
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if before == "." or (after == "=" and before in ("(", ",")):
            continue
        edits.append(tok.start)
    for row, col in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + len(old) :]
    return "".join(lines)


def _alpha_equal(a: str, b: str, old: str, new: str) -> bool:
    class Back(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            if node.id == new:
                node.id = old
            return node

    try:
        return ast.dump(ast.parse(a)) == ast.dump(Back().visit(ast.parse(b)))
    except SyntaxError:
        return False


def benign_edits(text: str, target: str, rng: random.Random) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The edits to make (as ``(kind, a, b)`` recipes applied by ``apply``) and their descriptions."""
    tree = ast.parse(text)
    recipes: list[tuple[str, str, str]] = []
    fn = _function(tree, target)
    if fn is not None:
        params = {a.arg for a in fn.args.args + fn.args.kwonlyargs + fn.args.posonlyargs}
        stored = sorted({n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
                        - params)  # fmt: skip
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        free = [n for n in NAMES if n not in used]
        if stored and free:
            old = rng.choice(stored)
            recipes.append(("rename", old, rng.choice(free)))
    others = [(q, n) for q, n in faults._functions(tree) if q != target and "." not in q]
    documented = [q for q, n in others if ast.get_docstring(n)]
    if documented:
        recipes.append(("docstring", rng.choice(documented), ""))
    # a small helper (a big one would pad the changed lines, and the noise is counted per changed line)
    movable = [q for q, n in others if not n.decorator_list and (n.end_lineno or n.lineno) - n.lineno < 25]
    if movable:
        recipes.append(("move", rng.choice(movable), ""))
    return recipes, [f"{k} {a}{' -> ' + b if b else ''}" for k, a, b in recipes]


def apply(text: str, target: str, recipes: list[tuple[str, str, str]]) -> str:
    for kind, a, b in recipes:
        tree = ast.parse(text)
        if kind == "rename":
            fn = _function(tree, target)
            if fn is not None:
                renamed = _rename_in(text, fn, a, b)
                if _alpha_equal(text, renamed, a, b):
                    text = renamed
        elif kind == "docstring":
            fn = _function(tree, a)
            doc = fn.body[0] if fn is not None and fn.body else None
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                lines = text.splitlines(keepends=True)
                row = doc.lineno - 1
                line = lines[row].rstrip("\n")
                quote = '"""' if '"""' in line else "'''" if "'''" in line else ""
                if quote and line.count(quote) == 1:  # the summary line opens a multi-line docstring
                    lines[row] = line + " (See the module's notes.)\n"
                    text = "".join(lines)
        elif kind == "move":
            fn = _function(tree, a)
            if fn is not None:
                lines = text.splitlines(keepends=True)
                start, end = fn.lineno - 1, fn.end_lineno or fn.lineno
                block = lines[start:end]
                rest = lines[:start] + lines[end:]
                text = "".join(rest).rstrip("\n") + "\n\n\n" + "".join(block).rstrip("\n") + "\n"
    return text


def changed_lines(before: str, after: str) -> tuple[int, ...]:
    a, b = before.splitlines(), after.splitlines()
    out: list[int] = []
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            out += list(range(j1 + 1, max(j1 + 1, j2) + 1))
    return tuple(out)


def make(bug: faults.Bug, rng: random.Random, check_dir: Path, fault: bool) -> PullRequest | None:
    """One PR from ``bug`` (its fault kept when ``fault``), or None when its edits could not be verified."""
    recipes, described = benign_edits(bug.original, bug.function, rng)
    edited_original = apply(bug.original, bug.function, recipes)
    edited_faulty = apply(bug.faulty, bug.function, recipes)
    edited = replace(bug, original=edited_original, faulty=edited_faulty)
    if not faults.doctest_passes(edited, check_dir / "benign", faulty=False):
        return None  # an edit changed behaviour: not benign
    if fault and faults.doctest_passes(edited, check_dir / "faulty", faulty=True):
        return None  # the edits hid the fault
    base = strip_doctests(bug.original)
    head_ok = strip_doctests(edited_original)
    head = strip_doctests(edited_faulty) if fault else head_ok
    lines = changed_lines(head_ok, head) if fault else ()
    if fault and not lines:
        return None
    kind = "fault" if fault else "benign"
    return PullRequest(f"{kind}:{bug.bug_id}", bug.file, base, head, lines, tuple(described))


def write_repo(pr: PullRequest, folder: Path) -> None:
    """A git repo: ``main`` holds the base, the checked-out ``pr`` branch the head."""
    folder.mkdir(parents=True, exist_ok=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *_GIT, *args], cwd=folder, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (folder / pr.file).write_text(pr.base, encoding="utf-8")
    git("add", "-A")
    git("commit", "-qm", "base")
    git("switch", "-qc", "pr")
    (folder / pr.file).write_text(pr.head, encoding="utf-8")
    git("commit", "-qam", "pr: " + "; ".join(pr.edits))
