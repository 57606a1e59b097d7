"""A review's outputs: Markdown for the one PR comment (identical bytes for identical findings, so
re-runs edit it in place without churn), SARIF 2.1.0 for code scanning, JSON, and GitLab's Code Quality
report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from codespark import __version__
from codespark.review.findings import Finding
from codespark.review.run import ReviewResult

MARKER = "<!-- codespark-review -->"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"info": "note", "low": "note", "medium": "warning", "high": "error", "critical": "error"}
_CODEQUALITY = {"info": "info", "low": "minor", "medium": "major", "high": "critical", "critical": "blocker"}
_SECURITY_SEVERITY = {"info": "1.0", "low": "3.0", "medium": "5.5", "high": "8.0", "critical": "9.5"}


def markdown(result: ReviewResult) -> str:
    shown = result.shown
    hidden = len(result.findings) - len(shown)
    lines = [MARKER, "## codespark review (shadow mode)", ""]
    if shown:
        lines.append(f"{len(shown)} finding{'s' if len(shown) != 1 else ''} on {result.changed_lines} changed lines:")
        lines.append("")
        for f in shown:
            where = f"`{f.path}:{f.start}`" if f.start == f.end else f"`{f.path}:{f.start}-{f.end}`"
            check = " · shown by a test" if f.verified else ""
            lines.append(f"- **{f.severity}** {f.category} {where} ({f.rule_id}, confidence {f.confidence:.2f}{check})")
            lines.append(f"  {f.message}")
            if f.test:
                lines += ["  <details><summary>failing test</summary>", "", "  ```python"]
                lines += [f"  {t}" if t else "" for t in f.test.rstrip().splitlines()]
                lines += ["  ```", "  </details>"]
            if f.patch:
                lines += ["  <details><summary>suggested patch</summary>", "", "  ```diff"]
                lines += [f"  {t}" if t else "" for t in f.patch.rstrip().splitlines()]
                lines += ["  ```", "  </details>"]
            lines.append(f"  <sub>id `{f.id}`: `codespark review mark {f.id} accepted|dismissed`</sub>")
    else:
        lines.append(
            f"No findings at or above confidence {result.threshold:.2f} on {result.changed_lines} changed lines."
        )
    lines.append("")
    if hidden:
        lines.append(f"{hidden} lower-confidence or capped finding{'s' if hidden != 1 else ''} not shown "
                     "(in the JSON output and the findings log).")  # fmt: skip
    if result.skipped:
        lines.append("")
        lines.append("Not reviewed:")
        for s in result.skipped:
            lines.append(f"- `{s.path}`{f' `{s.what}`' if s.what else ''}: {s.reason}")
    for note in result.notes:
        lines.append(f"- {note}")
    lines += ["", f"<sub>Shadow mode: this comment never blocks a merge. Base `{result.base[:12]}`.</sub>", ""]
    return "\n".join(lines)


def _rule(f: Finding) -> dict[str, Any]:
    tags = [f.category] + (["security"] if f.category == "security" else [])
    rule: dict[str, Any] = {
        "id": f.rule_id,
        "name": f.rule_id.split("/", 1)[-1].replace("-", " ").title().replace(" ", ""),
        "shortDescription": {"text": f.rule_id},
        "defaultConfiguration": {"level": _LEVEL.get(f.severity, "warning")},
        "properties": {"tags": sorted(set(tags))},
    }
    if f.category == "security":
        rule["properties"]["security-severity"] = _SECURITY_SEVERITY.get(f.severity, "5.5")
    return rule


def sarif(result: ReviewResult, findings: Sequence[Finding] | None = None) -> dict[str, Any]:
    """SARIF 2.1.0: one run, a rule per rule id, a result per finding with ``partialFingerprints``."""
    chosen = list(result.shown if findings is None else findings)
    rules: dict[str, dict[str, Any]] = {}
    for f in chosen:
        rules.setdefault(f.rule_id, _rule(f))
    order = list(rules)
    results = []
    for f in chosen:
        item: dict[str, Any] = {
            "ruleId": f.rule_id,
            "ruleIndex": order.index(f.rule_id),
            "level": _LEVEL.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": f.start, "endLine": max(f.start, f.end)},
            }}],
            "partialFingerprints": {"codesparkFingerprint/v1": f.fingerprint},
            "properties": {"confidence": f.confidence, "category": f.category, "severity": f.severity,
                           "source": f.source, "verified": f.verified},
        }  # fmt: skip
        results.append(item)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "codespark", "version": __version__, "rules": list(rules.values())}},
            "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "The repository root."}}},
            "results": results,
        }],
    }  # fmt: skip


def codequality(result: ReviewResult) -> list[dict[str, Any]]:
    """GitLab's Code Quality report (a CodeClimate subset)."""
    return [{"description": f.message, "check_name": f.rule_id, "fingerprint": f.fingerprint,
             "severity": _CODEQUALITY.get(f.severity, "minor"), "categories": [f.category],
             "location": {"path": f.path, "lines": {"begin": f.start, "end": max(f.start, f.end)}}}
            for f in result.shown]  # fmt: skip


def render(result: ReviewResult, fmt: str) -> str:
    if fmt == "md":
        return markdown(result)
    if fmt == "sarif":
        return json.dumps(sarif(result), indent=2) + "\n"
    if fmt == "codequality":
        return json.dumps(codequality(result), indent=2) + "\n"
    return json.dumps(result.as_dict(), indent=2) + "\n"
