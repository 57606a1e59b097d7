"""The fix loop's prompts: one whole unit to rewrite, what failed, and what it uses."""

from __future__ import annotations

from collections.abc import Sequence

from codespark.engine.chat import Message

SYSTEM = (
    "You fix bugs in Python code so that failing tests pass. Reply with the complete corrected definition "
    "in one ```python code block, and nothing else. Keep its name and parameters. Do not write tests."
)


def header(text: str, limit: int = 25) -> str:
    """The file's imports and module-level names, for context."""
    keep = [
        line
        for line in text.splitlines()
        if line.startswith(("import ", "from ")) or (line and line[0].isupper() and " = " in line[:40])
    ]
    return "\n".join(keep[:limit])


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
) -> list[Message]:
    """The chat for one rewrite of ``name``."""
    parts = [f"The tests fail. Fix the {kind} `{name}` in `{path}`."]
    if file_header:
        parts.append(f"The file starts with:\n```python\n{file_header}\n```")
    parts.append(f"The {kind} now:\n```python\n{source.rstrip()}\n```")
    if problems:
        parts.append("Static checks found:\n" + "\n".join(f"- {p}" for p in problems))
    parts.append(failure)
    if uses:
        parts.append("Definitions it uses, from the project:\n```python\n" + "\n\n".join(uses) + "\n```")
    if earlier:
        parts.append("Earlier attempts did not work:\n" + "\n".join(f"- {e}" for e in earlier))
    parts.append(
        f"Write the corrected `{name}` in full, in one ```python block. Keep its name and parameters; "
        "make it correct for every input the tests and its docstring describe."
    )
    return [Message("system", SYSTEM), Message("user", "\n\n".join(parts))]
