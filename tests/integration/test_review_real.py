"""``codespark review`` and ``codespark tests`` on the real models: a PR branch with a seeded bug in a real
git repo; the review shows it (and says which line), in shadow mode; the generated tests that are kept pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.review_repos import BASE as CLAMP_BASE
from tests.review_repos import PR as CLAMP_PR
from tests.review_repos import pr_repo

pytestmark = pytest.mark.integration

BASE = {
    "inventory.py": '''def restock(levels, item, amount):
    """Add amount to the stock of item (new items start at zero); return the new level."""
    levels[item] = levels.get(item, 0) + amount
    return levels[item]


def in_stock(levels, item):
    """Whether at least one item is in stock."""
    return levels.get(item, 0) > 0
''',
}
# For codespark tests: a docstring reworded, a variable renamed, and a bug at exactly one item left.
PR = {
    "inventory.py": '''def restock(levels, item, amount):
    """Add amount to the stock of item (unknown items start at zero); return the new level."""
    levels[item] = levels.get(item, 0) + amount
    return levels[item]


def in_stock(levels, item):
    """Whether at least one item is in stock."""
    count = levels.get(item, 0)
    return count > 1
''',
}


def codespark(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codespark", *args], capture_output=True, text=True, timeout=900,
                          cwd=cwd)  # fmt: skip


def test_review_shows_the_seeded_bug(tmp_path: Path) -> None:
    # clamp's upper bound returns the lower one (line 6); area's parameters are renamed (benign).
    root = pr_repo(tmp_path / "repo", CLAMP_BASE, CLAMP_PR)
    proc = codespark("review", str(root), "--format", "json", "--sarif-output", str(tmp_path / "out.sarif"))
    assert proc.returncode == 0, proc.stderr  # shadow mode
    data = json.loads(proc.stdout)
    shown = [f for f in data["findings"] if f["shown"]]
    assert any(f["path"] == "shapes.py" and f["start"] - 3 <= 6 <= f["end"] + 3 for f in shown), data
    assert all(f["function"] != "area" for f in shown)  # the rename is not a finding
    assert json.loads((tmp_path / "out.sarif").read_text())["runs"][0]["results"]


def test_generated_tests_that_are_kept_pass(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo", BASE, PR)
    proc = codespark("tests", "inventory.py", "--repo", str(root), "--write", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for rel in data["written"]:
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", rel], cwd=root,
                             capture_output=True, text=True)  # fmt: skip
        assert run.returncode == 0, run.stdout
    assert sum(len(f["kept"]) for f in data["functions"]) >= 1
    assert data["written"] == ["tests/test_inventory_codespark.py"]
