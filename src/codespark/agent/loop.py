"""The self-healing loop: search over candidates checked by the tests.

1. Run the tests once (the baseline).  Green: nothing to do.
2. Cheap fixes first: undefined names with a sure import are fixed deterministically; syntax errors go
   to the cheap engine (spark when loaded) once.
3. Single-token repairs (``mutate``): one edit of the suspected unit at a time (a comparison, an
   operator, a bound off by one, swapped arguments, another variable, a lost return), nearest the failing
   line first, within a count and time budget.  The first that turns the suite green is kept when the
   tests can tell: most single edits of the repaired unit (and at least ``min_probes``) must make them fail
   again (``_test_power``).  Tests that cannot (one or two examples) would pass a coincidence as well as a
   fix, so the search goes on to the model, for one round, from the code as it was, and the one-token fix
   is kept when no model answer turns the suite green.
4. Rounds: localize the unit to change; ask for ``candidates`` whole-unit rewrites: the first greedy and
   alone, the rest sampled side by side (one evaluation of each prompt, one batch per decoding step),
   half from the current code and half anew from the specification (all but one anew once the current
   code's prompt mostly comes back unchanged); test each on the failing tests while the next request
   generates; run the whole suite for any that passes them.  The best candidate by tests failing is
   kept, committed as the round, and the next round starts from it.
5. Escalation: later rounds go to the next sampler (an upstream, when configured).

Everything happens in a ``Workspace``; the user's tree is only written by ``Workspace.apply``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from codespark.agent import mutate, prompts, sandbox, static, window
from codespark.agent.edit import Edit, RefusedEdit, UnchangedEdit, replace_unit
from codespark.agent.localize import (
    Project,
    Target,
    Unit,
    blames,
    feedback,
    focus_line,
    is_test_path,
    localize,
    used_definitions,
)
from codespark.agent.sandbox import Limits
from codespark.agent.testrun import TestCommand, TestReport, executed_lines
from codespark.agent.workspace import Workspace
from codespark.engine.backend import SamplingParams
from codespark.engine.chat import Message
from codespark.errors import CodesparkError

T = TypeVar("T")


class Sampler(Protocol):
    """Where candidates come from (an engine through the chat service, an upstream, or a test fake)."""

    name: str

    async def sample(self, messages: Sequence[Message], params: SamplingParams) -> str: ...

    async def sample_many(self, messages: Sequence[Message], params: Sequence[SamplingParams]) -> list[str]:
        """One answer per ``params``, in order (a local engine samples them side by side)."""
        ...


@dataclass(frozen=True)
class FixOptions:
    rounds: int = 3
    candidates: int = 6
    temperature: float = 0.8
    max_tokens: int = 768
    allow_test_edits: bool = False
    limits: Limits = field(default_factory=lambda: Limits(timeout_s=300))
    test_timeout_s: float = 10.0  # one pytest test running longer fails (an endless loop), the run goes on
    seed: int = 1
    escalate_after: int = 1  # rounds on one sampler before the next one in the ladder
    mutants: int = 80  # single-token repairs tried before the model (agent/mutate.py); 0: none
    mutation_seconds: float = 60.0  # and the time they may take
    probes: int = 10  # single edits of a one-token fix tried to see whether the tests can tell it apart
    trust: float = 0.8  # the share of those the tests must reject for the fix to end the search
    min_probes: int = 5  # and how many must have been tried (fewer is too little evidence to end it)
    probe_seconds: float = 30.0  # and the time those may take
    brief: str = ""  # what the caller knows of the failures (a migration: "written for Python 2…"), in the prompt


@dataclass(frozen=True)
class Event:
    """One step of a run, for the terminal view, ``--json`` lines and SSE."""

    kind: str  # started | baseline | static | mutation | round | candidate | best | fallback | finished
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **self.data}


@dataclass
class FixResult:
    status: str  # fixed | not-fixed | already-green
    rounds: int
    diff: str
    changed: list[str]
    branch: str | None
    seconds: float
    report: TestReport


def _failing(report: TestReport) -> int:
    """How bad a report is: tests failing plus collection errors (an unstructured failing run counts 1)."""
    if report.structured:
        return len(report.failed) + len(report.collect_errors) + (0 if report.run.ok or report.failed else 1)
    return 0 if report.green else 1


@dataclass(frozen=True)
class _Fallback:
    """A one-token fix that turned the suite green but that the tests could not tell from its neighbours."""

    path: str
    unit: str
    what: str
    text: str


@dataclass
class _Tried:
    index: int
    edit: Edit | None
    report: TestReport | None  # the full run when it passed the failing tests, else the failing tests' run
    full: bool
    reason: str
    failing: float  # estimated tests failing over the whole suite (see FixLoop._score)
    seconds: float
    prompt: str = "fix"  # fix: from the current code | anew: from the specification
    repeat: bool = False  # the code as it was, or an earlier candidate again


class FixLoop:
    """One repair run over a workspace; iterate ``events()``; ``result`` is set when it ends."""

    def __init__(
        self,
        workspace: Workspace,
        command: TestCommand,
        samplers: Sequence[Sampler],
        options: FixOptions = FixOptions(),
        cheap: Sampler | None = None,
    ) -> None:
        if not samplers:
            raise ValueError("FixLoop needs at least one sampler")
        self.ws = workspace
        self.command = command
        self.samplers = list(samplers)
        self.cheap = cheap
        self.options = options
        self.project = Project(workspace.root)
        self.result: FixResult | None = None
        self.timeouts = 0  # test runs killed by the wall-clock timeout
        self.endless = 0  # single tests stopped by the per-test timeout (the run went on)
        self.fixed_by: str | None = None  # static | mutation | model: what made the last improvement
        self._started = time.perf_counter()

    def _test(self, only: Sequence[str] = ()) -> TestReport:
        report = self.command.run(self.ws.root, self.options.limits, only, self.options.test_timeout_s)
        self.timeouts += report.run.timed_out
        self.endless += sum(f.timeout for f in report.failures)
        return report

    async def _run_tests(self, only: Sequence[str] = ()) -> TestReport:
        return await _in_thread(self._test, only)

    def _elapsed(self) -> float:
        return round(time.perf_counter() - self._started, 2)

    async def events(self) -> AsyncGenerator[Event, None]:
        ws, opts = self.ws, self.options
        yield Event("started", {"root": str(ws.source), "test_command": self.command.command,
                                "runner": self.command.kind, "why": self.command.reason,
                                "engines": [s.name for s in self.samplers], "branch": ws.branch})  # fmt: skip
        best = await self._run_tests()
        yield Event("baseline", self._report_data(best))
        if best.green:
            self._finish("already-green", 0, best)
            yield self._finished_event()
            return
        fixed = await self._static_pass(best)
        if fixed is not None:
            best = fixed
            self.fixed_by = "static"
            ws.commit(f"codespark fix: imports for undefined names ({best.summary()})")
            yield Event("static", self._report_data(best))
        fallback: _Fallback | None = None  # a one-token fix the tests could not vouch for
        if not best.green and opts.mutants > 0:
            found, data, fallback = await _in_thread(self._mutation_pass, best)
            yield Event("mutation", data)
            if found is not None:
                best = found
                self.fixed_by = "mutation"
                ws.commit(f"codespark fix: {data['unit']}, {data['fixed']} ({best.summary()})")
        if best.green:
            self._finish("fixed", 0, best)
            yield self._finished_event()
            return
        earlier: list[str] = []
        stale = 0
        rounds = 0
        anew = False  # the fix prompt mostly came back as the code it showed: write the candidates anew
        # With a green one-token fix in hand (the fallback), the model gets one round to find a better-founded one.
        for round_no in range(1, (1 if fallback is not None else opts.rounds) + 1):
            rounds = round_no
            targets = localize(best, self.project, opts.allow_test_edits)
            if not targets:
                why = "no function in the project's code is implicated by the failures"
                yield Event("round", {"round": round_no, "target": None, "why": why})
                break
            target = targets[min(stale, len(targets) - 1)]  # a round without progress: the next suspect
            sampler = self.samplers[min((round_no - 1) // max(1, opts.escalate_after), len(self.samplers) - 1)]
            if round_no == 1 and self.cheap is not None and self._syntax_broken(target.unit):
                sampler = self.cheap
            yield Event("round", {"round": round_no, "target": f"{target.unit.path}:{target.unit.name}",
                                  "why": target.why[:3], "engine": sampler.name,
                                  "candidates": opts.candidates})  # fmt: skip
            chosen: _Tried | None = None
            fixing = repeats = 0
            async for tried in self._candidates(sampler, target, best, round_no, earlier, anew):
                fixing += tried.prompt == "fix"
                repeats += tried.prompt == "fix" and tried.repeat
                yield Event("candidate", {"round": round_no, "index": tried.index, "engine": sampler.name,
                                          "outcome": "refused" if tried.edit is None else "tested",
                                          "reason": tried.reason, "failing": tried.failing,
                                          "full_suite": tried.full, "seconds": round(tried.seconds, 2),
                                          "prompt": tried.prompt})  # fmt: skip
                if tried.edit is not None and (chosen is None or tried.failing < chosen.failing):
                    chosen = tried
                if tried.edit is None or tried.failing >= _failing(best):
                    earlier.append(tried.reason)
            improved = chosen is not None and chosen.failing < _failing(best)
            if improved:
                assert chosen is not None and chosen.edit is not None and chosen.report is not None
                report = chosen.report if chosen.full else None
                self._put(chosen.edit.path, chosen.edit.after)
                if report is None:
                    report = await self._run_tests()
                if self._score(report, best, target.unit) < _failing(best):
                    best = report
                    self.fixed_by = "model"
                    ws.commit(f"codespark fix round {round_no}: {chosen.edit.unit} ({best.summary()})")
                    earlier.clear()
                    stale = 0
                    yield Event("best", {"round": round_no, "unit": chosen.edit.unit, **self._report_data(best)})
                else:  # it passed the failing tests but broke others: back to the best so far
                    self._put(chosen.edit.path, chosen.edit.before)
                    improved = False
            if not improved:
                stale += 1
            anew = anew or (fixing >= 2 and repeats * 2 >= fixing)
            earlier[:] = earlier[-3:]
            if best.green:
                break
        if not best.green and fallback is not None:  # no model answer did better: the one-token fix after all
            current = ws.read(fallback.path)
            self._put(fallback.path, fallback.text)
            report = await self._run_tests()
            if report.green:
                best = report
                self.fixed_by = "mutation"
                ws.commit(f"codespark fix: {fallback.unit}, {fallback.what} ({best.summary()})")
                yield Event("fallback", {"unit": fallback.unit, "fixed": fallback.what, **self._report_data(best)})
            else:  # the model's rounds changed what it relied on
                self._put(fallback.path, current)
        self._finish("fixed" if best.green else "not-fixed", rounds, best)
        yield self._finished_event()

    def _score(self, report: TestReport, best: TestReport, unit: Unit) -> float:
        """Tests failing; half a test fewer when the best run's collection errors pointed into ``unit`` and
        this run's no longer do: the next error was hidden behind that one (a module every test imports,
        with one Python 2 leftover after another), so the count alone cannot show the progress."""
        score = float(_failing(report))
        if report.collect_errors and blames(best, self.project, unit) and not blames(report, self.project, unit):
            score -= 0.5
        return score

    def _syntax_broken(self, unit: Unit) -> bool:
        try:
            compile(self.project.text(unit.path), unit.path, "exec", dont_inherit=True)
        except SyntaxError:
            return True
        return False

    async def _static_pass(self, best: TestReport) -> TestReport | None:
        """Imports for undefined names with a sure answer, in the files the failures point at; the new
        report when they help (they are undone when they do not)."""
        files = {f.path for failure in best.failures for f in failure.frames if f.path.endswith(".py")}
        files |= {t.unit.path for t in localize(best, self.project, self.options.allow_test_edits)}
        files = {f for f in files if self.options.allow_test_edits or not is_test_path(f)}
        found = [p for p in static.problems(self.project, sorted(files)) if p.path in files]
        edits = static.deterministic_fixes(self.project, found)
        if not edits:
            return None
        for edit in edits:
            self._put(edit.path, edit.after)
        report = await self._run_tests()
        if _failing(report) < _failing(best):
            return report
        for edit in edits:  # no better: undo
            self._put(edit.path, edit.before)
        return None

    def _mutation_pass(self, best: TestReport) -> tuple[TestReport | None, dict[str, Any], _Fallback | None]:
        """Single edits of the two most suspected units, nearest the failing line first, within the count
        and time budget.  The first that turns the whole suite green is kept (written in the workspace) when
        the tests can tell it apart from its neighbours; otherwise it is put back and returned as the
        fallback."""
        started = time.perf_counter()
        opts = self.options
        failing_ids = best.failed if self.command.pytest else []
        tried = 0
        executed: dict[str, set[int] | None] = {}  # per file: the lines the failing tests ran (one coverage run)
        for target in localize(best, self.project, opts.allow_test_edits)[:2]:
            unit = target.unit
            before = self.project.text(unit.path)
            focus = focus_line(best, self.project, unit)
            if unit.path not in executed:
                ran = executed_lines(self.ws.root, unit.path, failing_ids, opts.limits) if failing_ids else None
                executed[unit.path] = ran[0] if ran is not None else None
            for mutant in mutate.mutants(before, unit, focus, opts.mutants - tried, executed[unit.path]):
                if time.perf_counter() - started > opts.mutation_seconds:
                    break
                tried += 1
                self._put(unit.path, mutant.text)
                full = self._green(failing_ids)
                if full is None:
                    self._put(unit.path, before)
                    continue
                killed, probed = self._test_power(unit, mutant, before, failing_ids, executed[unit.path])
                trusted = probed >= self._min_probes() and killed >= opts.trust * probed
                data = {"tried": tried, "unit": unit.name, "fixed": mutant.what, "path": unit.path,
                        "lines": _changed_lines(before, mutant.text), "probed": probed, "rejected": killed,
                        "trusted": trusted, "seconds": self._since(started)}  # fmt: skip
                if trusted:
                    return full, data, None
                self._put(unit.path, before)
                return None, data, _Fallback(unit.path, unit.name, mutant.what, mutant.text)
        data = {"tried": tried, "unit": None, "fixed": None, "seconds": self._since(started)}
        return None, data, None

    def _put(self, path: str, text: str) -> None:
        """Write a file in the workspace and drop the project's parse of it."""
        self.ws.write(path, text)
        self.project.forget(path)

    def _green(self, failing_ids: Sequence[str]) -> TestReport | None:
        """The whole suite's report when the code as it is now passes it (the failing tests first)."""
        sub = self._test(failing_ids) if failing_ids else None
        if sub is not None and not (sub.run.ok and not sub.failed):
            return None
        full = self._test()
        return full if full.green else None

    def _test_power(self, unit: Unit, fix: mutate.Mutant, original: str, failing_ids: Sequence[str],
                    executed: set[int] | None) -> tuple[int, int]:  # fmt: skip
        """Of up to ``probes`` single edits of the fixed unit (nearest the fix, in the lines the failing tests
        ran, the original slip excluded), how many the tests reject, and how many were tried.  Tests that
        reject most of them pin the unit down; tests that pass most would have passed a coincidence too.
        Fewer than ``min_probes`` tried is too little evidence either way (HumanEval/74: a one-token fix
        of a 5-line function that only 3 edits probed, all rejected, and that fails the hidden tests).
        Stops as soon as the answer is sure, and after ``probe_seconds`` (a slow suite: the answer is then
        what the probes run so far say; none run: not trusted)."""
        opts = self.options
        probes = [m for m in mutate.mutants(fix.text, unit, fix.line, opts.probes + 1, executed) if m.text != original]
        probes = probes[: opts.probes]
        killed = survived = 0
        deadline = time.perf_counter() + opts.probe_seconds
        try:
            for probe in probes:
                if time.perf_counter() > deadline:
                    break
                self._put(unit.path, probe.text)
                if self._green(failing_ids) is None:
                    killed += 1
                else:
                    survived += 1
                sure = killed >= opts.trust * len(probes) and killed + survived >= self._min_probes()
                if sure or survived > (1 - opts.trust) * len(probes):
                    break
        finally:
            self._put(unit.path, fix.text)
        return killed, killed + survived

    def _min_probes(self) -> int:
        return min(self.options.min_probes, self.options.probes)

    @staticmethod
    def _since(started: float) -> float:
        return round(time.perf_counter() - started, 2)

    def _messages(self, target: Target, best: TestReport, earlier: Sequence[str], anew: bool = False) -> list[Message]:
        unit, project = target.unit, self.project
        source = project.source(unit)
        problems = [str(p) for p in static.problems(project, [unit.path]) if unit.start <= p.line <= unit.end]
        return prompts.fix_messages(
            unit.path, unit.name, unit.kind, source, prompts.header(project.text(unit.path)),
            feedback(best, project, unit), used_definitions(project, unit), problems, earlier,
            prompts.specification(source) if anew else None, self.options.brief,
        )  # fmt: skip

    async def _candidates(
        self,
        sampler: Sampler,
        target: Target,
        best: TestReport,
        round_no: int,
        earlier: Sequence[str],
        mostly_anew: bool = False,
    ) -> AsyncGenerator[_Tried, None]:
        """Generate and test ``candidates`` answers.

        Even candidates fix the current code; odd ones (for a function with a specification) write it anew
        from its signature and docstring, since a small model shown wrong code mostly writes it again.
        ``mostly_anew`` (the fix prompt came back unchanged before): only the first fixes the code."""
        opts = self.options
        unit = target.unit
        focus = focus_line(best, self.project, unit)
        frame = window.choose(self.project, unit, focus) if focus is not None else None
        if frame is not None:  # a long unit: only a window of it is rewritten
            excerpt = window.excerpt(self.project, unit, frame)
            problems = [
                str(p) for p in static.problems(self.project, [unit.path]) if frame.start <= p.line <= frame.end
            ]
            fix = anew = prompts.window_messages(unit.path, unit.name, unit.kind, excerpt, frame.relative(unit),
                                                 feedback(best, self.project, unit), problems, earlier,
                                                 opts.brief)  # fmt: skip
            size = len("".join(self.project.text(unit.path).splitlines(keepends=True)[frame.start - 1 : frame.end]))
        else:
            fix = self._messages(target, best, earlier)
            anew = self._messages(target, best, earlier, anew=True)
            if prompts.specification(self.project.source(unit)) is None:
                anew = fix
            size = len(self.project.source(unit))
        # Room for the code rewritten half as long again, within max_tokens (code is ~3.5 characters a token):
        # a sampled small model that loses its way would otherwise ramble to the limit.
        budget = min(opts.max_tokens, 160 + size // 2)

        def params(i: int) -> SamplingParams:
            # Only the very first is greedy: greedy from the same code or specification mostly gives the
            # answer that already failed (measured on HumanEval: 9 of 16 candidates came back unchanged).
            greedy = i == 0 and round_no == 1
            temperature = 0.0 if greedy else min(1.1, opts.temperature + 0.1 * (i // 2) + 0.1 * (round_no - 1))
            return SamplingParams(max_tokens=budget, temperature=temperature, top_p=0.95,
                                  seed=opts.seed + 1000 * round_no + i)  # fmt: skip

        # The first candidate alone (when it is right, nothing else is generated), then one request per prompt
        # for the rest, its candidates sampled side by side from one evaluation of the prompt; each request's
        # candidates are tested while the next request generates.
        n = opts.candidates
        plan: list[tuple[str, list[Message], list[int]]] = [("fix", fix, [0])]  # (prompt kind, chat, candidates)
        if anew is fix:
            plan.append(("fix", fix, list(range(1, n))))
        elif mostly_anew:
            plan.append(("anew", anew, list(range(1, n))))
        else:
            plan += [("fix", fix, list(range(2, n, 2))), ("anew", anew, list(range(1, n, 2)))]
        plan = [step for step in plan if step[2]]
        pending = [
            asyncio.create_task(sampler.sample_many(chat, [params(i) for i in group])) for _, chat, group in plan
        ]
        seen: set[str] = set()
        try:
            for (kind, _, indices), task in zip(plan, pending, strict=True):
                try:
                    answers = await task
                except CodesparkError as exc:  # the prompt does not fit, the engine is down: this round ends
                    yield _Tried(indices[0], None, None, False, f"no candidate: {exc.message}", _failing(best), 0.0)
                    return
                for i, answer in zip(indices, answers, strict=False):
                    tried = await _in_thread(self._try, i, unit, answer, best, seen, frame)
                    tried.prompt = kind
                    yield tried
                    if tried.full and tried.report is not None and tried.report.green:
                        return
        finally:
            for task in pending:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _try(self, index: int, unit: Unit, answer: str, best: TestReport, seen: set[str],
             frame: window.Window | None = None) -> _Tried:  # fmt: skip
        """Apply one answer in the workspace (to the unit, or to its window), test it, put the best back."""
        started = time.perf_counter()
        baseline = _failing(best)
        try:
            if frame is not None:
                edit = window.replace_window(self.project, unit, frame, answer, self.options.allow_test_edits)
            else:
                edit = replace_unit(self.project, unit, answer, self.options.allow_test_edits)
        except RefusedEdit as exc:
            repeat = isinstance(exc, UnchangedEdit)
            return _Tried(index, None, None, False, str(exc), baseline, time.perf_counter() - started, repeat=repeat)
        if edit.after in seen:
            return _Tried(index, None, None, False, "the same as an earlier candidate", baseline, 0.0, repeat=True)
        seen.add(edit.after)
        try:
            self._put(edit.path, edit.after)
            new_names = self._new_undefined(edit)
            if new_names:
                reason = f"uses names that do not exist: {', '.join(new_names)}"
                return _Tried(index, None, None, False, reason, baseline, time.perf_counter() - started)
            failing_ids = best.failed if self.command.pytest else []
            if failing_ids:
                sub = self._test(failing_ids)
                still = len(sub.failed) + (0 if sub.run.ok or sub.failed else len(failing_ids))
                if sub.run.timed_out or still > 0:
                    estimate = baseline - (len(failing_ids) - still)
                    why = _why(sub)
                    return _Tried(index, edit, sub, False, why, estimate, time.perf_counter() - started)
            full = self._test()
            score = self._score(full, best, unit)
            return _Tried(index, edit, full, True, _why(full), score, time.perf_counter() - started)
        finally:
            self._put(edit.path, edit.before)

    def _new_undefined(self, edit: Edit) -> list[str]:
        """Names the candidate uses that do not exist and the code before it did not use: undefined names,
        imports that resolve to nothing, attributes an imported module lacks (cheap feedback: no test run)."""
        now = {p.name for p in static.problems(self.project, [edit.path]) if p.kind in static.NAME_KINDS}
        if not now:
            return []
        self._put(edit.path, edit.before)
        before = {p.name for p in static.problems(self.project, [edit.path]) if p.kind in static.NAME_KINDS}
        self._put(edit.path, edit.after)
        return sorted(now - before)

    def _report_data(self, report: TestReport) -> dict[str, Any]:
        return {"summary": report.summary(), "passed": report.passed, "failed": report.failed[:50],
                "failing": _failing(report), "timed_out": report.run.timed_out,
                "test_seconds": round(report.run.seconds, 2)}  # fmt: skip

    def _finish(self, status: str, rounds: int, report: TestReport) -> None:
        self.result = FixResult(status, rounds, self.ws.diff(), self.ws.changed(), self.ws.branch,
                                self._elapsed(), report)  # fmt: skip

    def _finished_event(self) -> Event:
        assert self.result is not None
        r = self.result
        by = self.fixed_by if r.status == "fixed" else None
        return Event("finished", {"status": r.status, "rounds": r.rounds, "changed": r.changed, "diff": r.diff,
                                  "branch": r.branch, "seconds": r.seconds, "timeouts": self.timeouts,
                                  "endless_tests": self.endless, "fixed_by": by,
                                  **self._report_data(r.report)})  # fmt: skip


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn`` in a thread; when the run is cancelled (Ctrl-C, a client gone), its test processes die too."""
    try:
        return await asyncio.to_thread(fn, *args)
    except asyncio.CancelledError:
        sandbox.terminate_all()
        raise


def _changed_lines(before: str, after: str) -> list[tuple[int, str]]:
    """The lines a one-token edit changed (it keeps the line count): (line number, new text)."""
    old, new = before.splitlines(), after.splitlines()
    return [(i, b) for i, (a, b) in enumerate(zip(old, new, strict=False), 1) if a != b]


def _why(report: TestReport) -> str:
    if report.green:
        return "all tests pass"
    if report.run.timed_out:
        return "the test run timed out"
    first = next(iter(report.failures), None)
    if first is None:
        return report.summary()
    message = first.message.strip().splitlines()[0][:200] if first.message.strip() else ""
    return f"{report.summary()}; {first.test}: {first.exc_type}: {message}"
