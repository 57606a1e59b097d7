"""The recipe interface: what a migration is, one module at a time.

A recipe names the modules it applies to, rewrites one module's text (deterministically; what needs the
model is reported, not guessed), and says how a rewritten module is verified.  A new migration (say,
AngularJS to React) is one new module with one class; ``docs/MIGRATE.md`` shows how.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

# compile: each module must compile; fidelity: each module's tests, the same ids with the same outcomes;
# tests: the project's tests run once on the result (code that did not run before, e.g. Python 2).
Check = Literal["compile", "fidelity", "tests"]


@dataclass(frozen=True)
class Rewrite:
    """One module after a recipe's mechanical rewrite."""

    text: str
    converted: int  # constructs rewritten
    kept: tuple[str, ...] = ()  # constructs left as they were (still valid), for the reviewer
    needs_model: tuple[str, ...] = ()  # what the recipe could not do itself
    notes: tuple[str, ...] = field(default=())


class Recipe(Protocol):
    name: str
    description: str
    checks: tuple[Check, ...]  # "compile": the module must compile; "fidelity": the same tests, same outcomes
    # Whether the model may change code after the rewrite (the fix loop, when the suite fails).  Not for a
    # recipe whose output is the tests themselves: a model that edits tests until they pass proves nothing.
    repairable: bool
    brief: str  # for the model's repairs: what the rewrite did and what is likely left (one or two sentences)
    # Interpreter flags for the test runs the repair is judged by (when the runner starts with a Python):
    # py2-to-py3 gives -bb, so that bytes meeting str fail where they meet instead of printing b'...'.
    repair_flags: tuple[str, ...]

    def applies_to(self, path: str, text: str) -> bool:
        """Whether ``path`` (relative to the project) is one of the modules this recipe migrates."""
        ...

    def rewrite(self, path: str, text: str, root: Path | None = None) -> Rewrite:
        """The module rewritten (``root``: the project's folder, when the recipe looks at other files);
        raises ``RecipeError`` when it cannot be parsed."""
        ...


class RecipeError(Exception):
    """A module the recipe cannot rewrite (it does not parse, say); the run reports it and goes on."""


def python_files(root: Path) -> list[str]:
    """The project's Python files, relative, skipping virtual environments, caches and hidden folders."""
    skip = {"venv", ".venv", "node_modules", "__pycache__", "build", "dist", "site-packages"}
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in skip or p.startswith(".") for p in parts[:-1]):
            continue
        out.append(path.relative_to(root).as_posix())
    return out
