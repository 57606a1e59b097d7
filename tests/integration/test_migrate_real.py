"""``codespark migrate --recipe py2-to-py3`` end to end on the real codex model: a Python 2 module and its
unittest suite in a real git repo; the fixers do the syntax, the model repairs what only tests show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fix_repos import git, make_repo

pytestmark = pytest.mark.integration

# The fixers turn the print statement, has_key and the except form; `/` stays (Python 2 floored it on
# ints): on Python 3 `pages` returns 2.5 and `chunk` slices with a float. Only the tests say so.
PY2_PAGER = {
    "pager/__init__.py": "",
    "pager/pages.py": (
        "def pages(count, per_page):\n"
        '    """How many pages hold `count` items, `per_page` to a page (a partial page counts)."""\n'
        "    full = count / per_page\n"
        "    if count % per_page:\n"
        "        full += 1\n"
        "    return full\n\n\n"
        "def chunk(items, per_page, page):\n"
        '    """The items on page `page` (0-based)."""\n'
        "    seen = {}\n"
        "    if not seen.has_key(page):\n"
        "        print 'page', page\n"
        "    return items[page * per_page:(page + 1) * per_page]\n"
    ),
    "tests/test_pages.py": (
        "import unittest\n\nfrom pager.pages import chunk, pages\n\n\nclass PagesTest(unittest.TestCase):\n"
        "    def test_exact(self):\n        self.assertEqual(pages(10, 5), 2)\n\n"
        "    def test_partial(self):\n        self.assertEqual(pages(11, 5), 3)\n"
        "        self.assertIsInstance(pages(11, 5), int)\n\n"
        "    def test_chunk(self):\n        self.assertEqual(chunk(range(7), 3, 2), range(6, 7))\n"
    ),
}


def test_py2_module_and_suite_are_migrated_and_the_model_repairs_the_division(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", PY2_PAGER)
    (root / "NOTES.md").write_text("uncommitted\n")
    report = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, "-m", "codespark", "migrate", str(root), "--recipe", "py2-to-py3",
                           "--engine", "codex", "--rounds", "3", "--candidates", "3", "--mutants", "0", "--json",
                           "--apply", "--report", str(report)],
                          capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    suite = [e for e in events if e["event"] == "suite"][-1]
    assert suite["ok"] and suite["outcomes"] == {"passed": 3} and suite["defined"] == 3 and not suite["lost"]
    finished = next(e for e in events if e["event"] == "finished")
    assert finished["status"] == "migrated" and "pager/pages.py" in finished["model_changed"]
    assert any(e["event"] == "repair" and e["step"] == "best" for e in events)
    text = (root / "pager/pages.py").read_text()
    assert "print(" in text and "has_key" not in text and "count / per_page" not in text
    assert "tests/test_pages.py" not in finished["model_changed"]  # the model never edits the tests
    assert subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root).returncode == 0
    assert (root / "NOTES.md").read_text() == "uncommitted\n"
    assert "What the model changed beyond the deterministic rewrites" in report.read_text()
    status = git(root, "status", "--porcelain").splitlines()
    assert " M pager/pages.py" in status and "?? NOTES.md" in status
