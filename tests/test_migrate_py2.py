"""``py2-to-py3`` beyond the fixers: the rewrites with one meaning (``__cmp__``, ``cmp``), the tests the
original defines checked against what ran, the model's repair through the fix loop (a scripted sampler,
real git repos, real pytest runs), and the final report."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import unittest
from pathlib import Path
from typing import Any

from codespark.agent.loop import FixOptions
from codespark.agent.testrun import TestCommand
from codespark.agent.workspace import Workspace
from codespark.migrate.py2to3 import Py2ToPy3Recipe
from codespark.migrate.py3semantics import rewrite
from codespark.migrate.report import markdown, summary
from codespark.migrate.run import Migration, defined_tests, with_interpreter_flags
from codespark.services.migrate import FixLoopRepair
from tests.fix_repos import Scripted, make_repo, tree_state
from tests.test_migrate import collect


def run(text: str) -> dict[str, Any]:
    """The names a rewritten module defines, after running it."""
    namespace: dict[str, Any] = {}
    exec(compile(text, "m.py", "exec"), namespace)
    return namespace


def test_cmp_ordering_and_cmp_sorts_keep_their_python2_meaning() -> None:
    source = (
        "class Version(object):\n    def __init__(self, n):\n        self.n = n\n\n"
        "    def __cmp__(self, other):\n        return cmp(self.n, other.n)\n\n\n"
        "def newest_first(vs):\n    vs.sort(lambda a, b: cmp(b, a))\n    return vs\n\n\n"
        "def by_length(words):\n    return sorted(words, cmp=lambda a, b: cmp(len(a), len(b)))\n"
    )
    out, changed = rewrite(source)
    assert changed == 4 and "import functools" in out
    namespace = run(out)
    version: Any = namespace["Version"]
    a, b = version(1), version(2)
    assert a < b and b >= a and a == version(1) and a != b and sorted([b, a]) == [a, b]
    assert len({a, b}) == 2  # still hashable, as in Python 2
    assert [v.n for v in namespace["newest_first"]([a, b])] == [2, 1]
    assert namespace["by_length"](["ccc", "a", "bb"]) == ["a", "bb", "ccc"]
    already = (
        "class V:\n    def __cmp__(self, o):\n        return 0\n\n    def __lt__(self, o):\n        return False\n"
    )
    assert rewrite(already) == (already, 0)  # a class with its own rich comparisons is left alone


def test_the_tests_an_original_defines_are_read_from_python2_source() -> None:
    text = (
        "import unittest\n\n\nclass Base(unittest.TestCase):\n    def testOne(self):\n        print 'x'\n\n\n"
        "class More(Base):\n    def test_two(self):\n        pass\n\n\nclass Mixin(object):\n"
        "    def test_not_collected(self):\n        pass\n\n\ndef test_plain():\n    assert 1\n"
    )
    assert defined_tests({"t.py": text}) == {"t.py": {"Base::testOne", "More::test_two", "test_plain"}}


# fissix turns the prints and the except form; `/` stays (Python 2 floored it): the model's part.
PY2_DIVISION = {
    "pages.py": (
        'def middle(items):\n    """The middle item (the left one of two)."""\n'
        "    print 'items', len(items)\n    return items[(len(items) - 1) / 2]\n"
    ),
    "tests/test_pages.py": (
        "import unittest\nfrom pages import middle\n\n\nclass T(unittest.TestCase):\n"
        "    def test_odd(self):\n        self.assertEqual(middle([1, 2, 3]), 2)\n\n"
        "    def test_even(self):\n        self.assertEqual(middle([1, 2, 3, 4]), 2)\n"
    ),
}
FIXED_MIDDLE = (
    '```python\ndef middle(items):\n    """The middle item (the left one of two)."""\n'
    "    print('items', len(items))\n    return items[(len(items) - 1) // 2]\n```"
)


def test_the_model_repairs_what_the_fixers_leave_failing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", PY2_DIVISION)
    before = tree_state(repo)
    sampler = Scripted(["```python\ndef middle(items):\n    return items[0]\n```", FIXED_MIDDLE])
    repair = FixLoopRepair([sampler], None, FixOptions(rounds=2, candidates=2, mutants=0))  # `/` → `//`: the model
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, Py2ToPy3Recipe(), None, repair=repair))
        kinds = [e.kind for e in events]
        assert "repair" in kinds and kinds.index("repair") < kinds.index("suite")
        suite = next(e.data for e in events if e.kind == "suite")
        assert suite["ok"] and suite["outcomes"] == {"passed": 2} and suite["defined"] == 2 and not suite["lost"]
        done = events[-1].data
        assert done["status"] == "migrated" and done["model_changed"] == ["pages.py"]
        assert "+    return items[(len(items) - 1) // 2]" in done["model_diff"]
        assert "TypeError" in sampler.prompts[0] or "integer" in sampler.prompts[0]  # the failure was shown
        report = markdown(summary(events))
        assert "What the model changed" in report and "`pages.py` | verified" in report
    finally:
        ws.close()
    assert tree_state(repo) == before  # no --apply: the user's tree is as it was


def test_the_repair_runs_under_bb_so_bytes_fail_where_they_meet_str(tmp_path: Path) -> None:
    """Python 2's encode() gave a str; on 3 it is bytes, formatted as b'...' with no error anywhere.  Under
    ``python -bb`` the run fails at the line where the bytes meet text, and that is what the model sees."""
    files = {
        "tags.py": (
            "def safe(s):\n    return s.encode('ascii', 'xmlcharrefreplace')\n\n\n"
            "def element(name, value):\n    return '<%s>%s</%s>' % (name, safe(value), name)\n"
        ),
        "tests/test_tags.py": (
            "import unittest\nfrom tags import element\n\n\nclass T(unittest.TestCase):\n"
            "    def test_element(self):\n        self.assertEqual(element('a', u'caf\\xe9'), '<a>caf&#233;</a>')\n"
        ),
    }
    fixed = "```python\ndef element(name, value):\n    return '<%s>%s</%s>' % (name, safe(value).decode(), name)\n```"
    sampler = Scripted([fixed])
    repo = make_repo(tmp_path / "repo", files)
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        repair = FixLoopRepair([sampler], None, FixOptions(rounds=1, candidates=1, mutants=0))
        events = collect(Migration(ws, Py2ToPy3Recipe(), None, repair=repair))
        assert "BytesWarning: str() on a bytes instance" in sampler.prompts[0]
        assert "def element(name, value):" in sampler.prompts[0]  # localized where bytes met str
        assert events[-1].data["status"] == "migrated"
    finally:
        ws.close()
    script = TestCommand("pytest", "pytest -x", "given")
    assert with_interpreter_flags(script, ("-bb",)) == script  # a script takes no interpreter flags
    python = with_interpreter_flags(TestCommand("pytest", f"{sys.executable} -m pytest", "found"), ("-bb",))
    assert python.command == f"{sys.executable} -bb -m pytest"


def test_a_module_the_fixers_leave_uncompilable_is_repaired_or_put_back(tmp_path: Path) -> None:
    files = {
        # `async` became a keyword in 3.7; no fixer renames it.
        "fast.py": "def scale(xs, k):\n    async = False\n    return [x * k for x in xs]\n",
        "tests/test_fast.py": "from fast import scale\n\n\ndef test_scale():\n    assert scale([1, 2], 3) == [3, 6]\n",
    }
    fixed = "```python\ndef scale(xs, k):\n    return [x * k for x in xs]\n```"
    for answers, status in (([fixed], "repaired"), ([], "failed")):
        repo = make_repo(tmp_path / status, files)
        repair = FixLoopRepair([Scripted(answers)], None, FixOptions(rounds=1, candidates=1))
        ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
        try:
            events = collect(Migration(ws, Py2ToPy3Recipe(), None, repair=repair))
            modules = [e.data for e in events if e.kind == "module" and e.data["path"] == "fast.py"]
            assert modules[0]["status"] == "needs-repair" and modules[-1]["status"] == status, (status, modules)
            if status == "failed":  # put back as it was, and said so
                assert ws.read("fast.py") == files["fast.py"] and "did not fix" in modules[-1]["reason"]
                assert events[-1].data["status"] != "migrated"
            else:
                assert events[-1].data["status"] == "migrated" and events[-1].data["repaired"] == ["fast.py"]
        finally:
            ws.close()


def test_tests_that_no_longer_run_are_reported_as_lost(tmp_path: Path) -> None:
    files = {
        "lib.py": "def one():\n    return 1\n",
        # compiler: removed in Python 3.0, with no port (sgmllib has one, which may be installed here).
        "tests/test_lib.py": (
            "import unittest\nimport compiler\nfrom lib import one\n\n\nclass T(unittest.TestCase):\n"
            "    def test_one(self):\n        self.assertEqual(one(), 1)\n"
        ),
    }
    repo = make_repo(tmp_path / "repo", files)
    ws = Workspace.open(repo, tmp_path / "cache", kind="migrate")
    try:
        events = collect(Migration(ws, Py2ToPy3Recipe(), None))
        suite = next(e.data for e in events if e.kind == "suite")
        assert not suite["ok"] and suite["lost"] == ["tests/test_lib.py::T::test_one"]
        assert any("not collected" in p for p in events[-1].data["suite_problems"])
    finally:
        ws.close()


def test_the_cli_writes_the_report_without_a_model(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "print 'hi'\n", "test_a.py": "def test_a():\n    import a\n"})
    for name in ("report.md", "report.json"):
        out = tmp_path / name
        done = subprocess.run([sys.executable, "-m", "codespark", "migrate", str(repo), "--recipe", "py2-to-py3",
                               "--engine", "none", "--report", str(out)], capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        text = out.read_text()
        if name.endswith(".json"):
            data = json.loads(text)
            assert data["status"] == "migrated" and data["suite"]["outcomes"] == {"passed": 1}
            assert next(m for m in data["modules"] if m["path"] == "a.py")["diff_lines"] == 2
        else:
            assert text.startswith("# Migration report: py2-to-py3") and "| `a.py` | verified |" in text
    bad = subprocess.run([sys.executable, "-m", "codespark", "migrate", str(repo), "--recipe", "py2-to-py3",
                          "--engine", "gpt"], capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "none" in bad.stderr


def test_removed_stdlib_names_with_an_exact_successor_are_renamed() -> None:
    source = (
        "import base64\nimport cgi\nimport string\nimport sys\n\n\ndef f(s, words):\n"
        "    return (string.lower(s), string.join(words), string.join(words, '-'), string.replace(s + 'x', 'a', 'b'),\n"
        "            base64.decodestring(b'aGk='), sys.maxint, string.letters[:2], cgi.escape('<\"a\">'),\n"
        "            string.atoi('7'))\n"
    )
    out, changed = rewrite(source)
    assert changed == 9 and "import html" in out and "string.lower" not in out
    namespace = run(out)
    assert namespace["f"]("AbA", ["x", "y"]) == (
        "aba", "x y", "x-y", "AbAx".replace("a", "b"), b"hi", sys.maxsize, "ab", '&lt;"a"&gt;', 7,
    )  # fmt: skip
    shadowed = "def string_tools(string):\n    return string.lower(string)\n"  # no `import string`: not the module
    assert rewrite(shadowed) == (shadowed, 0)


def test_python2_only_idioms_that_do_not_compile_or_run_on_3_are_rewritten() -> None:
    from codespark.migrate.py2to3 import Py2ToPy3Recipe

    source = (
        "def constants():\n    return '7FF8'.decode('hex'), 'abc'.encode('rot13'), u'x'.encode('utf-8')\n\n\n"
        "def fast(items, key,\n        ## hand-optimized: builtins as locals\n        True=True,\n"
        "        isinstance=isinstance,\n        basestring=basestring,\n        str=str,\n    ):\n"
        "    return [i for i in items if isinstance(i, basestring) and True]\n"
    )
    out = Py2ToPy3Recipe().rewrite("m.py", source).text
    namespace = run(out)
    assert namespace["constants"]() == (b"\x7f\xf8", "nop", b"x")
    assert namespace["fast"](["a", 1], None) == ["a"] and "True=True" not in out and out.count("str=str") == 1


def test_collection_errors_reach_the_prompt_without_the_import_machinery(tmp_path: Path) -> None:
    from codespark.agent.localize import Project, feedback, localize
    from codespark.agent.sandbox import Limits
    from codespark.agent.testrun import detect

    files = {
        "pkg/__init__.py": "from pkg.core import VALUE\n",
        "pkg/core.py": "def make():\n    return 'ab'.decode('hex')\n\n\nVALUE = make()\n",
    }
    files |= {f"tests/test_{n}.py": "import pkg\n\n\ndef test_it():\n    assert pkg.VALUE\n" for n in ("a", "b", "c")}
    root = make_repo(tmp_path / "r", files)
    report = detect(root).run(root, Limits(timeout_s=120))
    project = Project(root)
    target = localize(report, project)[0]
    text = feedback(report, project, target.unit)
    assert target.unit.name == "make" and "(3 test modules fail this way)" in text
    assert "AttributeError: 'str' object has no attribute 'decode'" in text and "<frozen importlib" not in text
    assert "Raised in make at line 2 of it: `return 'ab'.decode('hex')`" in text


def test_next_is_renamed_for_iterators_and_kept_for_data_attributes() -> None:
    from codespark.migrate.py2to3 import Py2ToPy3Recipe

    linked = (
        "class Node(object):\n    def __init__(self, value):\n        self.value = value\n"
        "        self.next = None\n\n\n"
        "def values(node):\n    while node is not None:\n        yield node.value\n        node = node.next\n"
    )
    iterating = "def firsts(items):\n    it = iter(items)\n    get = it.next\n    return get(), it.next()\n"
    recipe = Py2ToPy3Recipe()
    namespace = run(recipe.rewrite("a.py", linked).text + recipe.rewrite("b.py", iterating).text)
    a, b = namespace["Node"](1), namespace["Node"](2)
    a.next = b
    assert list(namespace["values"](a)) == [1, 2] and namespace["firsts"]("xy") == ("x", "y")


def test_a_projects_next_data_attribute_is_kept_in_its_other_modules(tmp_path: Path) -> None:
    """The tests of a linked list read ``node.next`` without assigning it: the library's assignment decides."""
    (tmp_path / "nodes.py").write_text("class Node(object):\n    def __init__(self):\n        self.next = None\n")
    reader = "def second(node):\n    return node.next\n"
    (tmp_path / "test_nodes.py").write_text(reader)
    recipe = Py2ToPy3Recipe()
    assert "node.next" in recipe.rewrite("test_nodes.py", reader, tmp_path).text
    assert "node.__next__" in recipe.rewrite("other.py", reader).text  # alone, an iterator's method


def test_str_and_repr_return_text_by_default_and_unicode_becomes_str() -> None:
    source = (
        "class Doc(object):\n    def __init__(self, text):\n        self.text = text\n\n"
        "    def __str__(self, encoding='utf-8'):\n        if encoding:\n"
        "            return self.text.encode(encoding)\n        return self.text\n\n"
        "    def __repr__(self, encoding='utf-8'):\n        return self.__str__(encoding)\n\n\n"
        "class Name(object):\n    def __unicode__(self):\n        return 'n\\xe9'\n"
    )
    out, changed = rewrite(source)
    assert changed == 3
    namespace = run(out)
    doc = namespace["Doc"]("caf\xe9")
    assert str(doc) == "caf\xe9" and repr(doc) == "caf\xe9" and doc.__str__("utf-8") == b"caf\xc3\xa9"
    assert str(namespace["Name"]()) == "n\xe9"
    plain = "class P(object):\n    def __str__(self, encoding=None):\n        return ''\n"
    assert rewrite(plain) == (plain, 0)


def test_hasattr_iter_still_tells_a_list_from_a_string() -> None:
    source = (
        "def names(spec):\n    if hasattr(spec, '__iter__'):\n        return list(spec)\n    return [spec]\n\n\n"
        "def first(spec):\n    return hasattr(spec.items(), '__iter__')\n"
    )
    out, changed = rewrite(source)
    assert changed == 1  # spec.items() is a call: read twice it could differ, so it is left alone
    names = run(out)["names"]
    assert names("ab") == ["ab"] and names(b"ab") == [b"ab"] and names(("a", "b")) == ["a", "b"]


def test_a_testcase_override_of_a_type_assert_gets_the_msg_unittest_passes() -> None:
    source = (
        "import unittest\n\n\nclass TestCase(unittest.TestCase):\n    def assertListEqual(self, a, b):\n"
        "        unittest.TestCase.assertListEqual(self, sorted(a), sorted(b))\n\n\n"
        "class T(TestCase):\n    def test_lists(self):\n        self.assertEqual([2, 1], [1, 2])\n"
    )
    out, changed = rewrite(source)
    assert changed == 1 and "def assertListEqual(self, a, b, msg=None):" in out
    namespace = run(out)
    result = unittest.TextTestRunner(stream=io.StringIO()).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(namespace["T"])
    )
    assert result.wasSuccessful()
    plain = "class Helper(object):\n    def assertListEqual(self, a, b):\n        pass\n"
    assert rewrite(plain) == (plain, 0)  # not a TestCase: left alone


def test_a_resume_journal_belongs_to_one_version_of_the_recipes(tmp_path: Path, monkeypatch: Any) -> None:
    from codespark.services import migrate as service

    key = service._key(tmp_path, "py2-to-py3")
    assert key == service._key(tmp_path, "py2-to-py3") and key != service._key(tmp_path, "unittest-to-pytest")
    monkeypatch.setattr(service, "__version__", "9.9.9")
    assert service._key(tmp_path, "py2-to-py3") != key  # another codespark: its journal is not resumed
