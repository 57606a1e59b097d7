"""The findings log, ``.codespark/review-log.jsonl`` in the repository: every finding once (by
fingerprint), then the team's verdicts (``codespark review mark ID accepted|dismissed``).  ``stats`` gives
the acceptance and noise rates: the numbers to look at before turning ``--enforce`` on."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codespark.errors import InvalidRequestError
from codespark.review.findings import Finding

VERDICTS = ("accepted", "dismissed")


@dataclass(frozen=True)
class Stats:
    findings: int  # distinct fingerprints logged
    shown: int
    accepted: int
    dismissed: int
    by_rule: dict[str, dict[str, int]]
    runs: int

    @property
    def marked(self) -> int:
        return self.accepted + self.dismissed

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.marked if self.marked else None

    @property
    def noise(self) -> float | None:
        return self.dismissed / self.marked if self.marked else None

    def as_dict(self) -> dict[str, Any]:
        return {"findings": self.findings, "shown": self.shown, "accepted": self.accepted,
                "dismissed": self.dismissed, "unmarked_shown": self.shown - self.marked, "runs": self.runs,
                "acceptance_rate": self.acceptance, "noise_rate": self.noise, "by_rule": self.by_rule}  # fmt: skip


class FindingsLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_repo(cls, root: Path) -> FindingsLog:
        return cls(root / ".codespark" / "review-log.jsonl")

    def _entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: the rest of the log still counts
                if isinstance(entry, dict):
                    yield entry

    def _append(self, entries: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines.encode())  # one write per run: concurrent runs do not interleave lines
        finally:
            os.close(fd)

    def record(self, findings: Iterable[Finding], shown: Iterable[Finding], base: str) -> int:
        """Log the findings not logged before; returns how many were new."""
        seen = {e.get("fingerprint") for e in self._entries() if e.get("type") == "finding"}
        shown_ids = {f.fingerprint for f in shown}
        now = time.time()
        new = [{"type": "finding", "id": f.id, "fingerprint": f.fingerprint, "time": now, "rule": f.rule_id,
                "path": f.path, "line": f.start, "category": f.category, "severity": f.severity,
                "confidence": f.confidence, "source": f.source, "verified": f.verified,
                "shown": f.fingerprint in shown_ids, "message": f.message, "base": base}
               for f in findings if f.fingerprint not in seen]  # fmt: skip
        self._append([*new, {"type": "run", "time": now, "base": base, "findings": len(list(shown_ids))}])
        return len(new)

    def mark(self, finding_id: str, verdict: str) -> dict[str, Any]:
        if verdict not in VERDICTS:
            raise InvalidRequestError(f"Mark a finding {' or '.join(VERDICTS)}, not {verdict!r}.", param="verdict")
        matches = {e["fingerprint"]: e for e in self._entries()
                   if e.get("type") == "finding" and str(e.get("fingerprint", "")).startswith(finding_id)}  # fmt: skip
        if not finding_id or not matches:
            raise InvalidRequestError(f"No finding {finding_id!r} in {self.path}. The ids are in the review's "
                                      "output and its JSON.", param="id")  # fmt: skip
        if len(matches) > 1:
            raise InvalidRequestError(f"{finding_id!r} matches {len(matches)} findings: give more characters.")
        entry = next(iter(matches.values()))
        self._append([{"type": "mark", "fingerprint": entry["fingerprint"], "verdict": verdict, "time": time.time()}])
        return entry

    def stats(self) -> Stats:
        findings: dict[str, dict[str, Any]] = {}
        verdicts: dict[str, str] = {}
        runs = 0
        for e in self._entries():
            if e.get("type") == "finding":
                findings.setdefault(e["fingerprint"], e)
            elif e.get("type") == "mark":
                verdicts[e["fingerprint"]] = e["verdict"]  # the latest verdict wins
            elif e.get("type") == "run":
                runs += 1
        by_rule: dict[str, Counter[str]] = {}
        for fp, e in findings.items():
            c = by_rule.setdefault(e["rule"], Counter())
            c["findings"] += 1
            c["shown"] += bool(e.get("shown"))
            if fp in verdicts:
                c[verdicts[fp]] += 1
        counted = Counter(verdicts[fp] for fp in findings if fp in verdicts)
        return Stats(len(findings), sum(bool(e.get("shown")) for e in findings.values()), counted["accepted"],
                     counted["dismissed"], {k: dict(v) for k, v in sorted(by_rule.items())}, runs)  # fmt: skip
