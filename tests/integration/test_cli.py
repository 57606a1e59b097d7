"""The CLI end to end on the real small model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def codespark(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codespark", *args], capture_output=True, text=True, timeout=300, input=stdin
    )


def test_complete_at_a_file_position(tmp_path: Path) -> None:
    source = tmp_path / "stats.py"
    source.write_text("def average(values):\n    total = sum(values)\n    \n    return result\n")
    proc = codespark("complete", str(source), "--line", "3", "--max-tokens", "32")
    assert proc.returncode == 0, proc.stderr
    assert "result" in proc.stdout and "return result" not in proc.stdout


def test_chat_streams_an_answer() -> None:
    proc = codespark("chat", "-", "--model", "spark", "--max-tokens", "16", stdin="Say hello.")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_models_lists_the_catalog_and_state() -> None:
    proc = codespark("models")
    assert proc.returncode == 0, proc.stderr
    assert "qwen2.5-coder-0.5b-instruct" in proc.stdout and "ready" in proc.stdout


def test_bad_flag_value_is_a_clear_error(tmp_path: Path) -> None:
    proc = codespark("complete", str(tmp_path / "missing.py"), "--line", "1")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


def test_unknown_engine_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    proc = codespark("complete", str(source), "--line", "1", "--model", "gpt")
    assert proc.returncode == 2
    assert "Unknown engine" in proc.stderr
