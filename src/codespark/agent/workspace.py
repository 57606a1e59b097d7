"""Where a fix runs: a git worktree of the user's repo (or a temp copy when it is not one), holding the
user's tree exactly as it is, uncommitted and untracked files included.  The user's tree, index and
stash are never touched until ``apply``.

- Each round is a commit on a ``codespark/fix-…`` branch, for inspection.
- ``apply`` writes the changed files atomically (all or none) and refuses when the user changed any of
  them since the run started.
- A run killed at any moment leaves its worktree behind with the dead process's id; the next run
  removes it (``clean_stale``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from codespark.errors import ApplyConflictError, CodesparkError, InvalidRequestError

# Dependency folders a test run needs but git ignores: linked (read-only use) into the worktree.
_LINKED = ("node_modules", ".venv", "venv", "env", "target")
_COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", *_LINKED)
_GIT_ID = ["-c", "user.name=codespark", "-c", "user.email=codespark@localhost", "-c", "commit.gpgsign=false"]


def _git(cwd: Path, *args: str, check: bool = True) -> str:
    # errors="replace": a diff of a Latin-1 file is not UTF-8, and must not crash the run.
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace", check=False)
    if check and done.returncode != 0:
        raise CodesparkError(f"git {' '.join(args[:2])} failed in {cwd}: {done.stderr.strip()[:500]}")
    return done.stdout


def _git_root(path: Path) -> Path | None:
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        return None
    has_head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=path, capture_output=True,
                              check=False).returncode == 0  # fmt: skip
    return Path(done.stdout.strip()) if has_head else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


@dataclass
class Workspace:
    source: Path  # the directory the user named (inside ``top`` for a git repo)
    top: Path  # the user's repo root (== source for a temp copy)
    copy_top: Path  # the worktree or copy root
    branch: str | None  # None for a temp copy of a directory that is not a git repo
    baseline: str  # the commit holding the user's tree as it was
    holder: Path  # the folder that holds this run (worktree, lock), removed by close()
    worktree: bool = True  # a git worktree of the user's repo (False: a temp copy)

    @property
    def root(self) -> Path:
        """Where the tests run: the copy of ``source``."""
        return self.copy_top / self.source.relative_to(self.top)

    @property
    def prefix(self) -> str:
        """``source`` relative to the repo root ('' when they are the same), for paths in diffs."""
        rel = str(self.source.relative_to(self.top))
        return "" if rel == "." else rel + "/"

    @classmethod
    def open(cls, source: Path, cache_dir: Path, kind: str = "fix", at: str | None = None,
             branch: bool = True) -> Workspace:  # fmt: skip
        """A worktree (or temp copy) of ``source`` on a ``codespark/<kind>-<id>`` branch (detached when not
        ``branch``), holding the user's tree as it is, or commit ``at`` as it was (a git repo only)."""
        source = source.resolve()
        if not source.is_dir():
            raise InvalidRequestError(f"{source} is not a directory. Pass the project's root.", param="path")
        runs = cache_dir / "fix"
        runs.mkdir(parents=True, exist_ok=True)
        top = _git_root(source)
        is_git = top is not None
        if top is not None:
            clean_stale(runs, top)
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        holder = runs / run_id
        holder.mkdir()
        (holder / "pid").write_text(f"{os.getpid()}\n{top or ''}\n")
        copy_top = holder / "tree"
        try:
            name: str | None = None
            if top is not None:
                _git(top, "worktree", "add", "--quiet", "--detach", str(copy_top), at or "HEAD")
                if at is None:
                    _sync(top, copy_top)
                if branch:
                    name = f"codespark/{kind}-{run_id}"
                    _git(copy_top, "switch", "--quiet", "-c", name)
            elif at is not None:
                raise InvalidRequestError(f"{source} is not a git repository: there is no commit {at} to open.")
            else:
                top = source
                shutil.copytree(source, copy_top, ignore=_COPY_IGNORE, symlinks=True)
                _git(copy_top, "init", "--quiet")
            _link_dependencies(top, copy_top)
            _git(copy_top, "add", "-A")
            _git(copy_top, *_GIT_ID, "commit", "--quiet", "--no-verify", "--allow-empty", "-m",
                 f"codespark {kind}: the tree as it was (uncommitted changes included)")  # fmt: skip
            baseline = _git(copy_top, "rev-parse", "HEAD").strip()
        except BaseException:
            _remove(holder, top)
            raise
        return cls(source, top, copy_top, name, baseline, holder, worktree=is_git)

    def write(self, path: str, text: str, encoding: str = "utf-8") -> None:
        """Write one file of the copy (``path`` relative to ``root``)."""
        target = self.root / path
        _atomic_write(target, text.encode(encoding), _mode(target))

    def read(self, path: str, encoding: str = "utf-8") -> str:
        return (self.root / path).read_text(encoding=encoding)

    def commit(self, message: str) -> str:
        _git(self.copy_top, "add", "-A")
        _git(self.copy_top, *_GIT_ID, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message)
        return _git(self.copy_top, "rev-parse", "HEAD").strip()

    def changed(self, since: str | None = None) -> list[str]:
        """Files (relative to the repo root) the run changed (since the commit ``since``, when given)."""
        out = _git(self.copy_top, "diff", "--name-only", since or self.baseline, "HEAD")
        return [line for line in out.splitlines() if line]

    def diff(self, since: str | None = None) -> str:
        return _git(self.copy_top, "diff", since or self.baseline, "HEAD")

    def apply(self) -> list[str]:
        """Put the fix into the user's tree: every changed file or none.  Refuses (``ApplyConflictError``) when
        the user changed one of them since the run started."""
        changed = self.changed()
        conflicts = []
        for rel in changed:
            before = subprocess.run(["git", "show", f"{self.baseline}:{rel}"], cwd=self.copy_top, capture_output=True,
                                    check=False)  # fmt: skip
            expected = hashlib.sha256(before.stdout).hexdigest() if before.returncode == 0 else None
            if _digest(self.top / rel) != expected:
                conflicts.append(rel)
        if conflicts:
            where = f" The fix is kept on branch {self.branch}." if self.branch else ""
            raise ApplyConflictError(
                f"Not applied: {', '.join(conflicts)} changed since the fix started, and your version wins.{where} "
                "Run codespark fix again to fix the new version."
            )
        staged: list[tuple[Path, Path]] = []
        try:
            for rel in changed:
                target = self.top / rel
                new = self.copy_top / rel
                if not new.exists():
                    continue  # the fix never deletes files; nothing to stage
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".codespark", dir=target.parent)
                with os.fdopen(fd, "wb") as out:
                    out.write(new.read_bytes())
                os.chmod(name, _mode(target) or _mode(new) or 0o644)
                staged.append((Path(name), target))
            originals = {target: target.read_bytes() if target.exists() else None for _, target in staged}
            done: list[Path] = []
            try:
                for tmp, target in staged:  # each rename is atomic; a failure part-way undoes the ones before
                    os.replace(tmp, target)
                    done.append(target)
            except OSError:
                for target in done:
                    data = originals[target]
                    if data is None:
                        target.unlink(missing_ok=True)
                    else:
                        _atomic_write(target, data, _mode(target))
                raise
        finally:
            for tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        return changed

    def close(self) -> None:
        """Remove the worktree or copy (the branch, holding the rounds, stays)."""
        _remove(self.holder, self.top if self.worktree else None)


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return None


def _atomic_write(target: Path, data: bytes, mode: int | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".codespark", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sync(top: Path, copy: Path) -> None:
    """Make the worktree hold the user's working tree: modified, deleted and untracked (not ignored) files."""
    listed = _git(top, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, dict.fromkeys(listed)):
        src, dst = top / name, copy / name
        if src.is_symlink():
            dst.unlink(missing_ok=True)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif not src.exists() and (dst.is_file() or dst.is_symlink()):
            dst.unlink()  # deleted in the user's tree, not yet committed


def _link_dependencies(top: Path, copy: Path) -> None:
    for name in _LINKED:
        src, dst = top / name, copy / name
        if src.is_dir() and not dst.exists():
            os.symlink(src, dst)
            exclude = copy / ".git" if (copy / ".git").is_dir() else None
            if exclude is not None:  # a temp copy: keep the link out of the round commits
                info = exclude / "info"
                info.mkdir(exist_ok=True)
                with (info / "exclude").open("a") as out:
                    out.write(f"/{name}\n")


def _remove(holder: Path, top: Path | None) -> None:
    tree = holder / "tree"
    if top is not None and tree.exists():
        subprocess.run(["git", "worktree", "remove", "--force", "--force", str(tree)], cwd=top, capture_output=True,
                       check=False)  # fmt: skip
    shutil.rmtree(holder, ignore_errors=True)
    if top is not None:
        subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True, check=False)


def clean_stale(runs: Path, top: Path | None = None) -> int:
    """Remove the worktrees of runs whose process is gone (killed, or crashed).  Returns how many."""
    removed = 0
    for holder in runs.iterdir() if runs.is_dir() else ():
        pid_file = holder / "pid"
        try:
            pid_text, repo = [*pid_file.read_text().splitlines(), "", ""][:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            if time.time() - holder.stat().st_mtime < 60:
                continue  # being created right now
            pid, repo = 0, ""
        if pid and _alive(pid):
            continue
        _remove(holder, Path(repo) if repo else top)
        removed += 1
    return removed
