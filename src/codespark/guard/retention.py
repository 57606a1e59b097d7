"""Zero retention for logs: every log line passes through the detectors.

Log lines are not meant to hold user content at all (the server logs
decisions and sizes, never text).  This filter is the second line: whatever a
line does carry (an exception message, a query string in the access log) is
redacted, one-way, before any handler writes it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from codespark.guard.detectors import scan


def redact_line(text: str) -> str:
    """``text`` with every finding replaced by ``<KIND>`` (no mapping is kept)."""
    findings = scan(text)
    if not findings:
        return text
    out, pos = [], 0
    for f in findings:
        out += [text[pos : f.start], f"<{f.kind}>"]
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message and any exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_line(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = str(exc)
            if redact_line(text) != text:
                record.exc_info = None
                record.msg = f"{record.msg} [{type(exc).__name__}: {redact_line(text)}; traceback withheld]"
        return True


def install(level: str) -> None:
    """Root logging for the CLI: one stderr handler, redacting."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging config, with the filter on each of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["codespark_redact"] = {"()": "codespark.guard.retention.RedactingFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("codespark_redact")
    return config
