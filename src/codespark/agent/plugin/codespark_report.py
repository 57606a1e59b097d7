"""A pytest plugin that writes what the fix loop needs as JSON lines: each test's outcome, and for each
failure its exception, the assertion (pytest's own explanation, with actual and expected values), the
traceback frames with their locals, and collection errors.

Standalone on purpose (no codespark import): it is loaded into the project's own Python with
``-p codespark_report`` and ``PYTHONPATH`` pointing at this folder.  The report path is in
``CODESPARK_REPORT``; lines are appended as tests finish, so a run killed for its timeout still
reports the tests before it.  ``CODESPARK_TEST_TIMEOUT`` (seconds) fails one test that runs too long
(a Python-level endless loop) and lets the run go on.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Generator
from typing import Any

import pytest

_MAX_LOCALS = 12
_MAX_REPR = 160


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the report
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _frames(excinfo: pytest.ExceptionInfo[BaseException]) -> list[dict[str, Any]]:
    frames = []
    for entry in excinfo.traceback:
        if str(entry.path) == __file__:
            continue  # the per-test timeout's own frame
        local_vars = {}
        for name, value in list(entry.frame.f_locals.items())[:_MAX_LOCALS]:
            if not name.startswith("@") and not name.startswith("__"):
                local_vars[name] = _short(value)
        try:
            line = str(entry.statement).strip()
        except Exception:
            line = ""
        frames.append(
            {
                "path": str(entry.path),
                "line": entry.lineno + 1,
                "function": entry.name,
                "source": line,
                "locals": local_vars,
            }
        )
    return frames


def _write(record: dict[str, Any]) -> None:
    target = os.environ.get("CODESPARK_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


class TestTimeout(Exception):
    """Raised inside a test that ran past CODESPARK_TEST_TIMEOUT."""


def _alarm(signum: int, frame: object) -> None:
    raise TestTimeout(f"the test ran past {os.environ.get('CODESPARK_TEST_TIMEOUT')} s (an endless loop?)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    seconds = float(os.environ.get("CODESPARK_TEST_TIMEOUT") or 0)
    armed = seconds > 0 and hasattr(signal, "setitimer")
    if armed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or report.outcome != "passed":
        _write({"test": report.nodeid, "when": report.when, "outcome": "skipped" if report.skipped else report.outcome})
    if report.failed and call.excinfo is not None:
        excinfo = call.excinfo
        _path, line, _ = item.location
        _write(
            {
                "failure": report.nodeid,
                "when": report.when,
                "path": str(item.path),
                "line": line + 1 if line is not None else None,
                "exc_type": excinfo.type.__name__,
                "message": str(excinfo.value)[:4000],
                "frames": _frames(excinfo),
                "timeout": excinfo.type is TestTimeout,
            }
        )


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _write({"collect_error": report.nodeid, "message": str(report.longrepr)[-4000:]})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _write({"exitstatus": int(exitstatus)})
