"""The fix loop's prompts: one whole unit to rewrite, what failed, and what it uses."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Sequence

from codespark.engine.chat import Message

SYSTEM = (
    "You fix bugs in Python code so that failing tests pass. Reply with the complete corrected definition "
    "in one ```python code block, and nothing else. Keep its name and parameters. Do not write tests."
)


WINDOW_SYSTEM = (
    "You fix bugs in Python code so that failing tests pass. You are shown part of a long function and "
    "rewrite only the marked lines. Reply with those lines corrected, in one ```python code block, and "
    "nothing else."
)


def header(text: str, limit: int = 25) -> str:
    """The file's imports and module-level names, for context."""
    keep = [
        line
        for line in text.splitlines()
        if line.startswith(("import ", "from ")) or (line and line[0].isupper() and " = " in line[:40])
    ]
    return "\n".join(keep[:limit])


def specification(source: str) -> str | None:
    """A function's signature and docstring without its body (None for a class or code that does not
    parse): a candidate written from the specification is not anchored on the wrong code."""
    text = textwrap.dedent(source)
    try:
        node = ast.parse(text).body[0]
    except (SyntaxError, IndexError):
        return None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.body:
        return None
    lines = text.splitlines()
    first = node.body[0]
    has_doc = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    )
    end = (first.end_lineno or first.lineno) if has_doc else first.lineno - 1
    head = lines[:end]
    indent = " " * (first.col_offset or 4)
    return "\n".join([*head, f"{indent}..."])


def fix_messages(
    path: str,
    name: str,
    kind: str,
    source: str,
    file_header: str,
    failure: str,
    uses: Sequence[str],
    problems: Sequence[str],
    earlier: Sequence[str],
    spec: str | None = None,
    brief: str = "",
) -> list[Message]:
    """The chat for one rewrite of ``name``: from its code (a fix), or, given ``spec``, anew from its
    signature and docstring; ``brief`` says what the caller knows of why the tests fail."""
    parts = [_task(path, name, kind, brief)]
    if file_header:
        parts.append(f"The file starts with:\n```python\n{file_header}\n```")
    if spec is not None:
        parts.append(f"Its code is wrong. Write it anew from its specification:\n```python\n{spec.rstrip()}\n```")
    else:
        parts.append(f"The {kind} now:\n```python\n{source.rstrip()}\n```")
    uses_part = ["Definitions it uses, from the project:\n```python\n" + "\n\n".join(uses) + "\n```"] if uses else []
    parts += _evidence(problems, failure, uses_part, earlier)
    parts.append(
        f"Write the corrected `{name}` in full, in one ```python block. Keep its name and parameters; "
        "make it correct for every input the tests and its docstring describe."
    )
    return [Message("system", SYSTEM), Message("user", "\n\n".join(parts))]


def _task(path: str, name: str, kind: str, brief: str) -> str:
    return f"The tests fail. Fix the {kind} `{name}` in `{path}`." + (f" {brief}" if brief else "")


def _evidence(problems: Sequence[str], failure: str, context: list[str], earlier: Sequence[str]) -> list[str]:
    """What the static checks and the tests say, the context, and the earlier attempts, in that order."""
    parts = ["Static checks found:\n" + "\n".join(f"- {p}" for p in problems)] if problems else []
    parts += [failure, *context]
    if earlier:
        parts.append("Earlier attempts did not work:\n" + "\n".join(f"- {e}" for e in earlier))
    return parts


def window_messages(path: str, name: str, kind: str, excerpt: str, lines: tuple[int, int], failure: str,
                    problems: Sequence[str], earlier: Sequence[str], brief: str = "") -> list[Message]:  # fmt: skip
    """The chat for rewriting a window of a long unit: only the lines between the markers come back."""
    first, last = lines
    parts = [_task(path, name, kind, brief),
             f"It is long, so only lines {first}-{last} of it are to be rewritten (between the markers):\n"
             f"```python\n{excerpt}\n```"]  # fmt: skip
    parts += _evidence(problems, failure, [], earlier)
    parts.append(
        f"Write the corrected lines {first}-{last} only, in one ```python block, with their indentation; "
        "nothing before or after them, no markers."
    )
    return [Message("system", WINDOW_SYSTEM), Message("user", "\n\n".join(parts))]
