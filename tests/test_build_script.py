"""scripts/build_llama.py: its stdout is exactly one line, the path of a built wheel.

The Makefile installs ``"$(python scripts/build_llama.py)"``, so anything else on stdout (pip's
"Looking in indexes: …" on a machine with empty caches) broke the first install.  A stand-in
pip that talks on both streams and writes a wheel runs the real build path here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_llama.py"

STAND_IN_PIP = """
import sys
from pathlib import Path
args = sys.argv[1:]
print("Looking in indexes: https://pypi.org/simple")
print("Collecting llama-cpp-python==0.3.36", file=sys.stderr)
print("Building wheel for llama-cpp-python (pyproject.toml): started")
if {fail}:
    sys.exit(1)
out = Path(args[args.index("-w") + 1])
(out / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl").write_bytes(b"PK")
print("Successfully built llama-cpp-python")
"""


def _run(tmp_path: Path, fail: bool = False) -> subprocess.CompletedProcess[str]:
    pip = tmp_path / "pip.py"
    pip.write_text(STAND_IN_PIP.format(fail=fail))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "CODESPARK_PIP": f"{sys.executable} {pip}"}
    return subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_stdout_is_one_line_naming_an_existing_wheel(tmp_path: Path) -> None:
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and proc.stdout.endswith("\n")
    wheel = Path(lines[0])
    assert wheel.is_file() and wheel.name.endswith(".whl")
    assert "Looking in indexes" in proc.stderr and "Successfully built" in proc.stderr  # pip's chatter, kept
    again = _run(tmp_path)  # cached: same single line, no build
    assert again.stdout == proc.stdout and "Building llama-cpp-python" not in again.stderr


def test_a_failed_build_prints_nothing_on_stdout_and_leaves_no_cache_entry(tmp_path: Path) -> None:
    proc = _run(tmp_path, fail=True)
    assert proc.returncode != 0 and proc.stdout == ""
    cache = tmp_path / "cache"
    assert not list(cache.rglob("*.whl")) and not list(cache.rglob("CMAKE_ARGS"))  # nothing that looks built
    assert _run(tmp_path).returncode == 0  # and the next run builds afresh
