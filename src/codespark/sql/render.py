"""How the SQL assistant looks in a terminal: the SQL, the explanation, the checks, the rows."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from codespark.sql.assistant import Answer
from codespark.sql.chart import render_chart

HELP = "Ask a question. Commands: \\\\schema refreshes the schema, \\\\q quits (or Ctrl-D)."


def answer(out: Console, result: Answer) -> None:
    if result.sql:
        out.print(Syntax(result.sql, "sql", theme="ansi_dark", word_wrap=True))
    if result.explanation:
        out.print(escape(result.explanation))
    for i, check in enumerate(result.trail, start=1):
        marks = " ".join(
            f"[green]✓ {s.check}[/green]" if s.ok else f"[red]✗ {s.check}[/red]: {escape(s.detail)}"
            for s in check.steps
        )
        out.print(f"[dim]round {i}:[/dim] {marks}")
    if result.error:
        out.print(f"[red]{escape(result.error)}[/red]")
    rows = result.rows
    if rows is not None and rows.columns:
        table = Table(*rows.columns, show_lines=False)
        for row in rows.rows:
            table.add_row(*(escape("NULL" if v is None else str(v)) for v in row))
        out.print(table)
        more = " (more rows not fetched: raise --max-rows)" if rows.truncated else ""
        out.print(f"[dim]{len(rows.rows)} row(s){more}; {result.total_ms / 1000:.1f} s[/dim]")


def chart(result: Answer, path: Path) -> str:
    assert result.rows is not None
    return render_chart(result.rows, path, result.question, result.sql)


def repl(console: Console, where: str, ask: Callable[[str], bool], refresh: Callable[[], None]) -> None:
    """Read questions until EOF; history lives in memory for the session only (zero retention)."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and in-session history for input())
    console.print(f"codespark sql on {escape(where)}. {HELP}")
    while True:
        try:
            text = input("sql> ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not text:
            continue
        if text in ("\\q", "quit", "exit"):
            return
        if text == "\\schema":
            refresh()
            console.print("schema refreshed")
            continue
        ask(text)
