"""The Python monitor (context/monitor.py): Jedi's members and imports at trigger points, in a real temp repo."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from codespark.context.monitor import PythonMonitor, buffer_before, for_fim, trigger
from codespark.engine.fim import FimRequest

SHAPES = """
class Shape:
    def area(self) -> float:
        return 0.0

    def scaled(self, factor: float) -> "Shape":
        return self


class Circle(Shape):
    def __init__(self, radius: float) -> None:
        self.radius = radius

    def circumference(self) -> float:
        return 6.283 * self.radius


class Loose:
    def __getattr__(self, name: str) -> int:
        return 1


def unit() -> Circle:
    return Circle(1.0)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "geometry").mkdir()
    (tmp_path / "geometry" / "__init__.py").write_text("")
    (tmp_path / "geometry" / "shapes.py").write_text(textwrap.dedent(SHAPES))
    return tmp_path


def monitor(repo: Path, before: str) -> PythonMonitor:
    return PythonMonitor(before, "", repo / "app.py", repo, budget_ms=20_000)


HEAD = "from geometry.shapes import Circle, Loose, unit\n"


def test_members_of_a_class_from_another_module_with_inherited_ones(repo: Path) -> None:
    found = monitor(repo, HEAD + "c = Circle(2.0)\nc.").names("")
    assert found is not None and found.kind == "py.member" and found.required
    assert {"radius", "circumference", "area", "scaled"} <= found.names
    assert "diameter" not in found.names


def test_the_partial_name_and_resolved_return_types(repo: Path) -> None:
    m = monitor(repo, HEAD + "unit().scaled(2).")
    found = m.names("are")
    assert found is not None and found.partial == "are" and "area" in found.names
    assert m.names("area()") is None  # the identifier ended: free again


def test_annotations_and_self(repo: Path) -> None:
    found = monitor(repo, HEAD + "def f(shape: Circle) -> None:\n    shape.").names("")
    assert found is not None and "circumference" in found.names
    in_class = "class Ring(Circle):\n    def inner(self) -> float:\n        return self."
    found = monitor(repo, HEAD + in_class).names("")
    assert found is not None and {"radius", "inner"} <= found.names


def test_imports(repo: Path) -> None:
    found = monitor(repo, "from geometry.shapes import ").names("Ci")
    assert found is not None and found.kind == "py.import" and {"Circle", "Shape", "unit"} <= found.names
    assert (
        PythonMonitor("from geometry.shapes import ", "", repo / "app.py", repo, 20_000, imports=False).names("")
        is None
    )


@pytest.mark.parametrize(
    "before",
    [
        "thing = make_it()\nthing.",  # nothing resolves: no constraint, never a dead end
        HEAD + "Loose().",  # members made at run time
        HEAD + "x = 1  # c.",  # a comment
        HEAD + "s = 'c.",  # a string
        HEAD + "x = 1",  # no trigger
    ],
)
def test_silent_where_nothing_resolves(repo: Path, before: str) -> None:
    assert monitor(repo, before).names("") is None


def test_triggers() -> None:
    assert trigger("foo(a).b") == ("py.member", "b")
    assert trigger('return f"{account.owner}: {account.') == ("py.member", "")  # code inside an f-string
    assert trigger('x = f"{{a.') is None and trigger('s = "a.') is None
    assert trigger("x = 1.") is None
    assert trigger("import os.pa") == ("py.import", "pa")


def test_a_late_analysis_leaves_the_step_free(repo: Path) -> None:
    m = PythonMonitor(HEAD + "import json\njson.", "", repo / "late.py", repo, budget_ms=0)
    m.names("")  # the lookup started with the monitor and may be done: a zero budget only never waits
    assert m.late in (0, 1)


def test_the_window_is_joined_to_the_file_on_disk(repo: Path) -> None:
    body = "".join(f"line{i} = {i}\n" for i in range(10))
    (repo / "app.py").write_text(HEAD + body + "c = Circle(1.0)\nc.area()\n")
    window = "".join(f"line{i} = {i}\n" for i in range(5, 10)) + "c = Circle(1.0)\nc."
    assert buffer_before(repo / "app.py", window).startswith(HEAD)
    found = for_fim(FimRequest(window, "", filename="app.py"), repo, 20_000)
    assert found is not None and found.names("") is not None
    assert for_fim(FimRequest(window, "", filename="app.js"), repo, 20_000) is None
    outside = for_fim(FimRequest(window, "", filename="../elsewhere.py"), repo, 20_000)
    assert outside is not None and outside.path is None  # never reads outside the repo


def test_an_analysis_failure_leaves_the_step_free(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jedi

    def broken(*args: object, **kwargs: object) -> list[object]:
        raise AttributeError("'NoneType' object has no attribute 'type'")  # what Jedi raised on real code

    monkeypatch.setattr(jedi.Script, "complete", broken)
    assert monitor(repo, HEAD + "c = Circle(3.0)\nbroken_here = c.").names("") is None


def test_a_long_line_is_not_scanned_per_token() -> None:
    import time

    line = "y" * 20_000
    started = time.perf_counter()
    for _ in range(100):
        assert trigger(line) is None
    assert time.perf_counter() - started < 0.5  # a backtracking pattern took ~6 ms per call at 1,000 characters


KW = """
def connect(host: str, port: int = 80, *, timeout: float = 1.0, retries: int = 3) -> None:
    pass


def anything(**options: int) -> None:
    pass
"""


def test_keyword_names_are_constrained_where_only_a_keyword_can_come(repo: Path) -> None:
    (repo / "geometry" / "net.py").write_text(KW)
    head = "from geometry.net import connect, anything\n"
    filled = monitor(repo, head + 'connect("h", 8080, ').names("ti")
    assert filled is not None and filled.kind == "py.kwarg" and not filled.required
    assert filled.names == {"timeout", "retries"} and filled.partial == "ti"  # host and port came by position
    after_keyword = monitor(repo, head + 'connect("h", timeout=2.0, ')
    found = after_keyword.names("")
    assert found is not None and found.names == {"port", "retries"}  # host by position, timeout by name
    assert monitor(repo, head + 'connect("h", ').names("") is None  # port may still come positionally
    assert monitor(repo, head + "anything(a=1, ").names("") is None  # **options: any name
    assert monitor(repo, head + "x = [1, ").names("") is None  # not a call
    mid = monitor(repo, head + "connect(")
    assert mid.names('"h", 80, ') is None  # mid-answer, no keyword yet: left free (no lookup per comma)
    found = mid.names('"h", 80, timeout=1, ')
    assert found is not None and "retries" in found.names
