"""The Python monitor: after ``obj.``, only members that ``obj`` really has may be written.

Static analysis is Jedi's (a maintained library that resolves types through imports,
annotations, ``self``, constructor assignments, return annotations and inheritance, in the
repo and the installed packages).  The monitor finds the trigger points in the code written so
far and asks Jedi what may come there:

- **member access**: ``expr.`` -> the members of ``expr``'s inferred type (``py.member``);
- **imports**: ``from X import `` -> what ``X`` defines; ``import X.`` -> its submodules
  (``py.import``);
- **keyword arguments**: at an argument of a resolved call where no positional argument can come (a
  keyword was given already, or every positional slot is filled), the parameter names still open
  (``py.kwarg``; not constrained when the callee takes ``**kwargs``).  Mid-answer, only after a keyword
  argument (certain from the syntax alone); at the cursor, also by the signature.

Where Jedi resolves nothing, where the type has a ``__getattr__`` (members made at run time), in
a comment or a string, the monitor is silent.

**Latency.** Jedi can take tens to hundreds of milliseconds at a trigger, and a token must not
wait that long.  Lookups run on one worker thread (Jedi is not thread-safe), are cached by the
text before the trigger, and the sampling step waits for one at most ``budget_ms``; a lookup that
is late leaves that identifier unconstrained (and is ready for the next request at that place).
A trigger already in the prompt (the user just typed ``obj.``) is looked up at once, while the
prompt is evaluated, so it is usually ready before the first token.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from pathlib import Path

from codespark.engine.fim import FimRequest
from codespark.engine.mask import Names, is_word

_PARTIAL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RECEIVER_END = re.compile(r"[A-Za-z0-9_)\]]\s*\.\s*\Z")
_TAIL = 400  # a trigger is decided by the end of the line; never scan a long line per token
_ARGS_SCAN = 2000  # how far back an open call's parenthesis is looked for
_ARG_START = re.compile(r"[(,]\s*\Z")
_FROM_IMPORT = re.compile(r"^\s*from\s+[\w.]+\s+import\s+(?:\(\s*)?(?:[\w\s,]*,\s*)?([A-Za-z_]\w*)?\Z", re.M)
_IMPORT_DOTTED = re.compile(r"^\s*import\s+[\w.]*\.([A-Za-z_]\w*)?\Z", re.M)
_CACHE = 256
_PYTHON = (".py", ".pyi")
_HEAD_LINES = 3

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codespark-jedi")
_lookups: OrderedDict[tuple[str, str, str, bool], Future[frozenset[str] | None]] = OrderedDict()
_lock = threading.Lock()


def _in_comment_or_string(line: str) -> bool:
    """Whether the end of ``line`` is inside a comment or a one-line string (a cheap scan).

    Inside the braces of an f-string it is code again (``f"{account.`` is a member access).
    """
    quote: str | None = None
    fstring = False
    braces = 0
    i = 0
    while i < len(line):
        ch = line[i]
        if quote is None:
            if ch == "#":
                return True
            if ch in "'\"":
                quote, braces = ch, 0
                prefix = line[max(0, i - 2) : i].lower()
                fstring = prefix.endswith("f") or prefix in ("rf", "fr")
        elif fstring and ch == "{":
            if braces == 0 and line[i + 1 : i + 2] == "{":
                i += 1  # an escaped brace: still text
            else:
                braces += 1
        elif fstring and ch == "}" and braces > 0:
            braces -= 1
        elif ch == "\\":
            i += 1
        elif ch == quote and braces == 0:
            quote = None
        i += 1
    return quote is not None and braces == 0


def trigger(code: str) -> tuple[str, str] | None:
    """``(kind, partial)`` when ``code`` ends at a trigger point, ``partial`` being what of the name is written."""
    line = code[code.rfind("\n", 0, len(code)) + 1 :]
    partial_match = _PARTIAL.search(line[-_TAIL:])
    partial = partial_match.group(0) if partial_match is not None else ""
    head = line[: len(line) - len(partial)]
    if not _RECEIVER_END.search(head[-_TAIL:]) and not head.lstrip().startswith(("from ", "import ")):
        argument = argument_trigger(code)
        return ("py.kwarg", argument) if argument is not None else None  # most steps end here, cheaply
    if _in_comment_or_string(line):
        return None
    if partial and partial[0].isdigit():
        return None
    for pattern in (_FROM_IMPORT, _IMPORT_DOTTED):
        match = pattern.search(line)
        if match is not None:
            return "py.import", match.group(1) or ""
    if _RECEIVER_END.search(head[-_TAIL:]) and not re.search(r"(?<![\w.])\d+\s*\.\s*\Z", head[-_TAIL:]):
        return "py.member", partial
    return None


def argument_trigger(code: str) -> str | None:
    """The partial name when ``code`` ends at the start of a call's argument (``f(a, ``, ``f(x=1, ke``)."""
    match = _PARTIAL.search(code[-_TAIL:])
    partial = match.group(0) if match is not None else ""
    head = code[: len(code) - len(partial)]
    if not _ARG_START.search(head[-_TAIL:]) or _in_comment_or_string(head[head.rfind("\n") + 1 :]):
        return None
    return partial


def _complete(code: str, after: str, path: str | None, root: str | None) -> frozenset[str] | None:
    import jedi  # imported on first use: it loads its typeshed stubs

    line = code.count("\n") + 1
    column = len(code) - (code.rfind("\n") + 1)
    try:
        project = jedi.Project(root) if root else None
        script = jedi.Script(code + "\n" + after, path=path, project=project)
        found = {c.name for c in script.complete(line, column)}
    except Exception:  # Jedi fails on some code: an analysis failure leaves the step free
        return None
    if not found or "__getattr__" in found:
        return None  # nothing resolved, or members made at run time
    return frozenset(n for n in found if is_word(n))


def _keywords(code: str, after: str, path: str | None, root: str | None) -> frozenset[str] | None:
    """The keyword parameters still open at an argument of a call where only a keyword may come."""
    import jedi

    line = code.count("\n") + 1
    column = len(code) - (code.rfind("\n") + 1)
    given = _call_arguments(code)
    if given is None:
        return None
    positional, keywords = given
    try:
        project = jedi.Project(root) if root else None
        signatures = jedi.Script(code + "\n" + after, path=path, project=project).get_signatures(line, column)
    except Exception:
        return None
    names: set[str] = set()
    for signature in signatures:
        kinds = [str(p.kind) for p in signature.params]
        if "VAR_KEYWORD" in kinds:
            return None  # **kwargs: any name may come
        slots = sum(k in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD") for k in kinds)
        if not keywords and ("VAR_POSITIONAL" in kinds or positional < slots):
            return None  # a positional argument may still come here
        taken = {p.name for p in signature.params[:positional]} | keywords  # given by position or by name
        names |= {p.name for p, k in zip(signature.params, kinds, strict=True)
                  if k in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY") and p.name not in taken}  # fmt: skip
    return frozenset(n for n in names if is_word(n)) or None


def _call_arguments(code: str) -> tuple[int, set[str]] | None:
    """``(positional count, keyword names)`` given so far in the call whose argument ``code`` ends at."""
    depth, start = 0, None
    for i in range(len(code) - 1, max(-1, len(code) - _ARGS_SCAN), -1):
        ch = code[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                start = i
                break
            depth -= 1
    if start is None or code[start] != "(" or not re.search(r"[\w)\]]\s*\Z", code[:start]):
        return None
    text = code[start + 1 :]
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        return None  # not at the start of an argument
    keywords = {m.group(1) for p in parts if (m := re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)", p))}
    positional = sum(1 for p in parts if p.strip() and not re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)|\s*\*", p))
    return positional, keywords


def lookup(
    code: str, after: str, path: str | None, root: str | None, kind: str = "py.member"
) -> Future[frozenset[str] | None]:
    """The names at the end of ``code`` (the text up to the trigger), computed once on the Jedi thread."""
    key = (code, path or "", root or "", kind == "py.kwarg")
    with _lock:
        future = _lookups.get(key)
        if future is None:
            work = _keywords if kind == "py.kwarg" else _complete
            future = _executor.submit(work, code, after, path, root)
            _lookups[key] = future
            while len(_lookups) > _CACHE:
                _lookups.popitem(last=False)
        return future


class PythonMonitor:
    """Members, importable names and keyword names at the trigger points of Python written after ``before``."""

    def __init__(
        self,
        before: str,
        after: str = "",
        path: Path | None = None,
        root: Path | None = None,
        budget_ms: float = 30.0,
        imports: bool = True,
    ) -> None:
        self.before = before
        self.imports = imports
        self.after = after
        self.path = str(path) if path else None
        self.root = str(root) if root else None
        self.budget_s = budget_ms / 1000
        self.late = 0  # triggers whose lookup missed the budget (left unconstrained)
        self._waited: set[str] = set()
        found = trigger(before)
        if found is not None:  # the user just typed the trigger: look it up while the prompt is evaluated
            head = before[: len(before) - len(found[1])]
            if found[0] != "py.kwarg" or _call_arguments(head) is not None:
                lookup(head, after, self.path, self.root, found[0])

    def names(self, text: str) -> Names | None:
        code = self.before + text
        found = trigger(code)
        if found is None:
            return None
        kind, partial = found
        if kind != "py.member" and not self.imports:
            return None
        head = code[: len(code) - len(partial)]
        if kind == "py.kwarg":
            given = _call_arguments(head)
            if given is None or (len(head) > len(self.before) and not given[1]):
                return None  # not a call; or, mid-answer, no keyword yet (a signature lookup per comma costs too much)
        future = lookup(head, self.after, self.path, self.root, kind)
        if not future.done():
            if head in self._waited:
                return None  # already late at this trigger: do not wait at every step
            self._waited.add(head)
        try:
            names = future.result(timeout=self.budget_s)
        except FutureTimeout:
            self.late += 1
            return None
        except Exception:  # an analysis failure must never fail a completion
            return None
        if names is None:
            return None
        return Names(names, partial, kind, required=kind != "py.kwarg")


@lru_cache(maxsize=32)
def _disk_text(path: Path, mtime_ns: int, size: int) -> str:
    """A file's text, read again only when it changed (a keystroke costs a ``stat``, not a read)."""
    return path.read_text(errors="replace")


def buffer_before(path: Path, window: str) -> str:
    """The file on disk above the editor's prefix window, joined to the window (imports resolve types).

    The window is located by its first complete lines; when they are not found (the file changed
    on disk, or the window starts at the top), the window alone.
    """
    lines = window.split("\n")
    head = "\n".join(lines[:_HEAD_LINES])
    if len(lines) <= _HEAD_LINES or not head.strip():
        return window
    try:
        stat = path.stat()
        text = _disk_text(path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        return window
    at = text.find(head)
    return text[:at] + window if at > 0 else window


def for_fim(req: FimRequest, root: Path | None, budget_ms: float, imports: bool = True) -> PythonMonitor | None:
    """The monitor for a completion in a Python file (or a file of unknown name), else None."""
    if req.filename is not None and not req.filename.endswith(_PYTHON):
        return None
    path = (root / req.filename) if root is not None and req.filename else None
    inside = path is not None and root is not None and path.resolve().is_relative_to(root.resolve())
    before = buffer_before(path, req.prefix) if path is not None and inside and path.is_file() else req.prefix
    return PythonMonitor(before, req.suffix, path if inside else None, root, budget_ms, imports)
