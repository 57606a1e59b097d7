"""What changed: the unified diff between a base commit and the working tree, parsed (``unidiff``) into the
added lines per file, and the old and new text of each file.

The default base is the merge base with the default branch (GitHub's ``GITHUB_BASE_REF`` in a pull
request's workflow, else ``origin/HEAD``, ``origin/main``, ``main``…); untracked files count as added.
The user's index is never touched.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from codespark.errors import CodesparkError, InvalidRequestError

OWN = ".codespark"  # codespark's own files in a repo (the findings log): never part of a review


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the repo root, new name
    old_path: str | None  # None for an added file
    added: frozenset[int]  # 1-based line numbers in the new file
    removed_near: frozenset[int] = frozenset()  # new-file lines next to which lines were deleted
    binary: bool = False
    deleted: bool = False
    added_text: dict[int, str] = field(default_factory=dict)  # line -> text, the added lines only
    new_text: dict[int, str] = field(default_factory=dict)  # line -> text, every new-side line of the hunks
    removed_text: dict[int, list[str]] = field(default_factory=dict)  # new line -> the old lines removed before it

    def sketch(self) -> str:
        """The new file as far as the diff shows it (lines it does not show are blank)."""
        last = max(self.new_text, default=0)
        return "".join(self.new_text.get(n, "") + "\n" for n in range(1, last + 1))

    @property
    def touched(self) -> frozenset[int]:
        """Lines a finding may point at: added lines and the lines where something was deleted."""
        return self.added | self.removed_near

    @property
    def changed_lines(self) -> int:
        return len(self.added)


def parse(diff_text: str) -> list[FileChange]:
    """The files of a unified diff (``git diff`` output, or any ``---``/``+++`` patch)."""
    try:
        patch = PatchSet(diff_text)
    except UnidiffParseError as exc:
        raise InvalidRequestError(f"The diff could not be parsed: {exc}. Send a unified diff (git diff).",
                                  param="diff") from exc  # fmt: skip
    changes = []
    for patched in patch:
        path = _strip(patched.target_file) if not patched.is_removed_file else _strip(patched.source_file)
        added: set[int] = set()
        near: set[int] = set()
        text: dict[int, str] = {}
        new: dict[int, str] = {}
        removed: dict[int, list[str]] = {}
        for hunk in patched:
            last_target = hunk.target_start
            pending: list[str] = []
            for line in hunk:
                if line.target_line_no is not None and pending:
                    removed[line.target_line_no] = pending
                    pending = []
                if line.is_added and line.target_line_no is not None:
                    added.add(line.target_line_no)
                    text[line.target_line_no] = line.value.rstrip("\n")
                    last_target = line.target_line_no
                elif line.is_removed:
                    near.add(max(1, last_target))
                    pending.append(line.value.rstrip("\n"))
                elif line.target_line_no is not None:
                    last_target = line.target_line_no
                if line.target_line_no is not None:
                    new[line.target_line_no] = line.value.rstrip("\n")
            if pending:
                removed[last_target + 1] = pending
        old = None if patched.is_added_file else _strip(patched.source_file)
        changes.append(FileChange(path, old, frozenset(added), frozenset(near), patched.is_binary_file,
                                  patched.is_removed_file, text, new, removed))  # fmt: skip
    return changes


def _strip(name: str) -> str:
    for prefix in ("a/", "b/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, errors="replace", check=False)
    if check and done.returncode != 0:
        raise CodesparkError(f"git {' '.join(args[:3])} failed in {root}: {done.stderr.strip()[:400]}")
    return done


def repo_root(path: Path) -> Path:
    done = _git(path, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        raise InvalidRequestError(f"{path} is not inside a git repository: review compares against a git base.",
                                  param="path")  # fmt: skip
    return Path(done.stdout.strip())


def default_base(root: Path, env: dict[str, str] | None = None) -> str:
    """The merge base of HEAD with the default branch (HEAD itself when HEAD is on it: the working tree's
    changes are reviewed)."""
    environ = env if env is not None else dict(os.environ)
    candidates = []
    if environ.get("GITHUB_BASE_REF"):
        candidates += [f"origin/{environ['GITHUB_BASE_REF']}", environ["GITHUB_BASE_REF"]]
    if environ.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
        name = environ["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"]
        candidates += [f"origin/{name}", name]
    head = _git(root, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD", check=False).stdout.strip()
    candidates += [head] if head else []
    candidates += ["origin/main", "origin/master", "main", "master"]
    for ref in candidates:
        done = _git(root, "merge-base", "HEAD", ref, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    done = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    if done.returncode != 0:
        raise InvalidRequestError("The repository has no commit yet: commit once, or pass --base.", param="base")
    return done.stdout.strip()


def resolve(root: Path, ref: str) -> str:
    done = _git(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    if done.returncode != 0:
        raise InvalidRequestError(f"--base {ref!r} is not a commit here (fetch it first: git fetch origin {ref}).",
                                  param="base")  # fmt: skip
    return done.stdout.strip()


def working_diff(root: Path, base: str) -> str:
    """The diff from ``base`` to the working tree, untracked (not ignored) files included as added."""
    text = _git(root, "diff", "--no-color", "--no-ext-diff", "-U3", "-M", base, "--", ".", f":(exclude){OWN}").stdout
    untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard").stdout.split("\0")
    for name in filter(None, untracked):
        if name.startswith(OWN + "/"):
            continue
        done = _git(root, "diff", "--no-color", "--no-index", "--", "/dev/null", name, check=False)
        text += done.stdout
    return text


def base_text(root: Path, base: str, path: str) -> str | None:
    """``path`` as it is in ``base`` (None when it is not there)."""
    done = _git(root, "show", f"{base}:{path}", check=False)
    return done.stdout if done.returncode == 0 else None
