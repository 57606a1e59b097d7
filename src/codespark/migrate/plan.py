"""The order of a migration: modules along the project's import graph, leaves first."""

from __future__ import annotations

import ast
from collections.abc import Mapping


def module_name(path: str) -> str:
    """``pkg/sub/mod.py`` → ``pkg.sub.mod`` (``src/`` dropped, ``__init__`` is the package)."""
    parts = path.removesuffix(".py").split("/")
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(text: str, name: str) -> set[str]:
    """The modules ``text`` (the module ``name``) imports, absolute; empty when it does not parse."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    found: set[str] = set()
    package = name.rsplit(".", 1)[0] if "." in name else ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def order(texts: Mapping[str, str]) -> list[str]:
    """The paths of ``texts`` in dependency order: a module after the project modules it imports (cycles
    are broken by path order), each level sorted by path."""
    names = {module_name(p): p for p in texts}
    deps = {p: {names[i] for i in imports(t, module_name(p)) if i in names and names[i] != p}
            for p, t in texts.items()}  # fmt: skip
    done: list[str] = []
    placed: set[str] = set()
    while len(done) < len(texts):
        ready = sorted(p for p in texts if p not in placed and deps[p] <= placed)
        if not ready:  # a cycle: take the first remaining module
            ready = [min(p for p in texts if p not in placed)]
        for p in ready:
            done.append(p)
            placed.add(p)
    return done
