"""The ``codespark`` command line.  One short function per command; the work is library code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from codespark import __version__
from codespark.config import Settings, load_settings
from codespark.errors import CodesparkError

app = typer.Typer(
    name="codespark",
    help="Self-hosted coding assistant engine: keystroke FIM (spark) and deeper work (codex).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
if TYPE_CHECKING:
    from codespark.migrate.run import Event as MigrationEvent
    from codespark.review.run import ReviewResult

console = Console(stderr=True)


def _stdout() -> Console:
    """Standard output; wide when piped, so tables are not folded into unreadable cells."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (also CODESPARK_CONFIG).", show_default=False)
]


def _describe(field: str) -> str:
    return Settings.model_fields[field].description or ""


class _ProvisionBar:
    """Adapts provisioning callbacks to a rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        label = {"download": "downloading parts", "assemble": "assembling", "verify": "verifying"}[stage]
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _fail(exc: CodesparkError) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(exc.message)}")
    return typer.Exit(2)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help=_describe("host"), show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help=_describe("port"), show_default=False)] = None,
    spark_model: Annotated[str | None, typer.Option(help=_describe("spark_model"), show_default=False)] = None,
    codex_model: Annotated[str | None, typer.Option(help=_describe("codex_model"), show_default=False)] = None,
    n_ctx: Annotated[int | None, typer.Option(help=_describe("n_ctx"), show_default=False)] = None,
    n_threads: Annotated[int | None, typer.Option(help=_describe("n_threads"), show_default=False)] = None,
    log_level: Annotated[str | None, typer.Option(help=_describe("log_level"), show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Start the HTTP server (OpenAI /v1, llama-server /infill).  Provisions models first."""
    import uvicorn

    from codespark.engine.loader import load_engines
    from codespark.guard import retention
    from codespark.guard.auth import check_exposure
    from codespark.server.app import create_app

    try:
        settings = load_settings(
            config,
            host=host,
            port=port,
            spark_model=spark_model,
            codex_model=codex_model,
            n_ctx=n_ctx,
            n_threads=n_threads,
            log_level=log_level,
        )
        check_exposure(settings.host, settings.api_keys)
        for upstream in settings.upstreams:
            upstream.api_key()  # a missing key file or variable is a clear error now, not a traceback later
        with _progress() as progress:
            engines = load_engines(settings, _ProvisionBar(progress))
    except CodesparkError as exc:
        raise _fail(exc) from exc
    retention.install(settings.log_level)
    base = f"http://{settings.host}:{settings.port}"
    for route, engine in engines.routes.items():
        console.print(f"[green]{route}[/green]: {engine.backend.info.model_id} (n_ctx {engine.n_ctx})")
    console.print(
        f"codespark {__version__} on {base}. Try:\n"
        f"  curl -s {base}/v1/completions -H 'Content-Type: application/json' "
        '-d \'{"model": "spark", "prompt": "def add(a, b):\\n    return", '
        '"suffix": "\\n", "max_tokens": 16, "temperature": 0}\''
    )
    uvicorn.run(
        create_app(settings, engines),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=retention.uvicorn_log_config(),
    )


@app.command()
def models(
    pull: Annotated[
        list[str] | None,
        typer.Option("--pull", help="Provision this catalog model ('all' for every one). Repeatable."),
    ] = None,
    verify: Annotated[bool, typer.Option(help="Re-hash provisioned files against the catalog.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List the model catalog and its state; --pull provisions models."""
    from codespark.models.catalog import CATALOG, find
    from codespark.models.provision import ensure, status
    from codespark.models.provision import verify as verify_file

    try:
        settings = load_settings(config)
        wanted = [s.name for s in CATALOG] if pull and "all" in pull else (pull or [])
        for name in wanted:
            spec = find(name)
            if spec is None:
                raise typer.BadParameter(f"unknown model {name!r}", param_hint="--pull")
            with _progress() as progress:
                path = ensure(spec, settings.models_dir, _ProvisionBar(progress))
            console.print(f"[green]ready[/green] {spec.name}: {path}")
        table = Table(title=f"models in {settings.models_dir}")
        for column in ("name", "role", "size", "state", "source", "description"):
            table.add_column(column)
        for spec in CATALOG:
            st = status(spec, settings.models_dir)
            state = st.state.value
            if verify and st.path.exists():
                with _progress() as progress:
                    state = "ready" if verify_file(spec, st.path, _ProvisionBar(progress)) else "corrupt"
            size = f"{spec.size / 1e6:,.0f} MB" if spec.size else "?"
            source = f"{spec.source.packages[0]}..=={spec.source.version} ({len(spec.source.packages)} wheels)"
            table.add_row(spec.name, spec.role, size, state, source, spec.description)
        _stdout().print(table)
    except CodesparkError as exc:
        raise _fail(exc) from exc


@app.command()
def complete(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Source file.")],
    line: Annotated[int, typer.Option(min=1, help="Cursor line (1-based).")],
    col: Annotated[int | None, typer.Option(min=1, help="Cursor column (1-based; default: end of line).")] = None,
    model: Annotated[str, typer.Option(help="Engine: spark or codex.")] = "spark",
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens to generate.")] = 64,
    config: ConfigOpt = None,
) -> None:
    """Fill in the middle at FILE:LINE:COL and print the completion."""
    from codespark.engine.tasks import complete_at

    try:
        settings = load_settings(config)
        text = complete_at(settings, file, line, col, model, max_tokens)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask.  Use - to read standard input.")],
    model: Annotated[str, typer.Option(help="Engine: codex or spark.")] = "codex",
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens to generate.")] = 512,
    config: ConfigOpt = None,
) -> None:
    """Ask a question and stream the answer to the terminal."""
    from codespark.engine.tasks import chat_stream

    text = sys.stdin.read() if prompt == "-" else prompt
    try:
        settings = load_settings(config)
        for piece in chat_stream(settings, text, model, max_tokens):
            sys.stdout.write(piece)
            sys.stdout.flush()
    except CodesparkError as exc:
        raise _fail(exc) from exc
    sys.stdout.write("\n")


@app.command()
def bench(
    runs: Annotated[int, typer.Option(min=1, help="Repeats per measurement; medians are reported.")] = 5,
    model: Annotated[list[str] | None, typer.Option(help="Engines to measure (default: spark and codex).")] = None,
    fim_tokens: Annotated[int, typer.Option(help="Prompt size for the FIM TTFT measurement.")] = 1000,
    output: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Measure cold prefill tok/s, FIM TTFT and decode tok/s per engine (medians)."""
    from codespark.bench import render_table, run_bench

    try:
        settings = load_settings(config)
        results = asyncio.run(run_bench(settings, tuple(model or ("spark", "codex")), runs, fim_tokens, console))
    except CodesparkError as exc:
        raise _fail(exc) from exc
    _stdout().print(render_table(results))
    if output is not None:
        output.write_text(json.dumps(results, indent=2) + "\n")


@app.command()
def config(config: ConfigOpt = None) -> None:
    """Show every setting: its effective value, environment variable and description."""
    try:
        settings = load_settings(config)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    table = Table(title="codespark settings (flags > CODESPARK_* env > config file > defaults)")
    for column in ("setting", "value", "env", "description"):
        table.add_column(column)
    for name, field in Settings.model_fields.items():
        table.add_row(name, str(getattr(settings, name)), f"CODESPARK_{name.upper()}", field.description or "")
    _stdout().print(table)


@app.command()
def sql(
    question: Annotated[str | None, typer.Argument(help="The question; leave out for an interactive session.")] = None,
    db: Annotated[
        str,
        typer.Option(
            "--db", help="SQLAlchemy URL (sqlite:///f.db, duckdb:///f.duckdb, postgresql://…) or a [[databases]] name"
        ),
    ] = "",
    chart: Annotated[Path | None, typer.Option(help="Plot the result to this .png or .html file.")] = None,
    explain_only: Annotated[bool, typer.Option("--explain-only", help="Generate and validate; do not run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    allow_write: Annotated[bool, typer.Option("--allow-write", help="Allow statements that change data.")] = False,
    model: Annotated[str, typer.Option(help="Engine: codex (default) or spark.")] = "codex",
    max_rows: Annotated[int, typer.Option(min=1, help="Rows to fetch at most.")] = 50,
    timeout: Annotated[float, typer.Option(min=0.1, help="Statement timeout in seconds.")] = 10.0,
    repair: Annotated[bool, typer.Option(help="Feed validation errors back to the model and retry.")] = True,
    config: ConfigOpt = None,
) -> None:
    """Ask a database a question in plain language: checked, read-only SQL, explained, with results."""
    from codespark.engine.tasks import load_one
    from codespark.services.sql import SqlService
    from codespark.sql import render as sql_render
    from codespark.sql.assistant import Options, SqlAssistant

    if not db:
        raise _fail(CodesparkError("Name the database with --db URL, e.g. --db sqlite:///shop.db"))
    try:
        settings = load_settings(config)
        options = Options(repair=repair, execute=not explain_only, max_rows=max_rows, allow_write=allow_write,
                          monitor=settings.mgd == "on")  # fmt: skip
        service = SqlService(settings.databases, timeout_s=timeout)
        url = service.resolve(db).url if "://" not in db else db  # a URL, or a name from [[databases]]
        database, schema = service.open(url, writable=allow_write)
        for warning in database.warnings or []:
            console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
        with console.status(f"loading the {model} model"):
            engines, engine = load_one(settings, model)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    assistant = SqlAssistant(engine, database, schema)
    loop = asyncio.new_event_loop()

    def confirm(statement: str) -> bool:
        console.print("[yellow]This statement changes data:[/yellow]")
        console.print(statement)
        return typer.confirm("Run it?", default=False)

    def ask(text: str) -> bool:
        try:
            with console.status("thinking"):
                answer = loop.run_until_complete(assistant.ask(text, options, confirm if allow_write else None))
        except CodesparkError as exc:
            console.print(f"[red]error:[/red] {escape(exc.message)}")
            return False
        if as_json:
            _stdout().print_json(json.dumps(answer.as_dict(), default=str))
        else:
            sql_render.answer(_stdout(), answer)
        if chart is not None and answer.rows is not None:
            try:
                kind = sql_render.chart(answer, chart)
                console.print(f"{kind} chart written to {chart}")
            except CodesparkError as exc:
                console.print(f"[yellow]no chart:[/yellow] {escape(exc.message)}")
        return answer.valid

    try:
        if question is not None:
            if not ask(question):
                raise typer.Exit(1)
            return

        def refresh() -> None:
            assistant.db, assistant.schema = service.open(url, refresh=True, writable=allow_write)

        sql_render.repl(console, database.display, ask, refresh)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        engines.close()
        service.close()


@app.command()
def fix(
    path: Annotated[Path, typer.Argument(help="The project to repair (a git repo, or any folder).")] = Path("."),
    test_cmd: Annotated[
        str | None, typer.Option("--test-cmd", help="Test command (default: detect pytest, unittest, npm, go, cargo).")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Put the fix into your tree (atomic; refuses on conflict).")
    ] = False,
    rounds: Annotated[int, typer.Option(min=1, max=20, help="Rounds of candidates at most.")] = 3,
    candidates: Annotated[int, typer.Option(min=1, max=16, help="Candidates per round.")] = 6,
    mutants: Annotated[
        int, typer.Option(min=0, max=1000, help="Single-token repairs tried before the model (0: the model only).")
    ] = 80,
    engine: Annotated[str, typer.Option(help="auto, codex, spark or upstream (through the privacy guard).")] = "auto",
    allow_test_edits: Annotated[bool, typer.Option("--allow-test-edits", help="Let the fix change tests.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds one test run may take.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line on stdout.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Repair code until the tests pass: localize, sample candidates, test them, keep the best.

    Works in a git worktree (or a temp copy); your tree, index and stash are untouched unless --apply.
    Exit 0: the tests pass; 1: not fixed; 2: usage error.
    """
    from rich.live import Live

    from codespark.agent.loop import FixOptions
    from codespark.agent.sandbox import Limits
    from codespark.agent.view import FixView
    from codespark.engine.loader import load_engines
    from codespark.services.fix import ENGINES, FixRequest
    from codespark.services.state import AppState

    if engine not in ENGINES:
        raise typer.BadParameter(f"use one of {', '.join(ENGINES)}", param_hint="--engine")
    if not path.is_dir():
        raise _fail(CodesparkError(f"{path} is not a directory. Pass the project's root."))
    options = FixOptions(rounds=rounds, candidates=candidates, mutants=mutants, allow_test_edits=allow_test_edits,
                         limits=Limits(timeout_s=timeout))  # fmt: skip
    request = FixRequest(path, test_cmd, engine, apply, options)
    try:
        settings = load_settings(config)
        needed = {"auto": ("spark", "codex"), "codex": ("codex",), "spark": ("spark",), "upstream": ("codex",)}[engine]
        with console.status(f"loading {' and '.join(needed)}"):
            engines = load_engines(settings, only=needed)
        state = AppState.build(settings, engines)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    view = FixView()
    final: dict[str, object] = {}

    async def drive() -> None:
        async for event in state.fix.start(request):
            if event.kind in ("finished", "applied"):
                final[event.kind] = event.data
            if as_json:
                sys.stdout.write(json.dumps(event.as_dict()) + "\n")
                sys.stdout.flush()
            elif live is not None:
                view.feed(event)
                live.update(view.render())

    live = None if as_json else Live(view.render(), console=console, refresh_per_second=4)
    try:
        with live or contextlib.nullcontext():
            asyncio.run(drive())
    except CodesparkError as exc:
        raise _fail(exc) from exc
    finally:
        engines.close()
    done = final.get("finished")
    if not isinstance(done, dict):
        raise typer.Exit(1)
    if not as_json:
        _report_fix(done, final.get("applied"), apply)
    raise typer.Exit(0 if done["status"] in ("fixed", "already-green") else 1)


def _report_fix(done: dict[str, object], applied: object, apply: bool) -> None:
    out = _stdout()
    if done["diff"]:
        out.print(str(done["diff"]), highlight=False, markup=False, end="")
    if isinstance(applied, dict):
        console.print(f"[green]applied[/green] to {', '.join(map(str, applied['changed']))}")
    elif done["status"] == "fixed":
        where = f"branch {done['branch']}" if done.get("branch") else "the diff above (not a git repo)"
        hint = "" if apply else "; run again with --apply to put it into your tree"
        console.print(f"[green]fixed[/green]: {done['summary']}. The rounds are on {where}{hint}.")
    elif done["status"] == "already-green":
        console.print("[green]the tests already pass[/green]; nothing to fix.")
    else:
        where = f" Partial progress is on branch {done['branch']}." if done.get("branch") and done["diff"] else ""
        console.print(f"[yellow]not fixed[/yellow] after {done['rounds']} rounds: {done['summary']}.{where}")


@app.command()
def migrate(
    path: Annotated[Path, typer.Argument(help="The project to migrate (a git repo, or any folder).")] = Path("."),
    recipe: Annotated[str, typer.Option("--recipe", help="The migration: py2-to-py3 or unittest-to-pytest.")] = "",
    apply: Annotated[bool, typer.Option("--apply", help="Put the migration into your tree (atomic).")] = False,
    test_cmd: Annotated[str | None, typer.Option("--test-cmd", help="The project's pytest command.")] = None,
    modules: Annotated[str | None, typer.Option("--modules", help="Only paths matching this glob.")] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Who repairs what the rewrite leaves failing (py2-to-py3): auto, codex, spark, "
            "upstream, or none for the deterministic rewrites only."
        ),
    ] = "auto",
    rounds: Annotated[int, typer.Option(min=1, max=20, help="The fix loop's rounds on the failing tests.")] = 3,
    candidates: Annotated[int, typer.Option(min=1, max=16, help="Candidates per repair round.")] = 3,
    mutants: Annotated[
        int, typer.Option(min=0, max=1000, help="Single-token repairs tried before the model (0: the model only).")
    ] = 80,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the final report there (.md: Markdown; .json: JSON).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line on stdout.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Migrate code module by module, each verified before the next: it must compile, and a test recipe must
    keep the same tests with the same outcomes.  For py2-to-py3 the project's tests then run on Python 3,
    and the model (the fix loop) repairs what still fails.  Works in a git worktree until --apply.
    Exit 0: every module verified; 1: some failed (they are left as they were); 2: usage error.
    """
    from codespark.migrate.registry import RECIPES
    from codespark.migrate.report import write_report
    from codespark.services.fix import ENGINES
    from codespark.services.migrate import NO_MODEL, MigrateRequest, MigrateService

    if recipe not in RECIPES:
        raise typer.BadParameter(f"use one of {', '.join(RECIPES)}", param_hint="--recipe")
    if engine not in (*ENGINES, NO_MODEL):
        raise typer.BadParameter(f"use one of {', '.join((*ENGINES, NO_MODEL))}", param_hint="--engine")
    if not path.is_dir():
        raise _fail(CodesparkError(f"{path} is not a directory. Pass the project's root."))
    request = MigrateRequest(path, recipe, test_cmd, modules, apply, engine, rounds, candidates, mutants)
    engines = None
    try:
        settings = load_settings(config)
        if RECIPES[recipe].repairable and engine != NO_MODEL:
            from codespark.engine.loader import load_engines
            from codespark.services.state import AppState

            needed = {"auto": ("spark", "codex"), "codex": ("codex",), "spark": ("spark",),
                      "upstream": ("codex",)}[engine]  # fmt: skip
            with console.status(f"loading {' and '.join(needed)} (for the repairs; --engine none skips them)"):
                engines = load_engines(settings, only=needed)
            service = AppState.build(settings, engines).migrate
        else:
            service = MigrateService(settings.cache_dir)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    events: list[MigrationEvent] = []

    async def drive() -> None:
        async for event in service.start(request):
            events.append(event)
            if as_json:
                sys.stdout.write(json.dumps(event.as_dict()) + "\n")
                sys.stdout.flush()
            else:
                _show_migration(event)

    try:
        asyncio.run(drive())
    except CodesparkError as exc:
        raise _fail(exc) from exc
    finally:
        if engines is not None:
            engines.close()
    if report is not None:
        write_report(report, events)
        console.print(f"report: {report}")
    status = next((e.data["status"] for e in events if e.kind == "finished"), "failed")
    raise typer.Exit(0 if status == "migrated" else 1)


def _show_migration(event: MigrationEvent) -> None:
    data = event.data
    if event.kind == "plan":
        console.print(f"[bold]{data['recipe']}[/bold]: {len(data['modules'])} modules, in import order "
                      f"(checks: {', '.join(data['checks'])}; tests run by {data['runner']})")  # fmt: skip
        for module in data["modules"]:
            console.print(f"  {module}")
    elif event.kind == "baseline":
        console.print(f"baseline: {data['tests']} tests {data['outcomes']}")
    elif event.kind == "module":
        mark = {"verified": "[green]verified[/green]", "unchanged": "[dim]unchanged[/dim]",
                "repaired": "[green]repaired[/green]", "needs-repair": "[yellow]to repair[/yellow]"}.get(
            data["status"], "[red]failed[/red]")  # fmt: skip
        kept = f"; kept {len(data['kept'])}: {', '.join(data['kept'][:3])}" if data.get("kept") else ""
        review = f"; to review: {'; '.join(data['needs_model'])}" if data.get("needs_model") else ""
        console.print(f"{mark} {data['path']}: {data['reason']}{kept}{review}")
    elif event.kind == "suite" and "problems" in data:
        console.print(f"[red]the whole suite differs from the baseline[/red]: {'; '.join(data['problems'][:5])}")
    elif event.kind == "suite":
        console.print(f"the tests on the result: {data['outcomes']}" + (
            f"; failing: {', '.join(data['failing'][:5])}" if data["failing"] else ""))  # fmt: skip
        for error in data.get("collect_errors", [])[:3]:
            console.print(f"[red]could not collect[/red]: {error}", markup=False)
    elif event.kind == "repair":
        _show_repair(data)
    elif event.kind == "applied":
        console.print(f"[green]applied[/green] to {len(data['changed'])} files")
    elif event.kind == "finished":
        if data["diff"]:
            _stdout().print(data["diff"], highlight=False, markup=False, end="")
        where = f" on branch {data['branch']}" if data.get("branch") else ""
        repaired = f" ({len(data['repaired'])} repaired by the model)" if data.get("repaired") else ""
        model = f"; the model changed {', '.join(data['model_changed'])}" if data.get("model_changed") else ""
        console.print(f"[bold]{data['status']}[/bold]: {len(data['verified'])} verified{repaired}, "
                      f"{len(data['failed'])} failed{where}{model}")  # fmt: skip


def _show_repair(data: dict[str, Any]) -> None:
    """One step of the model's repair of a migration (the fix loop's events, a line each)."""
    kind = data["step"]
    if kind == "round":
        console.print(f"repair round {data['round']}: {data.get('target') or data.get('why')}"
                      + (f" ({data['engine']})" if data.get("engine") else ""))  # fmt: skip
    elif kind == "candidate":
        console.print(f"  candidate {data['index'] + 1}: {data['reason']} [{data['seconds']} s]", markup=False)
    elif kind in ("baseline", "best", "finished"):
        console.print(f"repair {kind}: {data.get('status', '')} {data['summary']}".replace("  ", " "))


@app.command()
def index(
    path: Annotated[Path, typer.Argument(help="Repository root to index.")] = Path("."),
    config: ConfigOpt = None,
) -> None:
    """Index a repository (tree-sitter, SQLite in the cache dir) for cross-file context; fast when unchanged."""
    from codespark.context.service import RepoContext

    if not path.is_dir():
        raise _fail(CodesparkError(f"{path} is not a directory. Pass a repository root."))
    try:
        settings = load_settings(config)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    repo = RepoContext(path, settings.cache_dir)
    with Progress(TextColumn("[bold]indexing"), BarColumn(), TextColumn("{task.completed}/{task.total} files"),
                  TimeRemainingColumn(), console=console, transient=True) as progress:  # fmt: skip
        task = progress.add_task("index", total=None)
        report = repo.refresh(lambda done, total: progress.update(task, completed=done, total=total))
    stats = repo.index.stats()
    console.print(
        f"{report.files} files indexed in {report.seconds:.2f} s: {report.parsed} parsed, {report.unchanged} "
        f"unchanged, {report.removed} removed, {report.skipped} skipped (binary, too large or not UTF-8), "
        f"{report.with_errors} with parse errors; {stats['symbols']} definitions, {stats['imports']} imports."
    )
    console.print(f"index: {repo.index.db_path}")


@app.command()
def context(
    file: Annotated[Path, typer.Argument(help="The file being edited.")],
    line: Annotated[int, typer.Option(min=1, help="Cursor line (1-based); the cursor is at its end.")],
    repo: Annotated[Path | None, typer.Option(help="Repository root (default: the git root, or the cwd).")] = None,
    mode: Annotated[str, typer.Option(help="full, similar or none.")] = "full",
    tokens: Annotated[int, typer.Option(min=0, help="Token budget.")] = 768,
    config: ConfigOpt = None,
) -> None:
    """Show the context a completion at FILE:LINE would get, and why each piece was chosen."""
    from codespark.context.service import MODES, RepoContext
    from codespark.engine.tasks import split_at

    if mode not in MODES:
        raise typer.BadParameter(f"use one of {', '.join(MODES)}", param_hint="--mode")
    try:
        settings = load_settings(config)
        prefix, suffix = split_at(file.read_text(errors="replace"), line, None)
    except (CodesparkError, OSError) as exc:
        raise _fail(exc if isinstance(exc, CodesparkError) else CodesparkError(str(exc))) from exc
    root = repo or _git_root(file) or Path.cwd()
    ctx = RepoContext(root, settings.cache_dir)
    ctx.refresh()
    pieces = ctx.for_completion(str(file.resolve()), prefix, suffix, tokens, None, mode)
    out = _stdout()
    if not pieces:
        console.print("no context found for this position")
    for piece in pieces:
        out.rule(f"{piece.path}  [dim]{escape(piece.reason)}, score {piece.score:.2f}[/dim]")
        out.print(escape(piece.text), highlight=False)


def _git_root(file: Path) -> Path | None:
    for parent in file.resolve().parents:
        if (parent / ".git").exists():
            return parent
    return None


keys_app = typer.Typer(help="API keys for the server (stored hashed in api_keys).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new() -> None:
    """Make an API key; print it once, and the hash to put in api_keys."""
    from codespark.guard.auth import hash_key, new_key

    key = new_key()
    out = _stdout()
    out.print(f"key (give to clients; shown once): {key}", soft_wrap=True)
    out.print(f"hash (add to api_keys):            {hash_key(key)}", soft_wrap=True)
    console.print('config file: api_keys = ["<hash>"]   env: CODESPARK_API_KEYS=\'["<hash>"]\'')


@app.command()
def redact(
    file: Annotated[str, typer.Argument(help="File to check, or - for standard input.")],
    show: Annotated[bool, typer.Option(help="Print the redacted text instead of a table of findings.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Dry run of the privacy guard: what would be redacted before a prompt goes upstream."""
    from codespark.guard.ignore import NeverSend
    from codespark.guard.redactor import Redactor

    try:
        settings = load_settings(config)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    if file == "-":
        text = sys.stdin.read()
    else:
        path = Path(file)
        if not path.is_file():
            raise _fail(CodesparkError(f"{file} is not a file. Pass a path, or - to read standard input."))
        text = path.read_text(encoding="utf-8", errors="replace")
        never = NeverSend.load(settings.never_send, settings.workspace_dir)
        if never.blocks(str(path)):
            console.print(f"[yellow]{file} is never-send[/yellow]: its content is dropped from context sent upstream.")
    redactor = Redactor()
    redacted = redactor.redact(text)
    if show:
        sys.stdout.write(redacted)
        return
    table = Table(title=f"{redactor.count} value(s) would be redacted")
    for column in ("placeholder", "line", "value (masked)"):
        table.add_column(column)
    for placeholder, value, line in redactor.occurrences(text):
        table.add_row(placeholder, str(line), _mask(value))
    _stdout().print(table)


def _mask(value: str) -> str:
    flat = value.replace("\n", " ")
    return flat[:4] + "…" + f"({len(value)} chars)" if len(flat) > 8 else "…" + f"({len(value)} chars)"


REVIEW_FORMATS = ("md", "sarif", "json", "github", "codequality")


@app.command(no_args_is_help=False)
def review(
    target: Annotated[
        str,
        typer.Argument(
            help="The repository to review; or `mark ID accepted|dismissed`; or `stats`.", show_default=False
        ),
    ] = ".",
    rest: Annotated[
        list[str] | None, typer.Argument(help="For mark: the finding's id and the verdict.", show_default=False)
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="Compare with this ref (default: the merge base with the default branch).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="md, sarif, json, github (post to the PR) or codequality.")
    ] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here (default: stdout).")
    ] = None,
    enforce: Annotated[bool, typer.Option("--enforce", help="Exit 1 on findings at or above --fail-on.")] = False,
    fail_on: Annotated[str, typer.Option(help="The severity --enforce fails on.")] = "high",
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Confidence below which findings are not shown.")
    ] = 0.6,
    max_per_file: Annotated[int, typer.Option(min=1, help="Findings shown per file at most.")] = 3,
    max_units: Annotated[int, typer.Option(min=0, help="Changed functions the model reviews at most.")] = 40,
    model: Annotated[
        bool, typer.Option("--model/--no-model", help="Ask the model (off: deterministic checks).")
    ] = True,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Run old and new code to check claims.")] = True,
    engine: Annotated[str, typer.Option(help="codex, spark or upstream (through the privacy guard).")] = "codex",
    pr: Annotated[int | None, typer.Option(help="The pull request (--format github; default: from Actions).")] = None,
    line_comments: Annotated[
        bool, typer.Option("--line-comments", help="--format github: also comment on lines.")
    ] = False,
    sarif_output: Annotated[Path | None, typer.Option("--sarif-output", help="Also write SARIF 2.1.0 here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Review the changes since --base in shadow mode: findings on changed lines only, never a block.

    Exit 0 whatever it finds (unless --enforce); 2 on a usage error.  Every finding goes to
    .codespark/review-log.jsonl; `codespark review mark ID accepted|dismissed` and `codespark review stats`
    measure how noisy the review is before anyone enforces it.
    """
    from codespark.review.findings import SEVERITIES, severity_rank

    if target in ("mark", "stats"):
        _review_log(target, rest or [], fmt)
        return
    if rest:
        raise typer.BadParameter(f"unexpected {' '.join(rest)!r}", param_hint="PATH")
    if fmt not in REVIEW_FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(REVIEW_FORMATS)}", param_hint="--format")
    if fail_on not in SEVERITIES:
        raise typer.BadParameter(f"use one of {', '.join(SEVERITIES)}", param_hint="--fail-on")
    if engine not in ("codex", "spark", "upstream"):
        raise typer.BadParameter("use codex, spark or upstream", param_hint="--engine")
    result = _run_review(Path(target), base, model, verify, engine, threshold, max_per_file, max_units, config)
    _emit_review(result, fmt, output, pr, line_comments)
    if sarif_output is not None:
        from codespark.review.report import render

        sarif_output.parent.mkdir(parents=True, exist_ok=True)
        sarif_output.write_text(render(result, "sarif"), encoding="utf-8")
        console.print(f"wrote {sarif_output}")
    failing = [f for f in result.shown if severity_rank(f.severity) >= severity_rank(fail_on)]
    if enforce and failing:
        console.print(f"[red]{len(failing)} finding(s) at or above {fail_on}[/red] (--enforce)")
        raise typer.Exit(1)


def _run_review(path: Path, base: str | None, model: bool, verify: bool, engine: str, threshold: float,
                per_file: int, max_units: int, config: Path | None) -> ReviewResult:  # fmt: skip
    from codespark.engine.loader import load_engines
    from codespark.review.run import ReviewOptions
    from codespark.services.review import RepoReview, ReviewService
    from codespark.services.state import AppState

    if not path.is_dir():
        raise _fail(CodesparkError(f"{path} is not a directory. Pass the repository's root."))
    # The differential check runs the model's calls: without the model, only the deterministic checks run.
    options = ReviewOptions(model=model, verify=verify and model, per_file=per_file, threshold=threshold,
                            max_units=max_units)  # fmt: skip
    engines = None
    try:
        settings = load_settings(config)
        if model:
            # codex (or the upstream) reviews; spark writes the calls the differential check runs.
            needed = ("spark",) if engine == "spark" else ("codex", "spark")
            with console.status(f"loading {' and '.join(needed)}"):
                engines = load_engines(settings, only=needed)
            state = AppState.build(settings, engines)
            service = ReviewService(state.chat, settings.cache_dir, None if engine == "upstream" else engine, "spark")
        else:
            service = ReviewService(None, settings.cache_dir)
        with _progress_units() as progress:
            task = progress.add_task("reviewing", total=None)

            def step(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=f"reviewing {escape(what)}")

            return asyncio.run(service.review_repo(RepoReview(path, base, options), step))
    except CodesparkError as exc:
        raise _fail(exc) from exc
    finally:
        if engines is not None:
            engines.close()


def _progress_units() -> Progress:
    from rich.progress import MofNCompleteColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)  # fmt: skip


def _emit_review(result: ReviewResult, fmt: str, output: Path | None, pr: int | None, line_comments: bool) -> None:
    from codespark.review import github
    from codespark.review.report import markdown, render

    text = render(result, "md" if fmt == "github" else fmt)
    if fmt == "github":
        try:
            target = github.Target.from_env(number=pr)
            comment = github.upsert_comment(target, markdown(result))
            console.print(f"[green]comment[/green] {comment.get('html_url', comment.get('id'))}")
            if line_comments:
                import subprocess

                head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
                n = github.post_review_comments(target, result.shown, head.stdout.strip())
                console.print(f"[green]{n} line comment(s)[/green]")
        except CodesparkError as exc:
            raise _fail(exc) from exc
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
    shown, total = len(result.shown), len(result.findings)
    console.print(f"{shown} finding(s) shown, {total - shown} hidden; {result.changed_lines} changed lines, "
                  f"{result.units} functions reviewed in {result.seconds:.0f} s (shadow mode)")  # fmt: skip


def _review_log(action: str, rest: list[str], fmt: str) -> None:
    from codespark.review.diff import repo_root
    from codespark.review.log import FindingsLog

    try:
        log = FindingsLog.in_repo(repo_root(Path.cwd()))
        if action == "mark":
            if len(rest) != 2:
                raise typer.BadParameter("codespark review mark ID accepted|dismissed", param_hint="mark")
            entry = log.mark(rest[0], rest[1])
            console.print(f"marked {entry['id']} ({entry['rule']} at {entry['path']}:{entry['line']}) {rest[1]}")
            return
        stats = log.stats()
    except CodesparkError as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        sys.stdout.write(json.dumps(stats.as_dict(), indent=2) + "\n")
        return
    table = Table(title=f"{stats.findings} findings logged over {stats.runs} runs ({stats.shown} shown)")
    for column in ("rule", "findings", "shown", "accepted", "dismissed"):
        table.add_column(column)
    for rule, c in stats.by_rule.items():
        table.add_row(rule, *(str(c.get(k, 0)) for k in ("findings", "shown", "accepted", "dismissed")))
    _stdout().print(table)
    rate = "n/a (mark some findings)" if stats.acceptance is None else f"{stats.acceptance:.0%}"
    noise = "n/a" if stats.noise is None else f"{stats.noise:.0%}"
    _stdout().print(f"acceptance {rate}, noise {noise} of {stats.marked} marked; "
                    f"{stats.shown - stats.marked} shown findings not marked yet")  # fmt: skip


@app.command("tests")
def tests_cmd(
    targets: Annotated[
        list[str] | None, typer.Argument(help="path.py or path.py::function.", show_default=False)
    ] = None,
    changed: Annotated[bool, typer.Option("--changed", help="The functions changed since --base.")] = False,
    base: Annotated[str | None, typer.Option(help="With --changed (default: the merge base).")] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Write tests/test_<module>_codespark.py (replaces it).")
    ] = False,
    repo: Annotated[Path, typer.Option(help="The repository.")] = Path("."),
    engine: Annotated[str, typer.Option(help="codex or spark.")] = "codex",
    as_json: Annotated[bool, typer.Option("--json", help="The result as JSON on stdout.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write pytest tests for functions, keep those that pass, report the failing ones as possible bugs.

    Runs in a worktree copy; your tree gets a file only with --write.  Coverage before and after is
    measured per function with coverage.py.  Exit 0, or 2 on a usage error.
    """
    from codespark.engine.loader import load_engines
    from codespark.services.review import ChatAsker
    from codespark.services.state import AppState
    from codespark.services.testgen import WriteTestsRequest, WriteTestsService

    if engine not in ("codex", "spark"):
        raise typer.BadParameter("use codex or spark", param_hint="--engine")
    request = WriteTestsRequest(repo, tuple(targets or ()), changed, base, write)
    try:
        settings = load_settings(config)
        with console.status(f"loading {engine}"):
            engines = load_engines(settings, only=(engine,))
    except CodesparkError as exc:
        raise _fail(exc) from exc
    try:
        state = AppState.build(settings, engines)
        service = WriteTestsService(ChatAsker(state.chat, engine), settings.cache_dir)
        with _progress_units() as progress:
            task = progress.add_task("writing tests", total=None)

            def step(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=f"testing {escape(what)}")

            result = asyncio.run(service.run(request, step))
    except CodesparkError as exc:
        raise _fail(exc) from exc
    finally:
        engines.close()
    if as_json:
        data = {"functions": [f.as_dict() for f in result.functions], "files": result.files, "written": result.written}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for f in result.functions:
        gain = ""
        if f.coverage_after is not None:
            gain = f", coverage {f.coverage_before or 0:.0%} -> {f.coverage_after:.0%}"
        console.print(f"[bold]{f.path}::{f.function}[/bold]: {len(f.kept)} kept, {len(f.failing)} failing, "
                      f"{f.broken} broken{gain}")  # fmt: skip
        for candidate, why in f.failing:
            console.print(f"  [yellow]possible bug[/yellow] {candidate.name}: {escape(why)}")
    for rel, text in result.files.items():
        if rel in result.written:
            console.print(f"[green]wrote[/green] {rel}")
        else:
            sys.stdout.write(f"# {rel} (not written: pass --write)\n{text}\n")


ci_app = typer.Typer(help="Set up codespark in a CI system.", no_args_is_help=True)
app.add_typer(ci_app, name="ci")


@ci_app.command("init")
def ci_init(
    kind: Annotated[str, typer.Argument(help="github or gitlab.")],
    repo: Annotated[Path, typer.Option(help="The repository.")] = Path("."),
    package: Annotated[str, typer.Option(help="What the job pip-installs (a requirement or a git URL).")] = "codespark",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write the shadow-review job: .github/workflows/codespark-review.yml, or a .gitlab-ci.yml job."""
    from codespark.review import ci

    if kind not in ci.KINDS:
        raise typer.BadParameter("use github or gitlab", param_hint="KIND")
    try:
        written = ci.init(repo, kind, package, force)
    except CodesparkError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]wrote[/green] {written.path}")
    console.print(written.note)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    app()
