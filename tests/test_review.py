"""codespark review on real git repos, with a scripted model: the diff and its changed lines, the
differential check (culprit, failing test, patch), the security checks, the quiet rules, the outputs
(SARIF against the official schema, idempotent Markdown), the findings log and the CLI's exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from codespark.review import diff as diffs
from codespark.review import report
from codespark.review.findings import Finding, finalize, visible
from codespark.review.log import FindingsLog
from codespark.review.prompts import parse_calls, parse_claims
from codespark.review.run import ReviewOptions, ReviewResult
from codespark.services.review import RepoReview, ReviewService
from tests.review_repos import BASE, PR, Scripted, git, pr_repo, write

SCHEMA = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "codespark/test-assets/sarif-2.1.0-rtm.5.json"
)
CALLS = {"clamp": ["clamp(5, 0, 10)", "clamp(15, 0, 10)", "clamp(-3, 0, 10)", "clamp(10, 0, 10)"],
         "area": ["area(2, 3)", "area(0, 5)"]}  # fmt: skip


DEFAULT = ReviewOptions()


def review(root: Path, asker: object | None, options: ReviewOptions = DEFAULT, base: str = "main",
           log: bool = True) -> ReviewResult:  # fmt: skip
    service = ReviewService(None, root.parent / "cache")
    service.asker = lambda: asker  # type: ignore[assignment,method-assign,return-value]
    return asyncio.run(service.review_repo(RepoReview(root, base, options, log)))


def test_diff_lists_added_lines_and_untracked_files(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo", commit=False)
    (root / "new_module.py").write_text("def fresh():\n    return 1\n")
    changes = {c.path: c for c in diffs.parse(diffs.working_diff(root, "main"))}
    assert changes["shapes.py"].added == {6, 10, 11}
    assert changes["new_module.py"].old_path is None and changes["new_module.py"].added == {1, 2}
    assert git(root, "status", "--porcelain") == " M shapes.py\n?? new_module.py\n"  # the index is untouched


def test_differential_check_finds_the_seeded_bug_and_shows_it(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo")
    result = review(root, Scripted(calls=CALLS))
    shown = result.shown
    assert [f.rule_id for f in shown] == ["codespark/behaviour-change"]
    finding = shown[0]
    assert (finding.path, finding.start, finding.end, finding.function) == ("shapes.py", 6, 6, "clamp")
    assert finding.verified and "clamp(15, 0, 10)" in finding.message and "returned 10" in finding.message
    # The test passes on the base and fails on the change; the patch restores the base and applies cleanly.
    test_file = root / "test_shown.py"
    test_file.write_text(finding.test)
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
    assert subprocess.run(run, cwd=root, capture_output=True).returncode == 1
    git(root, "stash", "-u")
    git(root, "switch", "-q", "main")
    test_file.write_text(finding.test)
    assert subprocess.run(run, cwd=root, capture_output=True).returncode == 0
    test_file.unlink()
    git(root, "switch", "-q", "pr")
    subprocess.run(["git", "apply", "--check", "-"], cwd=root, input=finding.patch, text=True, check=True)
    # The rename in area changes nothing the calls can see: no finding there.
    assert not [f for f in result.findings if f.function == "area"]


def test_no_worktree_or_branch_is_left_behind(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo", commit=False)
    before = git(root, "branch", "--list")
    review(root, Scripted(calls=CALLS))
    assert git(root, "branch", "--list") == before
    assert git(root, "worktree", "list").count("\n") == 1
    assert (root / "shapes.py").read_text() == PR["shapes.py"]


def test_model_claims_alone_stay_hidden(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo")
    claim = {"line": 10, "category": "bug-risk", "severity": "high", "reason": "w is never checked"}
    result = review(root, Scripted(findings={"area": [claim]}), ReviewOptions(verify=False))
    [finding] = result.findings
    assert finding.source == "model" and finding.confidence < result.threshold and not result.shown


def test_model_claims_off_the_changed_lines_are_dropped() -> None:
    claims = parse_claims('{"findings": [{"line": 3, "category": "bug-risk", "severity": "high", "reason": "x"},'
                          '{"line": 9, "category": "style", "severity": "low", "reason": "naming"}]}',
                          frozenset({9}))  # fmt: skip
    assert claims == []


def test_calls_are_literal_only() -> None:
    answer = ("```python\nclamp(1, 2, 3)\nimport os\nclamp(os.system('x'), 1, 2)\nprint(clamp(4, 5, 6))\n"
              "Point(1, 2).shift(3)\nclamp(Point(1, 2), 0, 1)\nclamp(*[1, 2, 3])\n```")  # fmt: skip
    assert parse_calls(answer, "clamp", names=frozenset({"Point"})) == [
        "clamp(1, 2, 3)", "clamp(4, 5, 6)", "clamp(Point(1, 2), 0, 1)"]  # fmt: skip
    assert parse_calls(answer, "Point.shift", names=frozenset({"Point"})) == ["Point(1, 2).shift(3)"]


SECRET = "sk-proj-" + "Q7x" * 16


def test_security_checks_on_changed_lines_only(tmp_path: Path) -> None:
    base = {**BASE, "tools.py": "import subprocess\n\n\ndef old(cmd):\n    return subprocess.call(cmd, shell=True)\n"}
    pr = {"tools.py": base["tools.py"] + (
        "\n\ndef new(cmd):\n    return subprocess.call(cmd, shell=True)\n\n\n"
        f'OPENAI = "{SECRET}"\n'
        "import requests\nimport numpy\nimport leftpad_utils_x\n"
        "try:\n    import optional_speedups_x\nexcept ImportError:\n    optional_speedups_x = None\n")}  # fmt: skip
    root = pr_repo(tmp_path / "repo", base, pr)
    result = review(root, None)
    shown = {(f.rule_id, f.start) for f in result.shown}
    assert ("bandit/B602", 9) in shown and ("bandit/B602", 5) not in shown  # the old call is not this PR's
    assert ("codespark/secret", 12) in shown
    unknown = [f for f in result.findings if f.rule_id == "codespark/unknown-import"]
    # requests is declared, numpy installed: only the invented one is shown; the optional one is logged.
    assert [(f.start, f in result.shown) for f in unknown] == [(15, True), (17, False)]
    assert "leftpad_utils_x" in unknown[0].message


def test_a_secret_never_appears_in_any_output(tmp_path: Path) -> None:
    pr = {"shapes.py": PR["shapes.py"] + f'\n\nTOKEN = "{SECRET}"\n'}
    root = pr_repo(tmp_path / "repo", BASE, pr)
    # A model that quotes the line it flags must not leak it either.
    echo = {"line": 14, "category": "security", "severity": "high", "reason": f"TOKEN = {SECRET} is a key"}
    result = review(root, Scripted(findings={"(lines 9-14)": [echo]}, calls=CALLS))
    assert any(f.rule_id == "codespark/secret" for f in result.shown)
    outputs = [report.render(result, fmt) for fmt in ("md", "sarif", "json", "codequality")]
    outputs.append((root / ".codespark" / "review-log.jsonl").read_text())
    assert all(SECRET not in text and SECRET[8:20] not in text for text in outputs)


def test_sarif_validates_and_fingerprints_are_stable(tmp_path: Path) -> None:
    assert SCHEMA.is_file(), "run scripts/test_assets.sh (make test does) to fetch the SARIF schema"
    schema = json.loads(SCHEMA.read_text())
    root = pr_repo(tmp_path / "repo", BASE, {**PR, "run.py": "import os\n\n\ndef go(c):\n    os.system(c)\n"})
    first = review(root, Scripted(calls=CALLS))
    second = review(root, Scripted(calls=CALLS))
    sarif = report.sarif(first)
    jsonschema.validate(sarif, schema)
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"codespark/behaviour-change", "bandit/B605"}
    prints = [r["partialFingerprints"] for r in results]
    assert prints == [r["partialFingerprints"] for r in report.sarif(second)["runs"][0]["results"]]
    # Code added above moves every line: the fingerprints stay.
    write(root, {"shapes.py": "# a header comment\n\n" + PR["shapes.py"]})
    moved = report.sarif(review(root, Scripted(calls=CALLS)))["runs"][0]["results"]
    assert sorted(map(str, prints)) == sorted(str(r["partialFingerprints"]) for r in moved)


def test_markdown_is_idempotent(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo")
    one = report.markdown(review(root, Scripted(calls=CALLS)))
    two = report.markdown(review(root, Scripted(calls=CALLS)))
    assert one == two and one.startswith(report.MARKER) and "shapes.py:6" in one


def test_findings_log_marks_and_stats(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo")
    result = review(root, Scripted(calls=CALLS))
    review(root, Scripted(calls=CALLS))  # a re-run logs nothing new
    log = FindingsLog.in_repo(root)
    stats = log.stats()
    assert (stats.findings, stats.runs, stats.acceptance) == (len(result.findings), 2, None)
    log.mark(result.shown[0].id, "dismissed")
    log.mark(result.shown[0].id, "accepted")  # the latest verdict wins
    stats = log.stats()
    assert (stats.accepted, stats.dismissed, stats.acceptance) == (1, 0, 1.0)
    with pytest.raises(Exception, match="No finding"):
        log.mark("ffffffffffff", "accepted")


def test_budget_lists_what_was_not_reviewed(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo")
    result = review(root, Scripted(calls=CALLS), ReviewOptions(max_units=1))
    assert result.units == 1
    assert [(s.path, s.what) for s in result.skipped] == [("shapes.py", "area")]
    assert "area" in report.markdown(result) and "budget" in report.markdown(result)


def test_docstring_and_moved_code_are_not_sent_to_the_model(tmp_path: Path) -> None:
    base = {"m.py": 'def a():\n    """One."""\n    return 1\n\n\ndef b():\n    return 2\n'}
    pr = {"m.py": 'def b():\n    return 2\n\n\ndef a():\n    """One, documented."""\n    return 1\n'}
    root = pr_repo(tmp_path / "repo", base, pr)
    asker = Scripted()
    result = review(root, asker)
    assert asker.asked == [] and result.units == 0 and result.findings == []


def test_cap_keeps_the_most_severe_per_file() -> None:
    found = [Finding("a.py", n, n, f"r/{n}", "bug-risk", "low" if n < 5 else "high", 0.9, "m", "bandit", anchor=str(n))
             for n in range(1, 7)]  # fmt: skip
    shown = visible(finalize(found, per_file=2))
    assert [f.start for f in shown] == [5, 6]


CLI = [sys.executable, "-m", "codespark"]


def test_cli_shadow_mode_exits_zero_and_enforce_does_not(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo", BASE, {"run.py": "import os\n\n\ndef go(c):\n    os.system(c)\n"})
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    shadow = subprocess.run([*CLI, "review", str(root), "--base", "main", "--no-model", "--format", "json"],
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert shadow.returncode == 0, shadow.stderr
    assert any(f["rule_id"] == "bandit/B605" and f["shown"] for f in json.loads(shadow.stdout)["findings"])
    enforce = subprocess.run([*CLI, "review", str(root), "--base", "main", "--no-model", "--enforce"],
                             capture_output=True, text=True, env=env)  # fmt: skip
    assert enforce.returncode == 1 and "at or above high" in enforce.stderr
    stats = subprocess.run([*CLI, "review", "stats", "--format", "json"], cwd=root, capture_output=True, text=True,
                           env=env)  # fmt: skip
    assert json.loads(stats.stdout)["findings"] >= 1
    bad = subprocess.run([*CLI, "review", str(root), "--base", "no-such-ref", "--no-model"], capture_output=True,
                         text=True, env=env)  # fmt: skip
    assert bad.returncode == 2 and "is not a commit here" in bad.stderr


def test_culprit_is_found_on_a_line_that_also_renames(tmp_path: Path) -> None:
    base = {"cart.py": "def total(prices):\n    s = 0\n    for p in prices:\n        s += p\n    return s\n"}
    pr = {"cart.py": "def total(prices):\n    acc = 0\n    for p in prices:\n        acc -= p\n    return acc\n"}
    root = pr_repo(tmp_path / "repo", base, pr)
    [finding] = review(root, Scripted(calls={"total": ["total([1, 2])", "total([])"]})).shown
    assert (finding.start, finding.end) == (4, 4) and "Reverting line 4 alone" in finding.message
    assert "+        acc += p" in finding.patch  # the old behaviour, with the new name


def test_operator_methods_are_exercised_through_their_operator(tmp_path: Path) -> None:
    money = ("class Money:\n    def __init__(self, cents):\n        self.cents = cents\n\n"
             "    def __add__(self, other):\n        return Money(self.cents {op} other.cents)\n\n"
             "    def __repr__(self):\n        return f'Money({{self.cents}})'\n")  # fmt: skip
    root = pr_repo(tmp_path / "repo", {"money.py": money.format(op="+")}, {"money.py": money.format(op="-")})
    asker = Scripted(calls={"Money(...) +": ["Money(3) + Money(4)", "Money(0) + Money(0)"]})
    [finding] = review(root, asker).shown
    assert finding.function == "Money.__add__" and finding.start == 6 and finding.verified
    assert "returned Money(7) before" in finding.message
