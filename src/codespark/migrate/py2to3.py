"""Python 2 → 3, the deterministic part: lib2to3's classic fixers, through fissix (the maintained fork that
runs where ``lib2to3`` is gone).

The fixers do the syntax and the renamed APIs (print, except/raise forms, dict views and ``has_key``,
``unicode``/``basestring``, backticks, ``__nonzero__``, moved stdlib modules, implicit relative imports).
What they cannot decide is reported per module instead of guessed: ``/`` on what may be integers
(Python 2 floored them), and imports of modules removed from Python 3 (``imp``, ``asyncore``,
``distutils``…).  Every module must compile on 3.x; the project's tests run on the result at the end.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from fissix import pygram
from fissix.pgen2.parse import ParseError
from fissix.refactor import RefactoringTool, get_fixers_from_package

from codespark.migrate.recipe import Check, RecipeError, Rewrite

# lib2to3's "explicit" fixers: style changes 2to3 itself runs only on request.
_EXPLICIT = {"fissix.fixes.fix_buffer", "fissix.fixes.fix_idioms", "fissix.fixes.fix_set_literal",
             "fissix.fixes.fix_ws_comma"}  # fmt: skip
_REMOVED = (
    # gone in 3.0 and not renamed by a fixer
    "sgmllib", "htmllib", "md5", "sha", "sets", "commands", "popen2", "mimetools", "rfc822", "new", "mhlib",
    "mimify", "multifile", "posixfile", "dircache", "statvfs", "compiler", "user",
    # gone since
    "imp", "asynchat", "asyncore", "distutils", "smtpd", "imghdr", "cgi", "cgitb", "telnetlib", "nntplib",
    "pipes", "crypt", "audioop", "sndhdr", "sunau", "uu", "xdrlib", "msilib", "nis", "spwd", "ossaudiodev",
    "mailcap", "chunk", "aifc", "lib2to3",
)  # fmt: skip  # fmt: skip
_REMOVED_IMPORT = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(_REMOVED)})\b", re.MULTILINE)


class Py2ToPy3Recipe:
    """The ``py2-to-py3`` recipe: every Python module of the project, tests included."""

    name = "py2-to-py3"
    description = "lib2to3's fixers (fissix); int division and removed modules reported for review"
    checks: tuple[Check, ...] = ("compile", "tests")

    def __init__(self) -> None:
        fixers = [f for f in get_fixers_from_package("fissix.fixes") if f not in _EXPLICIT]
        self._tool = RefactoringTool(fixers)
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
            tree = self._tool.refactor_string(source, where)
        except ParseError as exc:
            raise RecipeError(f"{path} does not parse as Python 2 or 3: {exc.msg} ({exc.context[1]})") from exc
        out = str(tree)
        changed = sum(a != b for a, b in zip(out.splitlines(), source.splitlines(), strict=False))
        removed = sorted({m.group(1) for m in _REMOVED_IMPORT.finditer(out)})
        review = [f"imports {name}, removed from Python 3" for name in removed]
        divisions = _divisions(out)
        if divisions:
            review.append(f"{divisions} uses of / : Python 2 floored integers, check the intent")
        return Rewrite(out, changed, needs_model=tuple(review))


def _divisions(text: str) -> int:
    """The ``/`` operators in ``text`` (tokens, so not the slashes in strings and comments)."""
    try:
        return sum(t.type == tokenize.OP and t.string in ("/", "/=")
                   for t in tokenize.generate_tokens(io.StringIO(text).readline))  # fmt: skip
    except (tokenize.TokenError, SyntaxError):
        return 0
