"""Real git repos for the review's tests: ``main`` holds the base, the checked-out ``pr`` branch the change;
and a scripted model (``Scripted``) for the unit tests."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codespark.engine.chat import Message

ID = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]

BASE = {
    "shapes.py": '''def clamp(value, low, high):
    """Limit value to the range [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def area(width, height):
    return width * height
''',
    "pyproject.toml": '[project]\nname = "shapes"\ndependencies = ["requests>=2"]\n',
}
# A benign rename in area, and a seeded bug in clamp (the upper bound returns the lower one).
PR = {
    "shapes.py": '''def clamp(value, low, high):
    """Limit value to the range [low, high]."""
    if value < low:
        return low
    if value > high:
        return low
    return value


def area(w, h):
    return w * h
''',
}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *ID, *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def pr_repo(root: Path, base: dict[str, str] = BASE, pr: dict[str, str] = PR, commit: bool = True) -> Path:
    """``main`` with ``base``; branch ``pr`` with ``pr`` on top (committed, or left in the working tree)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write(root, base)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    git(root, "switch", "-qc", "pr")
    write(root, pr)
    if commit:
        git(root, "add", "-A")
        git(root, "commit", "-qm", "pr")
    return root


class Scripted:
    """The review's model, scripted: findings JSON for review prompts, calls for call prompts."""

    def __init__(self, findings: dict[str, list[dict[str, Any]]] | None = None,
                 calls: dict[str, list[str]] | None = None) -> None:  # fmt: skip
        self.findings = findings or {}
        self.calls = calls or {}
        self.asked: list[str] = []

    async def ask(self, messages: Sequence[Message], max_tokens: int, schema: dict[str, Any] | None = None) -> str:
        prompt = "\n".join(str(m.content) for m in messages)
        self.asked.append(prompt)
        if schema is not None:
            for name, items in self.findings.items():
                if f"`{name}`" in prompt:
                    return json.dumps({"findings": items})
            return '{"findings": []}'
        for name, calls in self.calls.items():
            if f"form `{name}(" in prompt or f"form `{name}" in prompt:
                return "```python\n" + "\n".join(calls) + "\n```"
        return "```python\n```"


def env_without_tokens() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
