"""``codespark migrate --recipe unittest-to-pytest``: the codemod's semantics, the import-order plan, the
fidelity check catching a lost test, and the run in a real git repo with real pytest runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from codespark.agent.workspace import Workspace
from codespark.migrate.plan import order
from codespark.migrate.recipe import Rewrite
from codespark.migrate.run import Event, Migration, fidelity
from codespark.migrate.unittest_pytest import UnittestToPytestRecipe, convert
from tests.fix_repos import git, make_repo, tree_state


def collect(migration: Migration) -> list[Event]:
    """A migration's events, run to the end."""

    async def events() -> list[Event]:
        return [e async for e in migration.events()]

    return asyncio.run(events())


SUITE = '''"""Tests of the shapes module."""
import math
import unittest

from shapes import area, parse


class ShapeTests(unittest.TestCase):
    def setUp(self):
        self.side = 3

    def test_area(self):
        self.assertEqual(area(self.side), 9)
        self.assertNotEqual(area(2), 5, "two squared is four")
        self.assertTrue(area(1) == 1)
        self.assertFalse(area(0) or area(0))
        self.assertIn(area(2), [4, 8])
        self.assertIsInstance(area(2), int)
        self.assertGreater(area(3), area(2))
        self.assertAlmostEqual(math.sqrt(area(2)), 2.0)
        self.assertAlmostEqual(0.1 + 0.2, 0.3, places=9)
        self.assertAlmostEqual(10.0, 10.4, delta=0.5)
        self.assertNotAlmostEqual(1.0, 1.1)
        self.assertAlmostEqual(float("inf"), float("inf"))
        self.assertCountEqual([area(1), area(2)], [4, 1])

    def test_parse_errors(self):
        with self.assertRaises(ValueError) as cm:
            parse("x")
        self.assertIn("not a side", str(cm.exception))
        self.assertRaises(ValueError, parse, "-1")
        with self.assertRaisesRegex(ValueError, "not a side"):
            parse("y")

    @unittest.skipIf(sys.platform == "win32", "posix only")
    def test_skipif(self):
        self.assertIsNone(None)

    @unittest.skip("not yet")
    def test_skipped(self):
        self.fail("never runs")

    @unittest.skipUnless(False, "never on")
    def test_skip_unless(self):
        self.fail("never runs")

    @unittest.expectedFailure
    def test_known_bug(self):
        self.assertEqual(area(-2), 0)

    def test_a_failing_one(self):
        self.assertEqual(area(2), 5)


if __name__ == "__main__":
    unittest.main()
'''
FILES = {
    "shapes.py": (
        "def area(side):\n    return side * side\n\n\n"
        "def parse(text):\n    if not text.lstrip('-').isdigit() or int(text) < 0:\n"
        "        raise ValueError(f'{text!r} is not a side')\n    return int(text)\n"
    ),
    "tests/__init__.py": "",
    "tests/helpers.py": "import unittest\n\n\nclass Base(unittest.TestCase):\n    pass\n",
    "tests/test_shapes.py": SUITE.replace("import unittest\n", "import sys\nimport unittest\n", 1),
    "tests/test_more.py": (
        "import unittest\n\nfrom tests.helpers import Base\n\n\nclass MoreTests(Base):\n"
        "    def test_one(self):\n        self.assertEqual(1, 1)\n"
    ),
}


def _outcomes(root: Path) -> dict[str, str]:
    """Each test's outcome, by pytest's own junit report (independent of the code under test)."""
    report = root / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
                   cwd=root, capture_output=True, check=False)  # fmt: skip
    import xml.etree.ElementTree as ET

    out = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kind = next((c.tag for c in case), "passed")
        out[f"{case.get('classname')}.{case.get('name')}"] = kind
    report.unlink()
    return out


def test_the_codemod_keeps_every_outcome(tmp_path: Path) -> None:
    """The converted suite runs to the same outcome per test as the original (skips, the expected failure
    and the failing test included), judged by pytest's own junit report."""
    before_root = make_repo(tmp_path / "before", FILES, commit=False)
    after_root = make_repo(tmp_path / "after", FILES, commit=False)
    text, report = convert((after_root / "tests/test_shapes.py").read_text())
    (after_root / "tests/test_shapes.py").write_text(text)
    assert "self.assert" not in text.replace("self.assertCountEqual", "")
    assert report.kept == ["assertCountEqual (line 26)"] and report.converted >= 18
    assert "import pytest" in text and "pytest.raises(ValueError, match=" in text and "cm.value" in text
    before, after = _outcomes(before_root), _outcomes(after_root)
    assert before == after and len(before) == 8
    assert list(before.values()).count("skipped") == 3  # 2 skips, and the expected failure


FIXTURE_SUITE = """import os
import unittest

LOG = os.path.join(os.path.dirname(__file__), "order.log")


def note(text):
    with open(LOG, "a") as out:
        out.write(text + "\\n")


class Paired(unittest.TestCase):
    def setUp(self):
        note("setUp")
        self.value = 1

    def tearDown(self):
        note("tearDown")

    def test_passes(self):
        note("test")
        self.assertEqual(self.value, 1)

    def test_fails(self):
        self.assertEqual(self.value, 2)


class BrokenSetUp(unittest.TestCase):
    def setUp(self):
        raise RuntimeError("no database")

    def tearDown(self):
        note("never")

    def test_never_runs(self):
        pass


class Base(unittest.TestCase):
    def setUp(self):
        self.base = True


class Derived(Base):
    def setUp(self):
        super().setUp()
        self.derived = True

    def test_both(self):
        self.assertTrue(self.base and self.derived)
"""


def test_setup_and_teardown_become_a_fixture_where_nothing_depends_on_them(tmp_path: Path) -> None:
    files = {"tests/__init__.py": "", "tests/test_fixtures.py": FIXTURE_SUITE}
    before_root = make_repo(tmp_path / "before", files, commit=False)
    after_root = make_repo(tmp_path / "after", files, commit=False)
    text, _ = convert(FIXTURE_SUITE)
    (after_root / "tests/test_fixtures.py").write_text(text)
    assert text.count("@pytest.fixture(autouse=True)") == 0  # this module calls super().setUp(): all stay
    alone = FIXTURE_SUITE[: FIXTURE_SUITE.index("class Base(")]
    text, _ = convert(alone)
    assert text.count("@pytest.fixture(autouse=True)") == 2 and "def setUp" not in text
    (before_root / "tests/test_fixtures.py").write_text(alone)
    (after_root / "tests/test_fixtures.py").write_text(text)
    before, after = _outcomes(before_root), _outcomes(after_root)
    # A set-up that raises fails its test either way; pytest files it as an error at set-up (E, not F).
    broken = "tests.test_fixtures.BrokenSetUp.test_never_runs"
    assert before.pop(broken) == "failure" and after.pop(broken) == "error"
    assert before == after and len(before) == 2 and list(before.values()).count("passed") == 1
    order = [(r / "tests/order.log").read_text().split() for r in (before_root, after_root)]
    assert order[0] == order[1] and "never" not in order[1]  # same order; no tear-down after a failed set-up


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("self.assertEqual(a or b, c)", "assert (a or b) == c"),
        ("self.assertTrue(x, msg='m')", "assert x, 'm'"),
        ("self.assertFalse(a == b)", "assert not (a == b)"),
        ("self.assertIsNotNone(f(x))", "assert f(x) is not None"),
        ("self.assertNotIsInstance(x, (int, str))", "assert not isinstance(x, (int, str))"),
        ("self.assertLessEqual(len(x), 3)", "assert len(x) <= 3"),
        ("self.assertTrue(x for x in y)", "assert (x for x in y)"),  # a generator needs its own parentheses
        ('self.assertTrue(ok, "a %s"\n                        % (b,))', 'assert ok, ("a %s"'),  # over two lines
        ("self.assertEqual(*pair)", "self.assertEqual(*pair)"),  # not a fixed arity: kept
        ("self.assertEqual(a, b, c, d)", "self.assertEqual(a, b, c, d)"),
        ("x = self.assertTrue(y)", "x = self.assertTrue(y)"),  # not a statement of its own
    ],
)
def test_assert_forms(line: str, expected: str) -> None:
    text, _ = convert(f"class T:\n    def test(self):\n        {line}\n")
    compile(text, "t.py", "exec")
    assert text.splitlines()[2].strip() == expected


def test_the_plan_follows_the_import_graph() -> None:
    texts = {
        "tests/test_more.py": "from tests.helpers import Base\n",
        "tests/helpers.py": "import unittest\n",
        "tests/test_a.py": "from . import helpers\n",
        "tests/test_b.py": "import tests.test_more\n",
    }
    plan = order(texts)
    assert plan.index("tests/helpers.py") < plan.index("tests/test_more.py") < plan.index("tests/test_b.py")
    assert plan.index("tests/helpers.py") < plan.index("tests/test_a.py")


def test_fidelity_names_every_difference() -> None:
    before = {"t.py::A::a": "passed", "t.py::A::b": "failed", "t.py::A::c": "skipped", "u.py::x": "passed"}
    after = {"t.py::A::a": "passed", "t.py::A::b": "passed", "t.py::A::d": "passed", "u.py::x": "failed"}
    problems = fidelity(before, after, "t.py")
    assert problems == ["lost t.py::A::c (skipped before)", "new test t.py::A::d (passed)",
                        "t.py::A::b: failed before, passed after"]  # fmt: skip


def test_a_run_migrates_a_repo_and_leaves_the_users_tree_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    (repo / "notes.txt").write_text("uncommitted work\n")
    before = tree_state(repo)
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, UnittestToPytestRecipe(), None))
        finished = events[-1].data
        assert events[0].data["modules"] == ["tests/helpers.py", "tests/test_shapes.py", "tests/test_more.py"]
        assert finished["status"] == "migrated", json.dumps(finished)[:2000]
        assert set(finished["verified"]) == {"tests/test_more.py", "tests/test_shapes.py"}
        assert finished["unchanged"] == ["tests/helpers.py"]
        assert tree_state(repo) == before  # nothing in the user's tree until apply
        assert "codespark/migrate-" in (finished["branch"] or "")
        log = git(ws.copy_top, "log", "--format=%s")
        assert "migrate unittest-to-pytest: tests/test_shapes.py" in log
        changed = ws.apply()
    finally:
        ws.close()
    assert sorted(changed) == ["tests/test_more.py", "tests/test_shapes.py"]
    assert "assert area(self.side) == 9" in (repo / "tests/test_shapes.py").read_text()
    assert (repo / "notes.txt").read_text() == "uncommitted work\n"


class DropsATest(UnittestToPytestRecipe):
    """A recipe with a bug: it loses a test while converting."""

    def rewrite(self, path: str, text: str, root: Path | None = None) -> Rewrite:
        done = super().rewrite(path, text, root)
        return Rewrite(done.text.replace("def test_skipif", "def helper_skipif"), done.converted)


def test_a_migration_that_drops_a_test_is_caught_and_the_module_restored(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, DropsATest(), None))
        module = next(e.data for e in events if e.kind == "module" and e.data["path"] == "tests/test_shapes.py")
        assert module["status"] == "failed" and "lost tests/test_shapes.py::ShapeTests::test_skipif" in module["reason"]
        assert ws.read("tests/test_shapes.py") == (repo / "tests/test_shapes.py").read_text()  # put back
        assert events[-1].data["status"] == "partial" and "tests/test_shapes.py" not in events[-1].data["changed"]
    finally:
        ws.close()


def test_the_cli_migrates_and_applies(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    env_cache = {"CODESPARK_CACHE_DIR": str(tmp_path / "cache")}
    import os

    done = subprocess.run([sys.executable, "-m", "codespark", "migrate", str(repo), "--recipe", "unittest-to-pytest",
                           "--json", "--apply"], capture_output=True, text=True, env={**os.environ, **env_cache},
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events][:2] == ["plan", "baseline"] and events[-1]["event"] == "applied"
    assert next(e for e in events if e["event"] == "finished")["status"] == "migrated"
    assert "assert area(self.side) == 9" in (repo / "tests/test_shapes.py").read_text()
    bad = subprocess.run([sys.executable, "-m", "codespark", "migrate", str(repo), "--recipe", "nope"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "unittest-to-pytest" in bad.stderr


PY2 = {
    "inventory.py": (
        "import imp\n\n\ndef totals(stock):\n    out = {}\n    for name, count in stock.iteritems():\n"
        "        if not out.has_key(name):\n            out[name] = 0\n        out[name] += count\n"
        "    print 'counted', len(out)\n    return out\n\n\ndef label(x):\n    return unicode(x)\n\n\n"
        "def half(n):\n    return n / 2\n"
    ),
    "tests/test_inventory.py": (
        "import unittest\nfrom inventory import totals, label\n\n\nclass T(unittest.TestCase):\n"
        "    def test_totals(self):\n        try:\n            self.assertEqual(totals({'a': 2}), {'a': 2})\n"
        "        except KeyError, e:\n            raise AssertionError, str(e)\n\n"
        "    def test_label(self):\n        self.assertEqual(label(3), u'3')\n"
    ),
}


def test_py2_code_is_migrated_and_its_tests_run_on_python3(tmp_path: Path) -> None:
    from codespark.migrate.py2to3 import Py2ToPy3Recipe

    repo = make_repo(tmp_path / "repo", PY2)
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, Py2ToPy3Recipe(), None))
        modules = {e.data["path"]: e.data for e in events if e.kind == "module"}
        suite = next(e.data for e in events if e.kind == "suite")
        assert (
            modules["inventory.py"]["status"] == "verified"
            and modules["tests/test_inventory.py"]["status"] == "verified"
        )
        review = " ".join(modules["inventory.py"]["needs_model"])
        assert "imp, removed" in review and "uses of /" in review  # reported, not guessed
        assert suite["ok"] and suite["outcomes"] == {"passed": 2}
        text = ws.read("inventory.py")
        assert "stock.items()" in text and "name not in out" in text and "print('counted', len(out))" in text
        assert events[-1].data["status"] == "migrated"
    finally:
        ws.close()


def test_a_module_that_does_not_parse_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    from codespark.migrate.py2to3 import Py2ToPy3Recipe

    repo = make_repo(tmp_path / "repo", {"bad.py": "def f(:\n", "good.py": "print 'x'\n"})
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, Py2ToPy3Recipe(), None))
        modules = {e.data["path"]: e.data for e in events if e.kind == "module"}
        assert modules["bad.py"]["status"] == "failed" and "does not parse" in modules["bad.py"]["reason"]
        assert modules["good.py"]["status"] == "verified" and events[-1].data["status"] == "partial"
    finally:
        ws.close()


def test_py2_package_with_implicit_relative_imports_and_a_latin1_source(tmp_path: Path) -> None:
    from codespark.migrate.py2to3 import Py2ToPy3Recipe

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg/__init__.py").write_text("")
    (repo / "pkg/helper.py").write_bytes("# -*- coding: latin-1 -*-\nNAME = u'caf\xe9'\n".encode("latin-1"))
    (repo / "pkg/main.py").write_text("import helper\n\n\ndef name():\n    return helper.NAME\n")
    (repo / "test_pkg.py").write_text(
        "from pkg.main import name\n\n\ndef test_name():\n    assert name() == u'caf\\xe9'\n"
    )
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, Py2ToPy3Recipe(), None))
        assert "from . import helper" in ws.read("pkg/main.py")
        assert "pkg/__init__.py" not in events[-1].data["changed"]  # an empty module stays as it is
        assert (ws.root / "pkg/helper.py").read_bytes().decode("latin-1").endswith("NAME = 'caf\xe9'\n")
        suite = next(e.data for e in events if e.kind == "suite")
        assert suite["ok"] and suite["outcomes"] == {"passed": 1}, suite
    finally:
        ws.close()


def test_http_migrate_streams_events_for_a_configured_workspace_only(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from codespark.config import Settings, WorkspaceSettings
    from codespark.engine.engine import Engine
    from codespark.engine.fake import FakeBackend
    from codespark.engine.loader import Engines
    from codespark.server.app import create_app
    from tests.helpers import sse_payloads

    repo = make_repo(tmp_path / "repo", FILES)
    engine = Engine(FakeBackend())
    settings = Settings(cache_dir=tmp_path / "cache", workspaces=[WorkspaceSettings(name="shapes", path=repo)])
    with TestClient(create_app(settings, Engines(routes={"spark": engine, "codex": engine})),
                    base_url="http://localhost") as client:  # fmt: skip
        r = client.post("/v1/migrate", json={"workspace": "shapes", "recipe": "unittest-to-pytest"})
        assert r.status_code == 200
        kinds = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
        assert kinds[:2] == ["plan", "baseline"] and kinds[-1] == "finished"
        final = [p for p in sse_payloads(r.text) if isinstance(p, dict)][-1]
        assert final["status"] == "migrated" and r.text.rstrip().endswith("[DONE]")
        assert client.post("/v1/migrate", json={"workspace": "nope", "recipe": "py2-to-py3"}).status_code == 404
        assert client.post("/v1/migrate", json={"workspace": "shapes", "recipe": "x"}).status_code == 400
        forbidden = client.post("/v1/migrate", json={"workspace": "shapes", "recipe": "py2-to-py3", "apply": True})
        assert forbidden.status_code == 403
    assert "self.assertEqual" in (repo / "tests/test_shapes.py").read_text()  # no apply: the tree is as it was


class CrashesOnTheSecond(UnittestToPytestRecipe):
    """A run that dies (a crash, ``kill -9``) after a module was verified."""

    def __init__(self) -> None:
        self.seen = 0

    def rewrite(self, path: str, text: str, root: Path | None = None) -> Rewrite:
        self.seen += 1
        if self.seen == 3:  # helpers.py (unchanged), test_shapes.py (verified), then test_more.py
            raise SystemExit("killed")
        return super().rewrite(path, text, root)


def test_a_crashed_run_resumes_without_redoing_verified_modules(tmp_path: Path) -> None:
    from codespark.migrate.run import MigrateOptions

    repo = make_repo(tmp_path / "repo", FILES)
    journal = tmp_path / "cache" / "migrate" / "run.jsonl"
    options = MigrateOptions(journal=journal)
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        with pytest.raises(SystemExit):
            collect(Migration(ws, CrashesOnTheSecond(), None, options))
    finally:
        ws.close()
    assert journal.exists()
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, UnittestToPytestRecipe(), None, options))
        modules = {e.data["path"]: e.data for e in events if e.kind == "module"}
        assert "earlier run" in modules["tests/test_shapes.py"]["reason"]  # the first module that changed
        assert (
            modules["tests/test_more.py"]["status"] == "verified"
            and "earlier" not in modules["tests/test_more.py"]["reason"]
        )
        assert events[-1].data["status"] == "migrated" and not journal.exists()
    finally:
        ws.close()
