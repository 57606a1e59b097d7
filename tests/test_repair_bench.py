"""The repair benchmark's own guarantees: the hidden HumanEval tests never reach the loop, and each
seeded fault is one change to one real function that its own doctest catches."""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks.repair_sets import faults, humaneval

from codespark.agent.localize import units_of
from codespark.agent.loop import FixLoop, FixOptions
from codespark.agent.sandbox import Limits
from codespark.agent.testrun import detect
from codespark.agent.workspace import Workspace
from tests.fix_repos import Scripted


def _hidden_lines(problem: humaneval.Problem) -> list[str]:
    return [line.strip() for line in problem.test.splitlines() if line.strip().startswith("assert")]


def test_hidden_tests_never_reach_the_workspace_or_the_prompts(tmp_path: Path) -> None:
    problems = humaneval.load()
    for problem in problems:
        folder = tmp_path / problem.task_id.replace("/", "_")
        humaneval.write_workspace(problem, folder, humaneval.stub(problem))
        everything = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
        assert "def check(" not in everything
        leaked = [line for line in _hidden_lines(problem) if line in everything and "candidate" in line]
        assert not leaked, (problem.task_id, leaked)
    problem = problems[0]
    folder = tmp_path / "run"
    humaneval.write_workspace(problem, folder, humaneval.stub(problem))
    sampler = Scripted(["no answer"] * 4)
    workspace = Workspace.open(folder, tmp_path / "cache")
    loop = FixLoop(workspace, detect(folder), [sampler], FixOptions(rounds=2, candidates=2))

    async def drive() -> None:
        async for _ in loop.events():
            pass

    try:
        asyncio.run(drive())
    finally:
        workspace.close()
    assert sampler.prompts, "the loop asked for candidates"
    shown = "\n".join(sampler.prompts)
    assert "test_example_1" in shown  # the visible tests are what the loop sees
    assert "candidate(" not in shown and "def check" not in shown
    for line in _hidden_lines(problem):
        assert line.replace("candidate", problem.entry_point) not in shown


def test_visible_tests_come_from_the_docstring_only() -> None:
    problems = {p.task_id: p for p in humaneval.load()}
    with_examples = [p for p in problems.values() if humaneval.visible_examples(p)]
    assert len(with_examples) >= 150
    tests = humaneval.visible_tests(problems["HumanEval/0"])
    assert "has_close_elements([1.0, 2.0, 3.0], 0.5) is False" in tests
    compile(tests, "test_visible.py", "exec")
    for problem in with_examples:
        compile(humaneval.visible_tests(problem), "test_visible.py", "exec")


def _problem(doc: str, signature: str = "f(arr, k)") -> humaneval.Problem:
    return humaneval.Problem("T/0", f'def {signature}:\n    """{doc}\n    """\n', "f", "")


def test_examples_written_as_prose_become_visible_tests() -> None:
    doc = """Examples:
    * f([1, 2], 3) => [3]
    for f([], 0) == [] (nothing to take)
    f([5], 1) = [5].
    For arr = [1, 4], k = 1 the output should be [4]
    Input: arr = [2, 2], k = 2
    Output: [2, 2] # both
    Input: x = [9], y = 1
    Output: [9]
    f(m) = 1 + m, a definition and no example"""
    assert humaneval.visible_examples(_problem(doc)) == [
        ("f([1, 2], 3)", "[3]"), ("f([], 0)", "[]"), ("f([5], 1)", "[5]"), ("f(arr = [1, 4], k = 1)", "[4]"),
        ("f(arr = [2, 2], k = 2)", "[2, 2]"), ("f([9], 1)", "[9]"),
    ]  # fmt: skip
    single = _problem("Input: 3\n    Output: (1, 2)\n    f('1.5') # returns 'No'", "f(n)")
    assert humaneval.visible_examples(single) == [("f(3)", "(1, 2)"), ("f('1.5')", "'No'")]


def test_an_example_naming_an_undefined_variable_is_not_a_test() -> None:
    doc = """>>> f(abcd, 1)
    True
    >>> f('abcd', len([1]))
    True"""
    assert humaneval.visible_examples(_problem(doc)) == [("f('abcd', len([1]))", "True")]


def test_prose_that_gives_one_call_two_results_yields_no_examples() -> None:
    doc = """f(2, 1) = 1 + (2 / 2) = 2
    f(2, 1) = [1, 2]
    f(3, 1) = [1, 2, 8]"""
    assert humaneval.visible_examples(_problem(doc)) == []


def test_seeded_faults_change_one_function_and_fail_its_doctest(tmp_path: Path) -> None:
    bugs = faults.seed_bugs(lambda bug: True, limit=12)
    assert {b.kind for b in bugs} >= {"comparison", "operator"}
    for bug in bugs:
        old = {u.name: u for u in units_of(bug.original, bug.file)}
        new = {u.name: u for u in units_of(bug.faulty, bug.file)}
        a, b = bug.original.splitlines(), bug.faulty.splitlines()
        differing = {n for n in old if a[old[n].start - 1 : old[n].end] != b[new[n].start - 1 : new[n].end]}
        assert differing <= {bug.function, bug.function.split(".")[0]}, (bug.bug_id, differing)


def test_kept_faults_fail_their_doctest_and_the_original_passes(tmp_path: Path) -> None:
    def green(bug: faults.Bug, faulty: bool) -> bool:
        """Through pytest and the report plugin, as the loop runs it."""
        folder = tmp_path / "pytest" / bug.bug_id.replace(":", "_") / str(faulty)
        faults.write_project(bug, folder, faulty)
        return detect(folder).run(folder, Limits(timeout_s=60), test_timeout_s=5).green

    kept = faults.seed_bugs(faults.FaultChecker(tmp_path / "check"), limit=3)
    assert {b.module for b in kept} >= {"statistics", "difflib", "collections"}
    for bug in kept[:3]:
        assert green(bug, False) and not green(bug, True)
