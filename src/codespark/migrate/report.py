"""A migration's final report, from its events: Markdown for people, JSON for tools.

Per module: its status and why, how many constructs were rewritten, its diff size, and what is left for
a reviewer; the tests before and after; and what the model changed beyond the deterministic rewrites.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codespark.migrate.run import Event


def summary(events: Sequence[Event]) -> dict[str, Any]:
    """The run in one object: plan, modules (with their diff sizes), baseline, suite, repair, result."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event.data)

    def first(kind: str) -> dict[str, Any] | None:
        return by_kind[kind][0] if by_kind.get(kind) else None

    finished = by_kind["finished"][-1] if by_kind.get("finished") else {}
    sizes = _diff_sizes(finished.get("diff", ""))
    modules: dict[str, dict[str, Any]] = {}
    for module in by_kind.get("module", []):  # a repaired module comes twice: the later event wins
        modules[module["path"]] = {**module, "diff_lines": sizes.get(module["path"], 0)}
    repair = by_kind.get("repair", [])
    return {
        "recipe": (first("plan") or {}).get("recipe"),
        "status": finished.get("status"),
        "branch": finished.get("branch"),
        "modules": list(modules.values()),
        "baseline": first("baseline"),
        "suite": by_kind["suite"][-1] if by_kind.get("suite") else None,
        "repair_rounds": sum(r["step"] == "round" for r in repair),
        "repair_candidates": sum(r["step"] == "candidate" for r in repair),
        "model_changed": finished.get("model_changed", []),
        "model_diff": finished.get("model_diff", ""),
        "suite_problems": finished.get("suite_problems", []),
        "applied": first("applied"),
    }


def _diff_sizes(diff: str) -> dict[str, int]:
    """Lines added plus removed, per file of a git diff (paths as the diff names them)."""
    sizes: dict[str, int] = {}
    current = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            current = line[6:] if line.startswith("+++ b/") else None
        elif current is not None and line[:1] in "+-" and not line.startswith("--- "):
            sizes[current] = sizes.get(current, 0) + 1
    return sizes


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Migration report: {report['recipe']}", "", f"**{report['status']}**"
             + (f", on branch `{report['branch']}`" if report.get("branch") else "")]  # fmt: skip
    baseline, suite = report.get("baseline"), report.get("suite")
    if baseline:
        lines.append(f"- tests before: {baseline['tests']} {_counts(baseline['outcomes'])}")
    if suite and "outcomes" in suite:
        defined = f" (the original defines {suite['defined']})" if suite.get("defined") else ""
        lines.append(f"- tests after: {_counts(suite['outcomes'])}{defined}")
        if suite.get("lost"):
            lines.append(f"- tests lost: {', '.join(f'`{t}`' for t in suite['lost'][:20])}")
    for problem in report.get("suite_problems", [])[:10]:
        lines.append(f"- problem: {problem}")
    if report["repair_rounds"]:
        changed = ", ".join(f"`{p}`" for p in report["model_changed"]) or "nothing"
        lines.append(f"- the model's repair: {report['repair_rounds']} rounds, {report['repair_candidates']} "
                     f"candidates; it changed {changed}")  # fmt: skip
    lines += ["", "| module | status | rewritten | diff lines | why / to review |", "|---|---|---|---|---|"]
    for module in report["modules"]:
        notes = "; ".join([module.get("reason", ""), *module.get("needs_model", [])])
        lines.append(f"| `{module['path']}` | {module['status']} | {module.get('converted', 0)} | "
                     f"{module['diff_lines']} | {_cell(notes)} |")  # fmt: skip
    if report.get("model_diff"):
        lines += ["", "## What the model changed beyond the deterministic rewrites", "", "```diff",
                  report["model_diff"].rstrip(), "```"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none ran"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def write_report(path: Path, events: Sequence[Event]) -> None:
    """The report at ``path``: JSON when it ends in ``.json``, else Markdown."""
    report = summary(events)
    text = json.dumps(report, indent=2) + "\n" if path.suffix == ".json" else markdown(report)
    path.write_text(text, encoding="utf-8")
