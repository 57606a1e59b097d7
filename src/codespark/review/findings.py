"""A finding, its stable fingerprint, and the rules that keep reviews quiet: changed lines only,
deduplicated, capped per file, and hidden below the confidence threshold."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

CATEGORIES = ("bug-risk", "security", "missing-test", "error-handling", "performance", "style")
SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_THRESHOLD = 0.6  # below it a finding is logged but not shown


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True)
class Finding:
    path: str
    start: int
    end: int
    rule_id: str  # stable: "codespark/behaviour-change", "bandit/B602", ...
    category: str  # one of CATEGORIES
    severity: str  # one of SEVERITIES
    confidence: float  # 0..1
    message: str  # one paragraph
    source: str  # model | differential | bandit | semgrep | guard | imports
    anchor: str = ""  # the flagged code, whitespace-normalized (for the fingerprint, never shown)
    function: str = ""
    patch: str = ""  # a unified diff that applies cleanly to the new tree ('' when none)
    test: str = ""  # a failing test that shows it ('' when none)
    verified: bool = False
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.fingerprint[:12]

    def with_fingerprint(self, occurrence: int = 0) -> Finding:
        """The fingerprint leaves out line numbers and wording: moving the code or rewording the reason
        keeps it, so re-runs deduplicate (SARIF ``partialFingerprints``, the findings log)."""
        key = "\0".join([self.rule_id, self.path, self.function, " ".join(self.anchor.split()), str(occurrence)])
        return replace(self, fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32])

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["id"] = self.id
        return data


def on_changed_lines(findings: Iterable[Finding], touched: dict[str, frozenset[int]]) -> list[Finding]:
    """Only findings whose lines overlap the changed lines of their file (reviewdog's "added" filter)."""
    out = []
    for f in findings:
        lines = touched.get(f.path, frozenset())
        if any(line in lines for line in range(f.start, f.end + 1)):
            out.append(f)
    return out


def finalize(findings: Sequence[Finding], per_file: int, threshold: float = DEFAULT_THRESHOLD) -> list[Finding]:
    """Fingerprinted, deduplicated (same rule and place: the most confident wins; a differential finding
    absorbs the model's claim on the same lines), ordered, and capped at ``per_file`` shown findings per
    file (the rest are kept, marked ``capped``)."""
    ordered = sorted(findings, key=lambda f: (-f.confidence, -severity_rank(f.severity), f.path, f.start))
    kept: list[Finding] = []
    for f in ordered:
        if any(_same(f, k) for k in kept):
            continue
        kept.append(f)
    counts: dict[tuple[str, str, str], int] = {}
    out: list[Finding] = []
    shown: dict[str, int] = {}
    for f in sorted(kept, key=lambda f: (f.path, f.start, f.rule_id)):
        key = (f.rule_id, f.path, " ".join(f.anchor.split()))
        f = f.with_fingerprint(counts.get(key, 0))
        counts[key] = counts.get(key, 0) + 1
        out.append(f)
    final = []  # the cap keeps the most severe, then the most confident
    for f in sorted(out, key=lambda f: (-severity_rank(f.severity), -f.confidence, f.path, f.start)):
        if f.confidence >= threshold:
            shown[f.path] = shown.get(f.path, 0) + 1
            if shown[f.path] > per_file:
                f = replace(f, extra={**f.extra, "capped": True})
        final.append(f)
    return sorted(final, key=lambda f: (f.path, f.start, f.rule_id))


def _same(a: Finding, b: Finding) -> bool:
    if a.path != b.path or a.start > b.end + 1 or b.start > a.end + 1:
        return False
    if a.rule_id == b.rule_id:
        return True
    model_pair = {a.source, b.source} == {"model", "differential"}
    return model_pair or (a.source == b.source == "model")


def visible(findings: Iterable[Finding], threshold: float = DEFAULT_THRESHOLD) -> list[Finding]:
    return [f for f in findings if f.confidence >= threshold and not f.extra.get("capped")]
