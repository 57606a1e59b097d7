"""Reversible redaction for one request.

A ``Redactor`` replaces each detected value with a placeholder such as
``<SECRET_1>`` or ``<EMAIL_2>``.  The same value gets the same placeholder
every time within the request, so the upstream model can still see that two
mentions are one thing.  ``restore`` puts the values back into the answer,
and ``StreamRestorer`` does it for a stream whose chunks may cut a
placeholder anywhere.  The mapping lives in this object only: it is never
logged, stored or shared between requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codespark.guard.detectors import Finding, scan


@dataclass
class Redactor:
    """Placeholders for the values found in one request's text, and the way back."""

    _by_value: dict[str, str] = field(default_factory=dict)
    _by_placeholder: dict[str, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    _seen_text: list[str] = field(default_factory=list)

    def redact(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder."""
        self._seen_text.append(text)
        findings = scan(text)
        if not findings:
            return text
        out: list[str] = []
        pos = 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(self._placeholder(f, text[f.start : f.end]))
            pos = f.end
        out.append(text[pos:])
        return "".join(out)

    def _placeholder(self, finding: Finding, value: str) -> str:
        known = self._by_value.get(value)
        if known is not None:
            return known
        kind = "SECRET" if finding.kind not in _PII_KINDS else finding.kind
        while True:
            n = self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = f"<{kind}_{n}>"
            # Never reuse text the user wrote themselves, or restoring would rewrite it.
            if not any(placeholder in t for t in self._seen_text):
                break
        self._by_value[value] = placeholder
        self._by_placeholder[placeholder] = value
        return placeholder

    @property
    def count(self) -> int:
        """How many distinct values were redacted."""
        return len(self._by_value)

    def kinds(self) -> dict[str, int]:
        """Distinct redacted values per placeholder kind (for metrics; never the values)."""
        out: dict[str, int] = {}
        for placeholder in self._by_placeholder:
            kind = placeholder[1:].rsplit("_", 1)[0]
            out[kind] = out.get(kind, 0) + 1
        return out

    def occurrences(self, text: str) -> list[tuple[str, str, int]]:
        """(placeholder, value, line number) for each value of this request found in ``text``."""
        out = []
        for value, placeholder in self._by_value.items():
            at = text.find(value)
            if at >= 0:
                out.append((placeholder, value, text.count("\n", 0, at) + 1))
        return sorted(out, key=lambda item: item[2])

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this request put back."""
        if not self._by_placeholder or "<" not in text:
            return text
        for placeholder, value in self._by_placeholder.items():
            text = text.replace(placeholder, value)
        return text

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self)

    def pending_prefix(self, text: str) -> int:
        """Length of the longest tail of ``text`` that could begin a placeholder."""
        start = text.rfind("<")
        while start != -1:
            tail = text[start:]
            if any(p.startswith(tail) and p != tail for p in self._by_placeholder):
                return len(tail)
            start = text.rfind("<", 0, start)
        return 0


# Kinds whose placeholder names the kind; every secret format is just ``SECRET``:
# telling the upstream model "this was a Stripe key" is itself a leak of sorts.
_PII_KINDS = frozenset({"EMAIL", "PHONE", "CARD", "SSN", "IP_ADDRESS"})


class StreamRestorer:
    """Restores placeholders across stream chunks.

    ``feed`` returns the text that is safe to emit: everything except a tail
    that could still grow into a placeholder.  ``flush`` returns that tail at
    the end of the stream.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._redactor.restore(self._held + chunk)
        keep = self._redactor.pending_prefix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
