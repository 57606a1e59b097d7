"""The live terminal view of a fix run (rich): the round, each candidate, tests failing, time."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from codespark.agent.loop import Event


class FixView:
    """Feed it events; ``render()`` gives what ``rich.live.Live`` shows."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.lines: list[str] = []
        self.rows: list[tuple[str, ...]] = []
        self.status = "starting"

    def feed(self, event: Event) -> None:
        d: dict[str, Any] = event.data
        if event.kind == "started":
            self.lines.append(f"tests: [bold]{escape(d['test_command'])}[/bold] ({escape(d['why'])})")
            if d.get("branch"):
                self.lines.append(f"rounds are committed on branch [bold]{escape(d['branch'])}[/bold]")
            self.status = "running the tests"
        elif event.kind == "baseline":
            self.lines.append(f"before: {escape(d['summary'])}")
            self.status = "looking for the cause"
        elif event.kind == "static":
            self.lines.append(f"static fixes (imports): {escape(d['summary'])}")
        elif event.kind == "mutation":
            found = f"fixed {d['unit']}, {d['fixed']}" if d["fixed"] else "none turned the tests green"
            if d["fixed"] and not d.get("trusted", True):
                found += f" (the tests reject only {d['rejected']}/{d['probed']} of its neighbours: asking the model)"
            self.lines.append(f"single-token repairs: {d['tried']} tried in {d['seconds']:.0f} s, {escape(found)}")
        elif event.kind == "round":
            target = d.get("target") or "nothing to change"
            self.status = f"round {d['round']}: {target} ({d.get('engine', '')})"
            self.lines.append(f"[bold]round {d['round']}[/bold]: {escape(str(target))}")
        elif event.kind == "candidate":
            outcome = "[red]refused[/red]" if d["outcome"] == "refused" else f"{d['failing']} failing"
            self.rows.append((str(d["round"]), str(d["index"] + 1), d["engine"], outcome, escape(d["reason"][:90]),
                              f"{d['seconds']:.1f} s"))  # fmt: skip
        elif event.kind == "fallback":
            self.lines.append(f"  kept the single-token repair: {escape(d['unit'])}, {escape(d['fixed'])}")
        elif event.kind == "best":
            self.lines.append(f"  kept: {escape(d['unit'])} -> {escape(d['summary'])}")
        elif event.kind == "finished":
            self.status = f"{d['status']} in {d['seconds']:.0f} s: {d['summary']}"

    def render(self) -> RenderableType:
        table = Table(box=None, pad_edge=False)
        for column in ("round", "cand.", "engine", "result", "why", "time"):
            table.add_column(column)
        for row in self.rows[-12:]:
            table.add_row(*row)
        elapsed = time.perf_counter() - self.started
        status = Text.from_markup(f"[bold cyan]{escape(self.status)}[/bold cyan]  {elapsed:.0f} s")
        return Group(*(Text.from_markup(line) for line in self.lines[-8:]), table, status)
