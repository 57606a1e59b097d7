"""The review's check of its own claims: run a changed function from the base tree and from the new tree
on the same calls (written by the model, literal arguments only, in the sandbox), and where they differ,
find the one change that causes it by reverting each change alone, then write the failing test that shows
it: it must pass on the base and fail on the new code.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import hashlib
import io
import json
import keyword
import shlex
import sys
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codespark.agent import sandbox
from codespark.agent.sandbox import Limits
from codespark.migrate.plan import module_name

PROBE = Path(__file__).with_name("probe.py")
_LIMITS = Limits(timeout_s=60, cpu_s=60, memory_bytes=4 * 2**30, output_bytes=64 * 1024)
MAX_REVERTS = 12


@dataclass(frozen=True)
class Divergence:
    call: str
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One edit between the base and the new file: new lines ``start..end`` (1-based; ``end < start`` for
    a pure deletion before ``start``) replacing base lines ``[i1, i2)``."""

    i1: int
    i2: int
    j1: int
    j2: int

    @property
    def start(self) -> int:
        return self.j1 + 1

    @property
    def end(self) -> int:
        return max(self.j1 + 1, self.j2)


@dataclass(frozen=True)
class Shown:
    divergences: list[Divergence]
    culprit: Change | None
    test: str  # '' when no test could be written or it did not fail on the new code and pass on the base
    patch: str  # the revert of the culprit, as a unified diff ('' when none)


def changes(before: str, after: str) -> list[Change]:
    """The edits, finest first: a block that replaces as many lines as it removes is one change per line."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "replace" and i2 - i1 == j2 - j1:
            out += [Change(i1 + k, i1 + k + 1, j1 + k, j1 + k + 1) for k in range(i2 - i1)]
        elif tag != "equal":
            out.append(Change(i1, i2, j1, j2))
    return out


def revert(before: str, after: str, change: Change, names: dict[str, str] | None = None) -> str:
    """``after`` with ``change`` undone; with ``names``, the restored lines use the new names of renamed
    variables (a bug on a line that also renames would otherwise come back as a NameError)."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    restored = [rename_line(line, names) for line in a[change.i1 : change.i2]] if names else a[change.i1 : change.i2]
    return "".join(b[: change.j1] + restored + b[change.j2 :])


def _names(line: str) -> list[tokenize.TokenInfo] | None:
    tokens = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            tokens.append(tok)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a line of a bracketed expression: the tokens before its end are enough
    kept = [t for t in tokens if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                                tokenize.ENDMARKER, tokenize.COMMENT)]  # fmt: skip
    return kept or None


def renames(before: str, after: str) -> dict[str, str]:
    """Variables renamed by the change: lines that differ only in names, consistently (old -> new)."""
    a, b = before.splitlines(), after.splitlines()
    found: dict[str, str] = {}
    clashes: set[str] = set()
    for change in changes(before, after):
        if change.i2 - change.i1 != change.j2 - change.j1:
            continue
        for old_line, new_line in zip(a[change.i1 : change.i2], b[change.j1 : change.j2], strict=True):
            old, new = _names(old_line), _names(new_line)
            if old is None or new is None or len(old) != len(new):
                continue
            pairs = [(x.string, y.string) for x, y in zip(old, new, strict=True) if x.string != y.string]
            if pairs and all(x.type == y.type == tokenize.NAME for x, y in zip(old, new, strict=True)
                             if x.string != y.string):  # fmt: skip
                for x, y in pairs:
                    if found.get(x, y) != y:
                        clashes.add(x)
                    found[x] = y
    return {k: v for k, v in found.items() if k not in clashes and not keyword.iskeyword(k)}


def rename_line(line: str, names: dict[str, str]) -> str:
    tokens = _names(line) or []
    out = line
    for tok in sorted((t for t in tokens if t.type == tokenize.NAME and t.string in names), key=lambda t: -t.start[1]):
        col = tok.start[1]
        out = out[:col] + names[tok.string] + out[col + len(tok.string) :]
    return out


def probe(root: Path, path: str, calls: list[str]) -> dict[str, dict[str, Any]] | None:
    """What each call does in ``root``'s version of ``path`` (None when the module does not import there)."""
    with tempfile.TemporaryDirectory(prefix="codespark-probe-") as tmp:
        calls_file, out_file = Path(tmp) / "calls.json", Path(tmp) / "out.json"
        calls_file.write_text(json.dumps(calls), encoding="utf-8")
        argv = (sys.executable, str(PROBE), path, str(calls_file), str(out_file))
        command = " ".join(shlex.quote(p) for p in argv)
        sandbox.run(command, root, _LIMITS)
        if not out_file.exists():
            return None
        data: dict[str, Any] = json.loads(out_file.read_text(encoding="utf-8"))
    if "error" in data:
        return None
    return data


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if "nondeterministic" in (a.get("kind"), b.get("kind")):
        return True
    if a.get("kind") != b.get("kind") or a.get("args") != b.get("args"):
        return False
    if a["kind"] == "raises":
        return bool(a.get("type") == b.get("type"))
    return a.get("value") == b.get("value")


def diverging(base: dict[str, dict[str, Any]], head: dict[str, dict[str, Any]]) -> list[Divergence]:
    return [Divergence(c, base[c], head[c]) for c in base if c in head and not same(base[c], head[c])]


def show(
    base_root: Path, head_root: Path, path: str, function: str, calls: list[str], base_text: str, head_text: str,
    unit_lines: tuple[int, int],
) -> Shown | None:  # fmt: skip
    """Divergences between the base and the new ``function`` on ``calls``, the change that causes them and a
    test that shows them; None when nothing differs (or the function cannot be run on both sides)."""
    base = probe(base_root, path, calls)
    head = probe(head_root, path, calls)
    if base is None or head is None:
        return None
    found = diverging(base, head)
    if not found:
        return None
    culprit, names = _culprit(head_root, path, found, base_text, head_text, unit_lines)
    test = _test(base_root, head_root, path, function, found)
    patch = _patch(path, head_text, revert(base_text, head_text, culprit, names)) if culprit else ""
    return Shown(found, culprit, test, patch)


def _culprit(
    root: Path, path: str, found: list[Divergence], base_text: str, head_text: str, unit_lines: tuple[int, int]
) -> tuple[Change | None, dict[str, str]]:
    """The single change whose revert alone restores the base's outcomes (changes inside the function first;
    each reverted as it was, then keeping the change's renames), and the renames that revert needed."""
    start, end = unit_lines
    candidates = sorted(changes(base_text, head_text),
                        key=lambda c: (not (c.start <= end and c.end >= start), abs(c.start - start)))  # fmt: skip
    target = root / path
    calls = [d.call for d in found]
    renamed = renames(base_text, head_text)
    tries: list[tuple[Change, dict[str, str]]] = [(c, {}) for c in candidates[:MAX_REVERTS]]
    if renamed:
        tries += [(c, renamed) for c in candidates[:MAX_REVERTS]
                  if revert(base_text, head_text, c, renamed) != revert(base_text, head_text, c)]  # fmt: skip
    try:
        for change, names in tries:
            target.write_text(revert(base_text, head_text, change, names), encoding="utf-8")
            outcome = probe(root, path, calls)
            if outcome is not None and all(same(d.before, outcome.get(d.call, {})) for d in found):
                return change, names
    finally:
        target.write_text(head_text, encoding="utf-8")
    return None, {}


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def assertion(function: str, d: Divergence) -> str | None:
    """A test body that passes when the call does what it did on the base."""
    call = d.call
    before = d.before
    node = ast.parse(call, mode="eval").body
    if before.get("args") != d.after.get("args"):
        if (
            not isinstance(node, ast.Call)
            or not isinstance(node.func, ast.Name)
            or not _literal(str(before.get("args")))
        ):
            return None
        args = "[" + ", ".join(ast.unparse(a) for a in node.args) + "]"
        kwargs = "{" + ", ".join(f"{k.arg!r}: {ast.unparse(k.value)}" for k in node.keywords) + "}"
        return (f"    args, kwargs = {args}, {kwargs}\n    {function}(*args, **kwargs)\n"
                f"    assert [args, kwargs] == {before['args']}\n")  # fmt: skip
    if before["kind"] == "raises":
        name = before.get("type", "Exception")
        builtin = getattr(builtins, str(name), None)
        exc = name if isinstance(builtin, type) and issubclass(builtin, BaseException) else "Exception"
        return f"    with pytest.raises({exc}):\n        {call}\n"
    if before["kind"] != "value":
        return None
    value = str(before.get("value"))
    if _literal(value):
        return f"    assert {call} == {value}\n"
    return f"    assert repr({call}) == {value!r}\n"


def _test(base_root: Path, head_root: Path, path: str, function: str, found: list[Divergence]) -> str:
    module = module_name(path)
    if not all(p.isidentifier() for p in module.split(".")):
        return ""
    name = function.split(".")[0]
    for d in found[:3]:
        body = assertion(name, d)
        if body is None:
            continue
        test = f"test_{function.replace('.', '_')}_keeps_its_earlier_result"
        used = {n.id for n in ast.walk(ast.parse(d.call, mode="eval")) if isinstance(n, ast.Name)} | {name}
        text = f"import pytest\n\nfrom {module} import {', '.join(sorted(used))}\n\n\ndef {test}():\n{body}"
        if _passes(base_root, text) and not _passes(head_root, text):
            return text
    return ""


def _passes(root: Path, test: str) -> bool:
    name = f"test_codespark_probe_{hashlib.sha1(test.encode()).hexdigest()[:10]}.py"
    target = root / name
    target.write_text(test, encoding="utf-8")
    try:
        paths = ":".join(str(p) for p in (root / "src", root) if p.is_dir())
        command = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider --rootdir . {name}"
        return sandbox.run(command, root, _LIMITS, {"PYTHONPATH": paths}).ok
    finally:
        target.unlink(missing_ok=True)


def _patch(path: str, head_text: str, restored: str) -> str:
    lines = difflib.unified_diff(head_text.splitlines(keepends=True), restored.splitlines(keepends=True),
                                 f"a/{path}", f"b/{path}")  # fmt: skip
    return "".join(lines)
