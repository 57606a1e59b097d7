"""The self-healing loop's library on real git repos, real pytest runs and a scripted sampler."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from codespark.agent import sandbox, static
from codespark.agent.edit import RefusedEdit, replace_unit
from codespark.agent.localize import Project, is_test_path, localize, units_of
from codespark.agent.loop import Event, FixLoop, FixOptions
from codespark.agent.sandbox import Limits
from codespark.agent.testrun import detect
from codespark.agent.workspace import Workspace
from codespark.errors import ApplyConflictError, ContextLengthExceededError, InvalidRequestError
from tests.fix_repos import CALC, FIXED_ADD, Scripted, git, make_repo, tree_state


def run_loop(root: Path, cache: Path, sampler: Scripted, **options: object) -> tuple[list[Event], Workspace]:
    workspace = Workspace.open(root, cache)
    options.setdefault("mutants", 0)  # these tests script the model; test_single_token_* cover the mutants
    loop = FixLoop(workspace, detect(root), [sampler], FixOptions(**options))  # type: ignore[arg-type]

    async def collect() -> list[Event]:
        return [e async for e in loop.events()]

    return asyncio.run(collect()), workspace


# --- sandbox -------------------------------------------------------------------------------------------


def test_sandbox_kills_an_endless_command_and_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    started = time.perf_counter()
    result = sandbox.run(f"(sleep 3; touch {marker}) & while true; do :; done", tmp_path, Limits(timeout_s=1))
    assert result.timed_out and result.returncode is None and not result.ok
    assert time.perf_counter() - started < 5
    time.sleep(3.5)
    assert not marker.exists()  # the whole process group went


def test_sandbox_caps_output_keeping_head_and_tail(tmp_path: Path) -> None:
    result = sandbox.run("echo FIRST; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo LAST", tmp_path,
                         Limits(output_bytes=8192))  # fmt: skip
    assert result.truncated and "FIRST" in result.output and "LAST" in result.output
    assert len(result.output) < 20000


def test_sandbox_environment_is_minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    result = sandbox.run('echo "key=${OPENAI_API_KEY:-none} home=$HOME"', tmp_path)
    assert "key=none" in result.output
    assert str(Path.home()) not in result.output.split("home=")[1]


def test_sandbox_memory_limit(tmp_path: Path) -> None:
    result = sandbox.run(f"{sys.executable} -c \"b = bytearray(3 * 2**30)\"", tmp_path,
                         Limits(memory_bytes=512 * 2**20))  # fmt: skip
    assert result.returncode != 0 and "MemoryError" in result.output


@pytest.mark.skipif(not sandbox.network_isolation(), reason="unshare cannot create a network namespace here")
def test_sandbox_has_no_network(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')"
        isolated = sandbox.run(f'{sys.executable} -c "{code}"', tmp_path)
        allowed = sandbox.run(f'{sys.executable} -c "{code}"', tmp_path, Limits(network=True))
    assert "CONNECTED" not in isolated.output and "CONNECTED" in allowed.output


# --- test runs and detection ---------------------------------------------------------------------------


def test_pytest_report_has_values_frames_and_locals(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "lib.py": "def scale(values, k):\n    out = [v * k for v in values]\n    return out[0] / (k - 2)\n",
        "test_lib.py": "from lib import scale\n\ndef test_scale():\n    assert scale([1], 2) == 2\n\n"
                       "def test_ok():\n    assert scale([4], 4) == 8\n",
    }, commit=False)  # fmt: skip
    report = detect(root).run(root, Limits())
    assert report.structured and report.failed == ["test_lib.py::test_scale"] and report.passed == 1
    failure = report.failures[0]
    assert failure.exc_type == "ZeroDivisionError"
    inner = failure.frames[-1]
    assert inner.path == "lib.py" and inner.function == "scale" and inner.locals["k"] == "2"


def test_endless_test_is_stopped_and_the_run_goes_on(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "spin.py": "def spin():\n    while True:\n        pass\n",
        "test_spin.py": "from spin import spin\n\ndef test_spin():\n    spin()\n\ndef test_after():\n    assert True\n",
    }, commit=False)  # fmt: skip
    report = detect(root).run(root, Limits(timeout_s=60), test_timeout_s=1)
    assert report.outcomes["test_spin.py::test_spin"] == "failed" and report.failures[0].timeout
    assert report.outcomes["test_spin.py::test_after"] == "passed"
    assert report.failures[0].frames[-1].path == "spin.py"


def test_a_run_killed_for_its_timeout_still_reports_the_tests_before(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "test_slow.py": "import time\n\ndef test_first():\n    pass\n\ndef test_sleeps():\n    time.sleep(60)\n",
    }, commit=False)  # fmt: skip
    report = detect(root).run(root, Limits(timeout_s=4))
    assert report.run.timed_out and not report.green
    assert report.outcomes.get("test_slow.py::test_first") == "passed"


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        ({"package.json": '{"scripts": {"test": "jest"}}'}, "npm"),
        ({"go.mod": "module x\n"}, "go"),
        ({"Cargo.toml": "[package]\nname = 'x'\n"}, "cargo"),
        ({"pytest.ini": "[pytest]\n", "test_a.py": ""}, "pytest"),
        ({"tests/test_a.py": "import unittest\n"}, "pytest"),  # unittest suites run through pytest
    ],
)
def test_detect_the_runner(tmp_path: Path, files: dict[str, str], kind: str) -> None:
    make_repo(tmp_path, files, commit=False)
    assert detect(tmp_path).kind == kind


def test_detect_without_tests_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    with pytest.raises(InvalidRequestError, match="--test-cmd"):
        detect(tmp_path)
    assert detect(tmp_path, "make check").kind == "custom"
    assert detect(tmp_path, "python -m pytest -x").kind == "pytest"
    assert detect(tmp_path, "DJANGO_SETTINGS_MODULE=s.dev PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 pytest").kind == "pytest"
    assert detect(tmp_path, "X=pytest make test").kind == "custom"


def test_unittest_output_is_read_without_pytest(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "shapes.py": "def area(w, h):\n    return w + h\n",
        "test_shapes.py": "import unittest\nfrom shapes import area\n\nclass T(unittest.TestCase):\n"
                          "    def test_area(self):\n        self.assertEqual(area(2, 3), 6)\n",
    }, commit=False)  # fmt: skip
    report = detect(root, f"{sys.executable} -m unittest discover").run(root, Limits())
    assert not report.green and "test_shapes.T.test_area" in report.outcomes
    assert any(f.path == "test_shapes.py" for f in report.failures[0].frames)


# --- localization, edits, static fixes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path, test",
    [("tests/helpers.py", True), ("test_ops.py", True), ("test.py", True), ("BeautifulSoupTests.py", True),
     ("gflags_unittest.py", True), ("conftest.py", True), ("app/tests.py", True), ("ops_test.py", True),
     ("ops.py", False), ("latest.py", False), ("contest.py", False), ("testing_tools.py", False)],
)  # fmt: skip
def test_what_counts_as_a_test_file(path: str, test: bool) -> None:
    assert is_test_path(path) is test


def test_localize_by_traceback_skips_tests_and_installed_code(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {
        "app/core.py": "import json\n\ndef load(text):\n    return json.loads(text)['key']\n",
        "app/__init__.py": "",
        "tests/test_core.py": "from app.core import load\n\ndef test_load():\n    assert load('{}') == 1\n",
    }, commit=False)  # fmt: skip
    report = detect(root).run(root, Limits())
    targets = localize(report, Project(root))
    assert targets[0].unit.path == "app/core.py" and targets[0].unit.name == "load"
    assert all(not is_test_path(t.unit.path) and "site-packages" not in t.unit.path for t in targets)


def test_localize_a_frameless_assertion_by_the_names_the_test_calls(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", CALC, commit=False)
    report = detect(root).run(root, Limits())
    targets = localize(report, Project(root))
    assert [t.unit.name for t in targets][:1] == ["add"]


def _project(tmp_path: Path, files: dict[str, str]) -> Project:
    make_repo(tmp_path, files, commit=False)
    return Project(tmp_path)


def test_localize_follows_the_test_files_helpers_to_what_the_failing_line_calls(tmp_path: Path) -> None:
    test = (
        "import unittest\nfrom app import fmt, setup_value\n\n\nclass T(unittest.TestCase):\n"
        "    def _check(self, given, expected):\n        self.assertEqual(fmt.escape(given), expected)\n\n"
        + "".join(f"    def test_{i}(self):\n        setup_value({i})\n        self._check('a{i}', 'a{i}')\n\n"
                  for i in range(3))
    )  # fmt: skip
    files = {
        "app/__init__.py": "from app import fmt\n\n\ndef setup_value(v):\n    return v\n",
        "app/fmt.py": "def escape(s):\n    return s.encode('ascii')\n",
        "tests/test_fmt.py": test,
    }
    root = make_repo(tmp_path / "r", files, commit=False)
    targets = localize(detect(root).run(root, Limits()), Project(root))
    assert targets[0].unit.name == "escape"  # on the helper's failing line, not merely called by each test


def test_edit_replaces_a_method_given_alone_and_adds_imports(tmp_path: Path) -> None:
    project = _project(tmp_path, {"geo.py": "class Circle:\n    def __init__(self, r):\n        self.r = r\n\n"
                                            "    def area(self):\n        return 3 * self.r\n"})  # fmt: skip
    unit = next(u for u in project.units("geo.py") if u.name == "Circle.area")
    answer = "Here:\n```python\nimport math\n\ndef area(self):\n    return math.pi * self.r ** 2\n```\nDone."
    edit = replace_unit(project, unit, answer)
    assert "import math\n" in edit.after and "        return math.pi * self.r ** 2" in edit.after
    assert "def __init__(self, r):" in edit.after
    compile(edit.after, "geo.py", "exec")


def test_edit_refusals(tmp_path: Path) -> None:
    project = _project(tmp_path, CALC)
    add = next(u for u in project.units("calc/ops.py") if u.name == "add")
    with pytest.raises(RefusedEdit, match="parameters of add"):  # tests call add(a, b)
        replace_unit(project, add, "def add(x, y, z=0):\n    return x + y\n")
    with pytest.raises(RefusedEdit, match="no function named add"):
        replace_unit(project, add, "```python\ndef plus(a, b):\n    return a + b\n```")
    with pytest.raises(RefusedEdit, match="does not parse"):
        replace_unit(project, add, "```python\ndef add(a, b)\n    return a + b\n```")
    with pytest.raises(RefusedEdit, match="unchanged"):
        replace_unit(project, add, "def add(a, b):\n    return a - b\n")
    test_unit = next(u for u in project.units("tests/test_ops.py") if u.name == "test_add")
    with pytest.raises(RefusedEdit, match="test file"):
        replace_unit(project, test_unit, "def test_add():\n    assert True\n")
    assert replace_unit(project, test_unit, "def test_add():\n    assert True\n", allow_test_edits=True)


def test_edit_keeps_other_definitions_the_answer_repeats(tmp_path: Path) -> None:
    project = _project(tmp_path, CALC)
    add = next(u for u in project.units("calc/ops.py") if u.name == "add")
    answer = (
        "```python\ndef add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return 0\n\ndef test_add():\n    pass\n```"
    )
    after = replace_unit(project, add, answer).after
    assert "return a * b" in after and "return 0" not in after and "test_add" not in after


def test_static_fixes_a_missing_import_deterministically(tmp_path: Path) -> None:
    project = _project(tmp_path, {"geo.py": "def hyp(a, b):\n    return math.sqrt(a * a + b * b)\n",
                                  "util.py": "def clamp(x):\n    return max(0, x)\n",
                                  "use.py": "def f(x):\n    return clamp(x) + undefined_thing\n"})  # fmt: skip
    found = static.problems(project, ["geo.py", "use.py"])
    assert {p.name for p in found} == {"math", "clamp", "undefined_thing"}
    edits = {e.path: e.after for e in static.deterministic_fixes(project, found)}
    assert edits["geo.py"].startswith("import math\n")
    assert "from util import clamp\n" in edits["use.py"] and "import undefined_thing" not in edits["use.py"]


def test_units_of_a_file_with_a_syntax_error(tmp_path: Path) -> None:
    units = units_of("def ok():\n    return 1\n\ndef broken(x):\n    return x +\n", "m.py")
    assert [(u.name, u.start, u.end) for u in units] == [("ok", 1, 2), ("broken", 4, 5)]


def test_single_token_mutants_cover_the_common_slips_nearest_the_failing_line_first() -> None:
    from codespark.agent.mutate import mutants

    source = (
        "def window(xs, k):\n    total = 0\n    for i in range(len(xs) - k):\n        if xs[i] < k:\n"
        "            total += xs[i]\n    total\n\n\ndef ratio(a, b):\n    return divmod(a, b)[0] / 2  # é\n"
    )
    unit = next(u for u in units_of(source, "m.py") if u.name == "window")
    found = mutants(source, unit, focus=4, limit=1000)
    whats = [m.what for m in found]
    assert whats[0].startswith("line 4:") and all(m.line <= unit.end for m in found)  # ratio is another unit
    for expected in ("line 4: `<` → `<=`", "line 3: `len(xs) - k` → `(len(xs) - k) + 1`", "line 5: `+=` → `-=`",
                     "line 4: `k` → `total`", "line 6: `total` → `return total`", "line 2: `0` → `1`"):  # fmt: skip
        assert expected in whats, expected
    fixed = next(m for m in found if m.what == "line 4: `<` → `<=`")
    assert fixed.text == source.replace("xs[i] < k", "xs[i] <= k")  # one token; the rest as it was
    other = next(u for u in units_of(source, "m.py") if u.name == "ratio")
    swapped = [m for m in mutants(source, other, None, 1000) if "arguments `a` and `b` swapped" in m.what]
    assert swapped and "divmod(b, a)[0] / 2  # é" in swapped[0].text  # byte columns past non-ASCII text
    assert {m.line for m in mutants(source, unit, 4, 1000, executed={3, 9})} == {3}  # what the failing run ran
    assert mutants("def broken(:\n", unit, None, 10) == []
    assert len(mutants(source, unit, None, 5)) == 5


def test_single_token_mutants_cover_bitwise_negated_and_swapped_slips() -> None:
    from codespark.agent.mutate import mutants

    source = (
        "def bits(n, digits, found):\n    count = 0\n    while n:\n        n ^= n - 1\n        count += n << 1\n"
        "    out = ''\n    if found:\n        out = out + digits[count % 10]\n    ok = not found and True\n"
        "    return max(count, len(out)) if ok else 2 ** count\n"
    )
    unit = next(u for u in units_of(source, "m.py") if u.name == "bits")
    whats = {m.what for m in mutants(source, unit, focus=4, limit=1000)}
    for expected in ("line 4: `^=` → `&=`", "line 4: `^=` → `|=`", "line 5: `<<` → `>>`", "line 3: `n` → `not n`",
                     "line 8: operands `out` and `digits[count % 10]` swapped", "line 9: `not found` → `found`",
                     "line 9: `True` → `False`", "line 10: `max` → `min`", "line 10: `ok` → `not ok`",
                     "line 10: `**` → `*`", "line 8: operands `count` and `10` swapped"):  # fmt: skip
        assert expected in whats, expected
    assert not any("`-` → `^`" in w or "`^=` → `+=`" in w or "`<<` → `+`" in w for w in whats)  # in its family
    assert all("operands `out + digits" not in w for w in whats)  # no swap that regroups an expression


def test_single_token_repair_fixes_a_slip_before_the_model_is_asked(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    sampler = Scripted([FIXED_ADD])
    events, ws = run_loop(root, tmp_path / "cache", sampler, mutants=80)
    try:
        mutation = next(e.data for e in events if e.kind == "mutation")
        assert mutation["unit"] == "add" and mutation["fixed"] == "line 2: `-` → `+`", mutation
        assert events[-1].data["status"] == "fixed" and events[-1].data["rounds"] == 0
        assert "+    return a + b" in events[-1].data["diff"] and not sampler.prompts  # no model needed
    finally:
        ws.close()
    # A bug no single edit fixes goes on to the model, with the code as it was.
    root = make_repo(tmp_path / "r2", {**CALC, "calc/ops.py": CALC["calc/ops.py"].replace("a - b", "(a - b) * 0")})
    sampler = Scripted([FIXED_ADD])
    events, ws = run_loop(root, tmp_path / "cache2", sampler, mutants=10, candidates=1)
    try:
        mutation = next(e.data for e in events if e.kind == "mutation")
        assert mutation["fixed"] is None and mutation["tried"] > 0 and sampler.prompts
        assert "(a - b) * 0" in sampler.prompts[0] and events[-1].data["status"] == "fixed"
    finally:
        ws.close()


ADULT = {
    "people.py": "def is_adult(age):\n    return age > 18\n",
    "test_people.py": "from people import is_adult\n\n\ndef test_eighteen():\n    assert is_adult(18)\n",
}


def test_a_one_token_fix_the_tests_cannot_tell_apart_goes_on_to_the_model(tmp_path: Path) -> None:
    # One example: `>=` turns it green, but so would `<=` or `> 17`; the tests cannot vouch for the fix,
    # so the model is asked from the code as it was, and its green answer is kept.
    model = "```python\ndef is_adult(age):\n    return not age < 18\n```"
    root = make_repo(tmp_path / "r", ADULT)
    sampler = Scripted([model])
    events, ws = run_loop(root, tmp_path / "cache", sampler, mutants=80, rounds=1, candidates=1)
    try:
        mutation = next(e.data for e in events if e.kind == "mutation")
        assert mutation["fixed"] == "line 2: `>` → `>=`" and not mutation["trusted"], mutation
        assert mutation["path"] == "people.py" and mutation["lines"] == [(2, "    return age >= 18")]
        assert mutation["probed"] > 0 and mutation["rejected"] < 0.8 * mutation["probed"]
        assert "return age > 18" in sampler.prompts[0]  # the model sees the code as it was
        final = events[-1].data
        assert final["status"] == "fixed" and final["fixed_by"] == "model" and "not age < 18" in final["diff"]
    finally:
        ws.close()
    # When no model answer turns it green, the one-token fix is kept after all.
    root = make_repo(tmp_path / "r2", ADULT)
    events, ws = run_loop(root, tmp_path / "cache2", Scripted([]), mutants=80, rounds=1, candidates=1)
    try:
        assert [e.data["fixed"] for e in events if e.kind == "fallback"] == ["line 2: `>` → `>=`"]
        final = events[-1].data
        assert final["status"] == "fixed" and final["fixed_by"] == "mutation" and "age >= 18" in final["diff"]
    finally:
        ws.close()


def test_a_one_token_fix_tests_pin_down_ends_the_search(tmp_path: Path) -> None:
    files = {**ADULT, "test_people.py": ADULT["test_people.py"] + "".join(
        f"\n\ndef test_{age}():\n    assert is_adult({age}) is {age >= 18}\n" for age in (0, 17, 19, 40))}  # fmt: skip
    root = make_repo(tmp_path / "r", files)
    sampler = Scripted([])
    events, ws = run_loop(root, tmp_path / "cache", sampler, mutants=80, min_probes=3)  # 3 edits exist
    try:
        mutation = next(e.data for e in events if e.kind == "mutation")
        assert mutation["trusted"] and mutation["rejected"] >= 0.8 * mutation["probed"], mutation
        assert events[-1].data["fixed_by"] == "mutation" and events[-1].data["rounds"] == 0 and not sampler.prompts
    finally:
        ws.close()


def test_a_one_token_fix_probed_fewer_than_min_probes_ways_gets_one_model_round(tmp_path: Path) -> None:
    # Five examples reject all 3 other single edits of `return age >= 18`, but 3 is too little evidence
    # (HumanEval/74 was such a fix, and wrong): the model gets one round, then the fix is kept.
    files = {**ADULT, "test_people.py": ADULT["test_people.py"] + "".join(
        f"\n\ndef test_{age}():\n    assert is_adult({age}) is {age >= 18}\n" for age in (0, 17, 19, 40))}  # fmt: skip
    root = make_repo(tmp_path / "r", files)
    sampler = Scripted([])
    events, ws = run_loop(root, tmp_path / "cache", sampler, mutants=80, rounds=3, candidates=2)
    try:
        mutation = next(e.data for e in events if e.kind == "mutation")
        assert mutation["probed"] == 3 and mutation["rejected"] == 3 and not mutation["trusted"], mutation
        assert [e.kind for e in events].count("round") == 1 and len(sampler.prompts) == 2
        assert events[-1].data["status"] == "fixed" and events[-1].data["fixed_by"] == "mutation"
    finally:
        ws.close()


def test_probes_stop_at_their_time_budget_and_an_unprobed_fix_is_not_trusted(tmp_path: Path) -> None:
    files = {**ADULT, "test_people.py": ADULT["test_people.py"] + "".join(
        f"\n\ndef test_{age}():\n    assert is_adult({age}) is {age >= 18}\n" for age in (0, 17, 19, 40))}  # fmt: skip
    root = make_repo(tmp_path / "r", files)
    sampler = Scripted([])  # the model has nothing: the one-token fix is kept as the fallback
    events, ws = run_loop(root, tmp_path / "cache", sampler, mutants=80, rounds=1, candidates=1, probe_seconds=0)
    try:
        mutation = next(e.data for e in events if e.kind == "mutation")
        assert mutation["probed"] == 0 and not mutation["trusted"], mutation
        assert [e.kind for e in events].count("fallback") == 1 and sampler.prompts
        assert events[-1].data["status"] == "fixed" and events[-1].data["fixed_by"] == "mutation"
    finally:
        ws.close()


# --- workspace: never lose work ------------------------------------------------------------------------


def test_worktree_holds_uncommitted_work_and_leaves_the_tree_alone(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    (root / "calc" / "ops.py").write_text(CALC["calc/ops.py"] + "\n\ndef sub(a, b):\n    return a - b\n")
    (root / "notes.txt").write_text("untracked work\n")
    git(root, "rm", "-q", "--cached", "calc/__init__.py")  # a staged change
    (root / "calc" / "__init__.py").write_text("")
    git(root, "stash", "list")
    before = tree_state(root)
    ws = Workspace.open(root, tmp_path / "cache")
    try:
        assert "def sub" in ws.read("calc/ops.py") and (ws.root / "notes.txt").read_text() == "untracked work\n"
        ws.write("calc/ops.py", "broken")
        ws.commit("round")
        assert tree_state(root) == before
        assert ws.branch and ws.branch in git(root, "branch", "--list", "codespark/*")
    finally:
        ws.close()
    assert tree_state(root) == before and str(ws.copy_top) not in git(root, "worktree", "list")


def test_fix_end_to_end_with_a_scripted_model_then_apply(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    (root / "README.md").write_text("my uncommitted notes\n")
    sampler = Scripted(["no code here", "```python\ndef add(a, b):\n    return a * b\n```", FIXED_ADD])
    events, ws = run_loop(root, tmp_path / "cache", sampler, candidates=3)
    try:
        kinds = [e.kind for e in events]
        assert kinds[:3] == ["started", "baseline", "round"] and kinds[-1] == "finished"
        assert [e.data["outcome"] for e in events if e.kind == "candidate"] == ["refused", "tested", "tested"]
        assert events[-1].data["status"] == "fixed" and events[-1].data["changed"] == ["calc/ops.py"]
        assert "-    return a - b\n+    return a + b" in events[-1].data["diff"]
        assert "assert -1 == 5" in sampler.prompts[0] and "def test_add" in sampler.prompts[0]
        assert (root / "calc" / "ops.py").read_text() == CALC["calc/ops.py"]  # untouched until apply
        assert ws.apply() == ["calc/ops.py"]
    finally:
        ws.close()
    assert "return a + b" in (root / "calc" / "ops.py").read_text()
    assert (root / "README.md").read_text() == "my uncommitted notes\n"
    log = git(root, "log", "--format=%s", str(ws.branch))
    assert "round 1: add" in log and "the tree as it was" in log


def test_apply_refuses_when_the_user_changed_the_file_meanwhile(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    events, ws = run_loop(root, tmp_path / "cache", Scripted([FIXED_ADD]), candidates=1)
    try:
        assert events[-1].data["status"] == "fixed"
        (root / "calc" / "ops.py").write_text("def add(a, b):\n    return b - a  # my edit\n")
        with pytest.raises(ApplyConflictError, match=r"calc/ops\.py changed"):
            ws.apply()
    finally:
        ws.close()
    assert "# my edit" in (root / "calc" / "ops.py").read_text()


def test_a_folder_that_is_not_a_git_repo_works_through_a_temp_copy(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "plain", commit=False)
    before = tree_state(root)
    events, ws = run_loop(root, tmp_path / "cache", Scripted([FIXED_ADD]), candidates=1)
    try:
        assert events[-1].data["status"] == "fixed" and events[-1].data["branch"] is None
        assert tree_state(root) == before
        ws.apply()
    finally:
        ws.close()
    assert "return a + b" in (root / "calc" / "ops.py").read_text() and not (root / ".git").exists()


def test_the_loop_never_edits_tests(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    cheat = "```python\ndef add(a, b):\n    return a - b + 0\n\n\ndef test_add():\n    assert True\n```"
    events, ws = run_loop(root, tmp_path / "cache", Scripted([cheat, cheat, cheat]), candidates=3, rounds=1)
    try:
        assert events[-1].data["status"] == "not-fixed"
        assert ws.read("tests/test_ops.py") == CALC["tests/test_ops.py"]
    finally:
        ws.close()


def test_endless_candidate_is_timed_out_and_the_search_goes_on(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    spin = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
    events, ws = run_loop(root, tmp_path / "cache", Scripted([spin, FIXED_ADD]), candidates=2, test_timeout_s=1)
    ws.close()
    candidates = [e.data for e in events if e.kind == "candidate"]
    assert "ran past" in candidates[0]["reason"] and events[-1].data["status"] == "fixed"
    assert events[-1].data["endless_tests"] >= 1


def test_an_import_error_fixed_with_another_behind_it_counts_as_progress(tmp_path: Path) -> None:
    # Every test imports the module, so each error at import time fails them all: fixing the first one only
    # shows as the error moving on to the second.
    files = {
        "m.py": (
            "def one():\n    return 1 / 0\n\n\nONE = one()\n\n\n"
            "def two():\n    raise ValueError('two')\n\n\nTWO = two()\n"
        ),
        "tests/test_m.py": "from m import ONE, TWO\n\n\ndef test_values():\n    assert (ONE, TWO) == (1, 2)\n",
    }
    root = make_repo(tmp_path / "r", files)
    answers = ["```python\ndef one():\n    return 1\n```", "```python\ndef two():\n    return 2\n```"]
    events, ws = run_loop(root, tmp_path / "cache", Scripted(answers), candidates=1, rounds=2)
    try:
        assert [e.data["unit"] for e in events if e.kind == "best"] == ["one", "two"]
        assert events[-1].data["status"] == "fixed"
    finally:
        ws.close()


def test_a_long_function_is_fixed_through_a_window_around_the_failing_line(tmp_path: Path) -> None:
    steps = "".join(f"    total += {i}\n" for i in range(60))
    code = (
        f"def long_sum(values):\n    total = 0\n{steps}    for v in values:\n        total += v / 0\n    return total\n"
    )
    test = "from calc.long import long_sum\n\n\ndef test_sum():\n    assert long_sum([1, 2]) == 1773\n"
    files = {"calc/__init__.py": "", "calc/long.py": code, "tests/test_long.py": test}
    root = make_repo(tmp_path / "r", files)
    window = "".join(f"    total += {i}\n" for i in range(39, 60))  # the 24 lines around the failing one
    answer = f"```python\n{window}    for v in values:\n        total += v\n    return total\n```"
    sampler = Scripted(["```python\n    total += v / 0\n```", answer])
    events, ws = run_loop(root, tmp_path / "cache", sampler, candidates=2, rounds=1)
    try:
        assert events[-1].data["status"] == "fixed", events[-1].data
        assert ws.read("calc/long.py") == code.replace("v / 0", "v")
        prompt = sampler.prompts[0]
        assert "rewrite these" in prompt and "total += 30" not in prompt  # a window, not the whole function
    finally:
        ws.close()


def test_already_green_does_nothing(tmp_path: Path) -> None:
    files = {**CALC, "calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"}
    root = make_repo(tmp_path / "r", files)
    sampler = Scripted([])
    events, ws = run_loop(root, tmp_path / "cache", sampler)
    ws.close()
    assert events[-1].data["status"] == "already-green" and not sampler.prompts


def test_a_missing_import_is_fixed_without_the_model(tmp_path: Path) -> None:
    files = {"geo.py": "def hyp(a, b):\n    return math.sqrt(a * a + b * b)\n",
             "test_geo.py": "from geo import hyp\n\ndef test_hyp():\n    assert hyp(3, 4) == 5\n"}  # fmt: skip
    root = make_repo(tmp_path / "r", files)
    sampler = Scripted([])
    events, ws = run_loop(root, tmp_path / "cache", sampler)
    ws.close()
    assert events[-1].data["status"] == "fixed" and not sampler.prompts
    assert "+import math" in events[-1].data["diff"]


KILL_DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from codespark.agent.loop import FixLoop, FixOptions
    from codespark.agent.testrun import detect
    from codespark.agent.workspace import Workspace
    from tests.fix_repos import Scripted

    root, cache = Path(sys.argv[1]), Path(sys.argv[2])
    answer = "```python\\ndef add(a, b):\\n    import time; time.sleep(30)\\n    return a + b\\n```"
    ws = Workspace.open(root, cache)
    loop = FixLoop(ws, detect(root), [Scripted([answer])], FixOptions(candidates=1, mutants=0))

    async def main():
        async for event in loop.events():
            print(event.kind, flush=True)

    try:
        asyncio.run(main())
    finally:
        ws.close()
    """
)


def test_kill_9_mid_round_leaves_the_tree_byte_identical(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    (root / "calc" / "ops.py").write_text(CALC["calc/ops.py"] + "# uncommitted\n")
    git(root, "stash", "list")
    before = tree_state(root)
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILL_DRIVER, str(root), str(cache)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parent.parent)  # fmt: skip
    assert proc.stdout is not None
    seen = [proc.stdout.readline().strip() for _ in range(3)]  # started, baseline, round: a candidate is testing
    assert seen == ["started", "baseline", "round"]
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tree_state(root) == before
    assert len(git(root, "worktree", "list").splitlines()) == 2  # the dead run's worktree is still there
    ws = Workspace.open(root, cache)  # the next run cleans it up
    ws.close()
    assert len(git(root, "worktree", "list").splitlines()) == 1
    assert [p.name for p in (cache / "fix").iterdir()] == []
    assert tree_state(root) == before


def test_src_layout_runs_the_copys_own_code(tmp_path: Path) -> None:
    """``src/`` and the root come first on the path, so the copy's code wins over an installed project."""
    root = make_repo(tmp_path / "r", {
        "src/shop/__init__.py": "",
        "src/shop/price.py": "def total(xs):\n    return sum(xs) - 1\n",
        "tests/test_price.py": "from shop.price import total\n\ndef test_total():\n    assert total([1, 2]) == 3\n",
    })  # fmt: skip
    events, ws = run_loop(root, tmp_path / "cache", Scripted(["def total(xs):\n    return sum(xs)\n"]), candidates=1)
    ws.close()
    assert events[1].data["failed"] == ["tests/test_price.py::test_total"]
    assert events[-1].data["status"] == "fixed" and events[-1].data["changed"] == ["src/shop/price.py"]


def test_ctrl_c_mid_round_stops_the_tests_and_cleans_up(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    before = tree_state(root)
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILL_DRIVER, str(root), str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).parent.parent)  # fmt: skip
    assert proc.stdout is not None
    assert [proc.stdout.readline().strip() for _ in range(3)] == ["started", "baseline", "round"]
    time.sleep(1.5)  # the candidate's test is sleeping for 30 s now
    interrupted = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert time.perf_counter() - interrupted < 15  # the sleeping test was killed, not waited for
    assert tree_state(root) == before
    assert len(git(root, "worktree", "list").splitlines()) == 1 and list((cache / "fix").iterdir()) == []


def test_a_prompt_that_does_not_fit_ends_the_round_not_the_run(tmp_path: Path) -> None:
    class TooLong(Scripted):
        async def sample(self, messages: object, params: object) -> str:
            raise ContextLengthExceededError("This model's maximum context length is 8192 tokens.")

    root = make_repo(tmp_path / "r")
    events, ws = run_loop(root, tmp_path / "cache", TooLong([]), rounds=2, candidates=3)
    ws.close()
    reasons = [e.data["reason"] for e in events if e.kind == "candidate"]
    assert len(reasons) == 2 and all("maximum context length" in r for r in reasons)
    assert events[-1].data["status"] == "not-fixed"


def test_a_fix_prompt_answered_with_the_code_it_showed_gives_way_to_candidates_written_anew(tmp_path: Path) -> None:
    # A small model shown its wrong code mostly writes it again: once most of a round's fix-prompt answers
    # are that code, the next round asks for all but one candidate anew from the signature and docstring.
    files = {
        "calc/__init__.py": "",
        "calc/ops.py": 'def add(a, b):\n    """The sum of a and b."""\n    return a - b\n',
        "tests/test_ops.py": "from calc.ops import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    }
    same = '```python\ndef add(a, b):\n    """The sum of a and b."""\n    return a - b\n```'
    wrong = "```python\ndef add(a, b):\n    return a * b\n```"
    root = make_repo(tmp_path / "r", files)
    # Round 1: two fix-prompt answers (the code again), then two written anew (wrong); round 2: fixed.
    sampler = Scripted([same, same, wrong, "```python\ndef add(a, b):\n    return b - a\n```", same,
                        wrong, wrong, FIXED_ADD])  # fmt: skip
    events, ws = run_loop(root, tmp_path / "cache", sampler, rounds=2, candidates=4)
    try:
        candidates = [e.data for e in events if e.kind == "candidate"]
        assert [c["prompt"] for c in candidates if c["round"] == 1] == ["fix", "fix", "anew", "anew"]
        assert [c["prompt"] for c in candidates if c["round"] == 2] == ["fix", "anew", "anew", "anew"]
        assert "unchanged" in candidates[0]["reason"]
        assert sum("Write it anew" in p for p in sampler.prompts[4:]) == 3
        assert events[-1].data["status"] == "fixed"
    finally:
        ws.close()
