"""Python 2 → 3: deterministic rewrites first, then the model where the tests still fail.

1. lib2to3's classic fixers, through fissix (the maintained fork that runs where ``lib2to3`` is gone): the
   syntax and the renamed APIs (print, except/raise forms, dict views and ``has_key``, ``unicode``/
   ``basestring``, backticks, ``__nonzero__``, moved stdlib modules, implicit relative imports).
2. What the fixers leave but has one meaning (``py3semantics``): ``__cmp__`` ordering, ``cmp=`` sorts and
   the ``cmp`` builtin.
3. pyupgrade to Python 3.8 syntax (``super()``, set literals, ``OSError``, f-strings where safe…).
4. Reported per module, not guessed: ``/`` on what may be integers (Python 2 floored them), and imports of
   modules removed from Python 3 (``imp``, ``asyncore``, ``distutils``…).

Every module must compile on 3.x; the project's tests run on the result at the end.  When they fail (or a
module does not compile), the fix loop repairs the code with the model (``repairable``): bytes vs str,
the division's intent, what a removed module did.
"""

from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path

from fissix import pygram
from fissix.pgen2.parse import ParseError
from fissix.refactor import RefactoringTool, get_fixers_from_package

from codespark.migrate import py3semantics
from codespark.migrate.recipe import Check, RecipeError, Rewrite, python_files

PYUPGRADE_TARGET = "--py38-plus"

# lib2to3's "explicit" fixers: style changes 2to3 itself runs only on request.
_EXPLICIT = {"fissix.fixes.fix_buffer", "fissix.fixes.fix_idioms", "fissix.fixes.fix_set_literal",
             "fissix.fixes.fix_ws_comma"}  # fmt: skip
# fix_next renames every ``x.next`` to ``x.__next__``: right for an iterator's method (``it.next`` passed
# around), wrong for a data attribute (a linked list's ``node.next``).  A module that assigns to ``.next``
# has such an attribute, and so does every module of its project (its tests read ``node.next``): they get
# the fixers without fix_next (py3semantics does the iterator protocol).
_FIX_NEXT = "fissix.fixes.fix_next"
_NEXT_ASSIGNED = re.compile(r"\.next\s*=(?!=)")
_REMOVED = (
    # gone in 3.0 and not renamed by a fixer
    "sgmllib", "htmllib", "md5", "sha", "sets", "commands", "popen2", "mimetools", "rfc822", "new", "mhlib",
    "mimify", "multifile", "posixfile", "dircache", "statvfs", "compiler", "user",
    # gone since
    "imp", "asynchat", "asyncore", "distutils", "smtpd", "imghdr", "cgi", "cgitb", "telnetlib", "nntplib",
    "pipes", "crypt", "audioop", "sndhdr", "sunau", "uu", "xdrlib", "msilib", "nis", "spwd", "ossaudiodev",
    "mailcap", "chunk", "aifc", "lib2to3",
)  # fmt: skip  # fmt: skip
# Removed modules that a maintained package on PyPI brings back under the same name.
_PORTS = {"sgmllib": "sgmllib3k", "asyncore": "pyasyncore", "asynchat": "pyasynchat", "distutils": "setuptools"}
_REMOVED_IMPORT = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(_REMOVED)})\b", re.MULTILINE)


class Py2ToPy3Recipe:
    """The ``py2-to-py3`` recipe: every Python module of the project, tests included."""

    name = "py2-to-py3"
    description = "lib2to3's fixers (fissix), __cmp__/cmp, pyupgrade; then the model until the tests pass"
    checks: tuple[Check, ...] = ("compile", "tests")
    repairable = True
    brief = (
        "The code was written for Python 2 and converted by 2to3's fixers; it now runs on Python 3, so fix what "
        "still assumes Python 2: bytes vs str (str has no .decode, bytes literals need b''), integer division "
        "(// where Python 2 floored), removed methods and modules, keyword-only or reserved names. The tests run "
        "under python -bb: a BytesWarning marks where bytes met str (decode the bytes, or keep text)."
    )
    repair_flags: tuple[str, ...] = ("-bb",)

    def __init__(self) -> None:
        fixers = [f for f in get_fixers_from_package("fissix.fixes") if f not in _EXPLICIT]
        self._tool = RefactoringTool(fixers)
        self._tool_keeping_next = RefactoringTool([f for f in fixers if f != _FIX_NEXT])
        self._grammar = pygram.python_grammar

    def applies_to(self, path: str, text: str) -> bool:
        return True

    def rewrite(self, path: str, text: str, root: Path | None = None) -> Rewrite:
        if not text.strip():
            return Rewrite(text, 0)
        source = text if text.endswith("\n") else text + "\n"
        # The file's real location: the relative-import fixer looks beside it for the modules it imports.
        where = str(root / path) if root is not None else path
        try:
            tool = self._tool_keeping_next if _assigns_next(source, root) else self._tool
            tree = tool.refactor_string(source, where)
        except ParseError as exc:
            raise RecipeError(f"{path} does not parse as Python 2 or 3: {exc.msg} ({exc.context[1]})") from exc
        out, dropped = _drop_constant_parameters(str(tree))
        out, semantic = py3semantics.rewrite(out)
        semantic += dropped
        out = _pyupgrade(out)
        changed = semantic + sum(a != b for a, b in zip(out.splitlines(), source.splitlines(), strict=False))
        removed = sorted({m.group(1) for m in _REMOVED_IMPORT.finditer(out)})
        ports = {name: f" (the {_PORTS[name]} package provides it)" for name in removed if name in _PORTS}
        review = [f"imports {name}, removed from Python 3{ports.get(name, '')}" for name in removed]
        divisions = _divisions(out)
        if divisions:
            review.append(f"{divisions} uses of / : Python 2 floored integers, check the intent")
        return Rewrite(out, changed, needs_model=tuple(review))


def _assigns_next(source: str, root: Path | None) -> bool:
    """Whether the module or any module of its project assigns a ``.next`` attribute."""
    if _NEXT_ASSIGNED.search(source):
        return True
    if root is None:
        return False
    # Read once per state of the project, not once per module: keyed on each file's size and mtime.
    files = tuple((path, (root / path).stat()) for path in python_files(root))
    return _project_assigns_next(root, tuple((p, s.st_size, s.st_mtime_ns) for p, s in files))


@functools.lru_cache(maxsize=16)
def _project_assigns_next(root: Path, files: tuple[tuple[str, int, int], ...]) -> bool:
    return any(_NEXT_ASSIGNED.search((root / path).read_text(errors="replace")) for path, _, _ in files)


def _drop_constant_parameters(text: str) -> tuple[str, int]:
    """Python 2's speed trick ``def f(x, True=True, long=long):`` (builtins bound as locals) does not compile
    on 3: ``True``/``False``/``None`` are keywords, and the fixers make ``long=long`` a second ``int=int``.
    Those parameters are dropped (the same values: constants, or the builtin the first one binds)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text, 0
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(position: tuple[int, int]) -> int:
        return offsets[position[0] - 1] + position[1]

    cuts: list[tuple[int, int]] = []
    bound: set[str] = set()  # the def's ``name=name`` parameters so far
    depth = 0  # parentheses inside a def's parameter list
    for i, token in enumerate(tokens):
        if token.string == "def" and i + 2 < len(tokens) and tokens[i + 2].string == "(":
            depth = -1  # the next "(" opens the parameters
            bound = set()
        elif token.string == "(" and depth != 0:
            depth = 1 if depth == -1 else depth + 1
        elif token.string == ")" and depth > 0:
            depth -= 1
        elif depth == 1 and token.type == tokenize.NAME and i + 2 < len(tokens):
            if tokens[i + 1].string != "=" or tokens[i + 2].string != token.string or tokens[i - 1].string == "=":
                continue
            if token.string in ("True", "False", "None") or token.string in bound:
                last = tokens[i + 3] if i + 3 < len(tokens) and tokens[i + 3].string == "," else tokens[i + 2]
                cuts.append((at(token.start), at(last.end)))
            bound.add(token.string)
    for start, end in reversed(cuts):
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        if not text[line_start:start].strip() and not text[end:line_end].strip():
            text = text[:line_start] + text[line_end + 1 :]  # the parameter had its own line: the line goes
        else:
            text = text[:start] + text[end:].lstrip(" ")
    return text, len(cuts)


def _pyupgrade(text: str) -> str:
    """``text`` after pyupgrade (unchanged when it does not compile: pyupgrade only reads valid Python 3)."""
    try:
        compile(text, "<module>", "exec", dont_inherit=True)
    except SyntaxError:
        return text
    fd, name = tempfile.mkstemp(suffix=".py", prefix="codespark-pyupgrade-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
        command = [sys.executable, "-m", "pyupgrade", PYUPGRADE_TARGET, "--exit-zero-even-if-changed", name]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            return text
        upgraded = Path(name).read_text(encoding="utf-8", errors="surrogateescape")
    finally:
        os.unlink(name)
    return _keep_coding(text, upgraded)


_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def _keep_coding(before: str, after: str) -> str:
    """``after`` with ``before``'s encoding declaration (pyupgrade drops it, but the file is written back in
    the encoding it declares, e.g. Latin-1)."""
    head = before.splitlines(keepends=True)[:2]
    for i, line in enumerate(head):
        if _CODING.match(line):
            lines = after.splitlines(keepends=True)
            if line not in lines[:2]:
                lines.insert(min(i, len(lines)), line)
            return "".join(lines)
    return after


def _divisions(text: str) -> int:
    """The ``/`` operators in ``text`` (tokens, so not the slashes in strings and comments)."""
    try:
        return sum(t.type == tokenize.OP and t.string in ("/", "/=")
                   for t in tokenize.generate_tokens(io.StringIO(text).readline))  # fmt: skip
    except (tokenize.TokenError, SyntaxError):
        return 0
