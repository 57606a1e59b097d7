"""unittest's ``setUp``/``tearDown`` as one pytest fixture, where the result reads and runs the same.

A ``TestCase`` class's ``setUp`` and ``tearDown`` become one autouse yield fixture (the set-up before the
``yield``, the tear-down after it): pytest runs it around each test of the class, as unittest ran the
pair, and the tear-down runs only after a set-up that succeeded, as in unittest.  It is done only where
nothing else depends on the methods: a class deriving from ``TestCase`` alone, that no class of the
module derives from, in a module that never names ``.setUp``/``.tearDown`` (``super().setUp()``, a
mixin's call), and methods that take only ``self``, return nothing early and register no cleanups
(unittest runs cleanups after ``tearDown``; around a fixture they would run before it).
"""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

FIXTURE = "_setup_and_teardown"
_METHODS = ("setUp", "tearDown")


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _plain(method: cst.FunctionDef) -> bool:
    """Only ``self``, no decorators, no early return or yield, no cleanups registered."""
    params = method.params
    only_self = [p.name.value for p in params.params] == ["self"] and not (
        params.posonly_params or params.kwonly_params or isinstance(params.star_arg, cst.Param) or params.star_kwarg
    )
    text = _code(method.body)
    return (
        only_self
        and not method.decorators
        and not any(word in text for word in ("return", "yield", "addCleanup", "enterContext"))
    )


def _body(method: cst.FunctionDef | None) -> list[cst.BaseStatement]:
    if method is None or not isinstance(method.body, cst.IndentedBlock):
        return []
    return list(method.body.body)


class _Fixtures(cst.CSTTransformer):
    def __init__(self, subclassed: set[str]) -> None:
        self.subclassed = subclassed
        self.converted = 0

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        bases = [_code(b.value) for b in updated.bases]
        if bases not in (["unittest.TestCase"], ["TestCase"]) or updated.name.value in self.subclassed:
            return updated
        if not isinstance(updated.body, cst.IndentedBlock):
            return updated
        statements = list(updated.body.body)
        found = {s.name.value: s for s in statements if isinstance(s, cst.FunctionDef) and s.name.value in _METHODS}
        if not found or not all(_plain(f) for f in found.values()):
            return updated
        if any(isinstance(s, cst.FunctionDef) and s.name.value == FIXTURE for s in statements):
            return updated
        fixture = cst.parse_statement(f"@pytest.fixture(autouse=True)\ndef {FIXTURE}(self):\n    yield\n")
        assert isinstance(fixture, cst.FunctionDef) and isinstance(fixture.body, cst.IndentedBlock)
        yield_line = fixture.body.body[0]
        body = [*_body(found.get("setUp")), yield_line, *_body(found.get("tearDown"))]
        first = next(s for s in statements if isinstance(s, cst.FunctionDef) and s in found.values())
        fixture = fixture.with_changes(body=fixture.body.with_changes(body=body), leading_lines=first.leading_lines)
        out = [fixture if s is first else s for s in statements if s is first or s not in found.values()]
        self.converted += 1
        return updated.with_changes(body=updated.body.with_changes(body=out))


def setup_to_fixture(module: cst.Module) -> tuple[cst.Module, int]:
    """The module with its eligible ``setUp``/``tearDown`` pairs as fixtures, and how many classes changed."""
    if m.findall(module, m.Attribute(attr=m.Name("setUp") | m.Name("tearDown"))):
        return module, 0  # something calls them by name: the methods stay
    subclassed = {
        _code(base.value).split(".")[-1] for cls in m.findall(module, m.ClassDef()) if isinstance(cls, cst.ClassDef)
        for base in cls.bases
    }  # fmt: skip
    transformer = _Fixtures(subclassed)
    return module.visit(transformer), transformer.converted
