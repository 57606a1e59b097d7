"""Real git repos in temp dirs for the fix loop's tests, and a scripted sampler."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from codespark.engine.backend import SamplingParams
from codespark.engine.chat import Message

CALC = {
    "calc/__init__.py": "",
    "calc/ops.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/test_ops.py": (
        "from calc.ops import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(2, 3) == 6\n"
    ),
}
FIXED_ADD = "```python\ndef add(a, b):\n    return a + b\n```"


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


def make_repo(root: Path, files: dict[str, str] = CALC, commit: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    if commit:
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return root


def tree_state(root: Path) -> str:
    """A digest of everything a user could lose: every file outside .git, the index, stash and HEAD."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if ".git" not in p.relative_to(root).parts and p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    git_dir = root / ".git"
    if git_dir.is_dir():
        h.update((git_dir / "index").read_bytes() if (git_dir / "index").exists() else b"")
        h.update(git(root, "stash", "list").encode())
        h.update(git(root, "rev-parse", "HEAD").encode())
        h.update(git(root, "status", "--porcelain").encode())
    return h.hexdigest()


class Scripted:
    """A sampler that answers from a script, and records every prompt it was shown."""

    name = "scripted"

    def __init__(self, answers: Sequence[str], delay_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []
        self.delay_s = delay_s

    async def sample(self, messages: Sequence[Message], params: SamplingParams) -> str:
        import asyncio

        self.prompts.append("\n".join(m.content for m in messages))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self.answers.pop(0) if self.answers else "I cannot help with that."

    async def sample_many(self, messages: Sequence[Message], params: Sequence[SamplingParams]) -> list[str]:
        return [await self.sample(messages, p) for p in params]
