"""The test-generation service behind ``codespark tests``: which functions (named, or changed since a
base), a worktree copy to run in, the model's tests kept when they pass, coverage before and after, and
the test file written into the user's tree only when asked (``write``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codespark.agent.localize import Unit, units_of
from codespark.agent.workspace import Workspace
from codespark.errors import InvalidRequestError
from codespark.review import diff as diffs
from codespark.review.run import Asker
from codespark.review.testgen import Candidate, FunctionTests, coverage, existing_tests, generate, pick, test_file


@dataclass(frozen=True)
class WriteTestsRequest:
    path: Path
    targets: tuple[str, ...] = ()  # path.py or path.py::name
    changed: bool = False
    base: str | None = None
    write: bool = False


@dataclass
class WriteTestsResult:
    functions: list[FunctionTests]
    files: dict[str, str]  # test file path -> text (the kept tests)
    written: list[str]


def output_path(path: str) -> str:
    stem = Path(path).stem
    return f"tests/test_{stem}_codespark.py"


class WriteTestsService:
    def __init__(self, asker: Asker, cache_dir: Path) -> None:
        self.asker = asker
        self.cache_dir = cache_dir

    def chosen(self, root: Path, request: WriteTestsRequest) -> list[tuple[str, Unit]]:
        picked: list[tuple[str, Unit]] = []
        for target in request.targets:
            try:
                picked += pick(root, target)
            except FileNotFoundError as exc:
                raise InvalidRequestError(str(exc), param="target") from exc
        if request.changed:
            base = diffs.resolve(root, request.base) if request.base else diffs.default_base(root)
            for change in diffs.parse(diffs.working_diff(root, base)):
                if not change.path.endswith(".py") or change.deleted or "test" in Path(change.path).name:
                    continue
                text = (root / change.path).read_text(encoding="utf-8", errors="replace")
                for unit in units_of(text, change.path):
                    if unit.kind == "function" and any(unit.start <= n <= unit.end for n in change.touched):
                        picked.append((change.path, unit))
        if not picked:
            raise InvalidRequestError("No functions to test: name a file or path.py::function, or pass --changed.",
                                      param="target")  # fmt: skip
        return list(dict.fromkeys(picked))

    async def run(
        self, request: WriteTestsRequest, progress: Callable[[int, int, str], None] | None = None
    ) -> WriteTestsResult:
        root = diffs.repo_root(request.path.resolve())
        chosen = self.chosen(root, request)
        copy = Workspace.open(root, self.cache_dir, kind="tests", branch=False)
        results: list[FunctionTests] = []
        kept: dict[str, tuple[str, list[Candidate]]] = {}
        try:
            tree = copy.copy_top
            before_tests = existing_tests(tree)
            for i, (path, unit) in enumerate(chosen):
                if progress is not None:
                    progress(i, len(chosen), f"{path}::{unit.name}")
                out_rel = output_path(path)
                result, header = await generate(self.asker, tree, path, unit, out_rel)
                result.coverage_before = coverage(tree, path, unit, before_tests) if before_tests else 0.0
                if result.kept:
                    scratch = tree / out_rel
                    scratch.write_text(test_file(header, result.kept), encoding="utf-8")
                    result.coverage_after = coverage(tree, path, unit, [*before_tests, out_rel])
                    scratch.unlink()
                    headers, tests = kept.setdefault(out_rel, (header, []))
                    merged = "\n".join(dict.fromkeys((headers + "\n" + header).splitlines()))
                    kept[out_rel] = (merged, tests + result.kept)
                results.append(result)
            if progress is not None:
                progress(len(chosen), len(chosen), "done")
        finally:
            copy.close()
        files = {rel: test_file(header, _unique(tests)) for rel, (header, tests) in kept.items()}
        written = []
        if request.write:
            for rel, text in files.items():
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                written.append(rel)
        return WriteTestsResult(results, files, written)


def _unique(tests: list[Candidate]) -> list[Candidate]:
    """Test names unique within a file (two functions' tests may share one)."""
    seen: dict[str, int] = {}
    out = []
    for t in tests:
        n = seen.get(t.name, 0)
        seen[t.name] = n + 1
        out.append(
            t if n == 0 else Candidate(f"{t.name}_{n}", t.source.replace(f"def {t.name}(", f"def {t.name}_{n}(", 1))
        )
    return out
