"""unittest → pytest, the mechanical part, as a LibCST codemod.

What changes, each with unittest's own semantics kept:

- ``self.assertX(...)`` calls used as statements become plain ``assert`` statements (pytest's assertion
  rewriting explains them): Equal, NotEqual, True, False, Is, IsNot, IsNone, IsNotNone, In, NotIn,
  IsInstance, NotIsInstance, Greater, GreaterEqual, Less, LessEqual, AlmostEqual and NotAlmostEqual
  (``places``/``delta`` as unittest computes them); a ``msg`` becomes the assert's message;
- ``with self.assertRaises(E)`` / ``assertRaisesRegex(E, r)`` become ``pytest.raises(E[, match=r])``, and
  the context's ``.exception`` becomes ``.value``; the call form ``self.assertRaises(E, f, *a)`` becomes a
  ``with`` block around ``f(*a)``;
- ``self.fail(m)`` → ``pytest.fail(m)``, ``self.skipTest(r)`` → ``pytest.skip(r)``;
- ``@unittest.skip(r)``, ``skipIf(c, r)``, ``skipUnless(c, r)``, ``expectedFailure`` → ``pytest.mark.skip``,
  ``skipif``, ``skipif(not c)``, ``xfail(strict=True)`` (an unexpected success fails, as in unittest).

What stays: the ``TestCase`` classes and their names (pytest collects them, and test ids stay the same,
which the fidelity check relies on), ``setUp``/``tearDown``, and every assert method this codemod does
not know (they still work on a ``TestCase``); each is reported, so a reviewer sees what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
import libcst.matchers as m
from libcst.metadata import PositionProvider

from codespark.agent.localize import is_test_path
from codespark.migrate.fixtures import setup_to_fixture
from codespark.migrate.recipe import Check, RecipeError, Rewrite

_COMPARE: dict[str, type[cst.BaseCompOp]] = {
    "assertEqual": cst.Equal,
    "assertEquals": cst.Equal,
    "assertNotEqual": cst.NotEqual,
    "assertNotEquals": cst.NotEqual,
    "assertIs": cst.Is,
    "assertIsNot": cst.IsNot,
    "assertIn": cst.In,
    "assertNotIn": cst.NotIn,
    "assertGreater": cst.GreaterThan,
    "assertGreaterEqual": cst.GreaterThanEqual,
    "assertLess": cst.LessThan,
    "assertLessEqual": cst.LessThanEqual,
}
_UNARY = {"assertTrue": False, "assert_": False, "failUnless": False, "assertFalse": True, "failIf": True}
_ARITY = {**dict.fromkeys(_COMPARE, 2), **dict.fromkeys(_UNARY, 1), "assertIsNone": 1, "assertIsNotNone": 1,
          "assertIsInstance": 2, "assertNotIsInstance": 2}  # fmt: skip
_ATOMIC = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.SimpleString,
           cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Tuple, cst.Dict, cst.Set)  # fmt: skip

_EQ = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


@dataclass
class Report:
    """What the codemod did to one module."""

    converted: int = 0
    kept: list[str] = field(default_factory=list)  # assert methods left as they are, with their line


def _paren(expr: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(expr, _ATOMIC) or expr.lpar:
        return expr
    return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _args(call: cst.Call, names: Sequence[str]) -> dict[str, cst.BaseExpression] | None:
    """The call's arguments by unittest's parameter names; None for ``*args``/``**kwargs``."""
    out: dict[str, cst.BaseExpression] = {}
    for i, arg in enumerate(call.args):
        if arg.star:
            return None
        key = arg.keyword.value if arg.keyword is not None else (names[i] if i < len(names) else None)
        if key is None:
            return None
        out[key] = arg.value
    return out


def _standalone(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``expr`` parenthesized where it stops being valid out of the call's parentheses: a generator
    argument, an assignment expression, or anything written over several lines."""
    if expr.lpar:
        return expr
    multiline = "\n" in cst.Module(body=[]).code_for_node(expr)
    if multiline or isinstance(expr, cst.GeneratorExp | cst.NamedExpr | cst.Yield):
        return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return expr


def _assert(test: cst.BaseExpression, msg: cst.BaseExpression | None) -> cst.Assert:
    return cst.Assert(test=_standalone(test), msg=_standalone(msg) if msg is not None else None)


def _not(expr: cst.BaseExpression) -> cst.BaseExpression:
    return cst.UnaryOperation(operator=cst.Not(), expression=_paren(expr))


def _compare(left: cst.BaseExpression, op: cst.BaseCompOp, right: cst.BaseExpression) -> cst.Comparison:
    return cst.Comparison(left=_paren(left), comparisons=[cst.ComparisonTarget(operator=op, comparator=_paren(right))])


def _almost(a: cst.BaseExpression, b: cst.BaseExpression, places: cst.BaseExpression | None,
            delta: cst.BaseExpression | None, negate: bool) -> cst.BaseExpression:  # fmt: skip
    """unittest's rule: equal, or ``abs(a - b) <= delta``, or ``round(abs(a - b), places) == 0`` (7 places)."""
    diff = cst.Call(func=cst.Name("abs"), args=[cst.Arg(cst.BinaryOperation(_paren(a), cst.Subtract(), _paren(b)))])
    if delta is not None:
        close: cst.BaseExpression = _compare(diff, cst.LessThanEqual(), delta)
    else:
        rounded = cst.Call(func=cst.Name("round"), args=[cst.Arg(diff), cst.Arg(places or cst.Integer("7"))])
        close = _compare(rounded, cst.Equal(), cst.Integer("0"))
    if negate:  # assertNotAlmostEqual: not equal and not close
        return cst.BooleanOperation(_compare(a, cst.NotEqual(), b), cst.And(), _not(close))
    return cst.BooleanOperation(_compare(a, cst.Equal(), b), cst.Or(), close)


def assertion(name: str, call: cst.Call) -> cst.Assert | None:
    """The ``assert`` statement for ``self.<name>(...)``, or None when it cannot be written as one."""
    if name in ("assertAlmostEqual", "assertNotAlmostEqual", "assertAlmostEquals"):
        args = _args(call, ("first", "second", "places", "msg", "delta"))
        if args is None or "first" not in args or "second" not in args:
            return None
        test = _almost(args["first"], args["second"], args.get("places"), args.get("delta"),
                       negate=name == "assertNotAlmostEqual")  # fmt: skip
        return _assert(test, args.get("msg"))
    if name not in _ARITY:
        return None
    params = ("first", "second", "msg") if _ARITY[name] == 2 else ("expr", "msg")
    args = _args(call, params)
    if args is None or any(p not in args for p in params[:-1]) or set(args) - set(params):
        return None
    msg = args.get("msg")
    if name in _COMPARE:
        return _assert(_compare(args["first"], _COMPARE[name](), args["second"]), msg)
    if name in _UNARY:
        return _assert(_not(args["expr"]) if _UNARY[name] else args["expr"], msg)
    if name in ("assertIsNone", "assertIsNotNone"):
        op = cst.Is() if name == "assertIsNone" else cst.IsNot()
        return _assert(_compare(args["expr"], op, cst.Name("None")), msg)
    isinstance_call = cst.Call(func=cst.Name("isinstance"), args=[cst.Arg(args["first"]), cst.Arg(args["second"])])
    return _assert(isinstance_call if name == "assertIsInstance" else _not(isinstance_call), msg)


def _pytest_attr(*names: str) -> cst.BaseExpression:
    expr: cst.BaseExpression = cst.Name("pytest")
    for name in names:
        expr = cst.Attribute(value=expr, attr=cst.Name(name))
    return expr


def _raises(call: cst.Call) -> cst.Call | None:
    """``pytest.raises(...)`` for ``self.assertRaises(E)`` / ``assertRaisesRegex(E, r)`` (context form)."""
    name = call.func.attr.value if isinstance(call.func, cst.Attribute) else ""
    if name in ("assertRaises",) and len(call.args) == 1 and call.args[0].keyword is None:
        return cst.Call(func=_pytest_attr("raises"), args=[call.args[0]])
    if name in ("assertRaisesRegex", "assertRaisesRegexp") and len(call.args) == 2:
        pattern = call.args[1].with_changes(keyword=cst.Name("match"), equal=_EQ)
        return cst.Call(func=_pytest_attr("raises"), args=[call.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT),
                                                           pattern])  # fmt: skip
    return None


_SELF_CALL = m.Call(func=m.Attribute(value=m.Name("self")))


class UnittestToPytest(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self) -> None:
        super().__init__()
        self.report = Report()
        self.uses_pytest = False
        self._contexts: list[set[str]] = [set()]  # names bound by ``with pytest.raises(...) as name``

    # --- statements: self.assertX(...) on a line of its own
    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        if len(updated.body) != 1 or not m.matches(updated.body[0], m.Expr(value=_SELF_CALL)):
            return updated
        expr = updated.body[0]
        assert isinstance(expr, cst.Expr) and isinstance(expr.value, cst.Call)
        call = expr.value
        assert isinstance(call.func, cst.Attribute)
        name = call.func.attr.value
        if name in ("fail", "skipTest"):
            self.uses_pytest = True
            target = _pytest_attr("fail" if name == "fail" else "skip")
            return updated.with_changes(body=[expr.with_changes(value=call.with_changes(func=target))])
        if name in ("assertRaises", "assertRaisesRegex", "assertRaisesRegexp") and len(call.args) >= 2:
            return self._raises_call(updated, call, name)
        statement = assertion(name, call)
        if statement is None:
            if name.startswith(("assert", "fail")):
                line = self._line(original)
                self.report.kept.append(f"{name} (line {line})" if line else name)
            return updated
        self.report.converted += 1
        return updated.with_changes(body=[statement])

    def _raises_call(
        self, line: cst.SimpleStatementLine, call: cst.Call, name: str
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        """``self.assertRaises(E, f, *args, **kw)`` → ``with pytest.raises(E): f(*args, **kw)``."""
        split = 2 if name == "assertRaises" else 3
        if any(a.star or a.keyword is not None for a in call.args[:split]) or len(call.args) < split:
            self.report.kept.append(name)
            return line
        head = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in call.args[: split - 1]]
        args = [head[0]] + ([head[1].with_changes(keyword=cst.Name("match"), equal=_EQ)]
                            if name != "assertRaises" else [])  # fmt: skip
        func = call.args[split - 1].value
        rest = [a for a in call.args[split:] if not (a.keyword is not None and a.keyword.value == "msg")]
        body = cst.SimpleStatementLine(body=[cst.Expr(cst.Call(func=func, args=rest))])
        self.uses_pytest = True
        self.report.converted += 1
        raises = cst.Call(func=_pytest_attr("raises"), args=args)
        return cst.With(items=[cst.WithItem(item=raises)], body=cst.IndentedBlock(body=[body]),
                        leading_lines=line.leading_lines)  # fmt: skip

    def _line(self, node: cst.CSTNode) -> int | None:
        try:
            line: int = self.get_metadata(PositionProvider, node).start.line
        except KeyError:
            return None
        return line

    # --- with self.assertRaises(E) [as cm]:
    def leave_WithItem(self, original: cst.WithItem, updated: cst.WithItem) -> cst.WithItem:
        if not isinstance(updated.item, cst.Call) or not m.matches(updated.item, _SELF_CALL):
            return updated
        raises = _raises(updated.item)
        if raises is None:
            return updated
        self.uses_pytest = True
        self.report.converted += 1
        if updated.asname is not None and isinstance(updated.asname.name, cst.Name):
            self._contexts[-1].add(updated.asname.name.value)
        return updated.with_changes(item=raises)

    # --- cm.exception → cm.value, within the function that bound cm
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._contexts.append(set())

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        names = self._contexts.pop()
        if not names:
            return updated
        return updated.with_changes(body=updated.body.visit(_ExceptionToValue(names)))

    # --- decorators
    def leave_Decorator(self, original: cst.Decorator, updated: cst.Decorator) -> cst.Decorator:
        deco = updated.decorator
        func = deco.func if isinstance(deco, cst.Call) else deco
        name = _unittest_name(func)
        if name == "expectedFailure" and not isinstance(deco, cst.Call):
            self.uses_pytest = True
            strict = cst.Arg(keyword=cst.Name("strict"), value=cst.Name("True"), equal=_EQ)
            return updated.with_changes(decorator=cst.Call(func=_pytest_attr("mark", "xfail"), args=[strict]))
        if name not in ("skip", "skipIf", "skipUnless") or not isinstance(deco, cst.Call):
            return updated
        args = list(deco.args)
        if any(a.star for a in args):
            return updated
        reason = [a for a in args if a.keyword is not None and a.keyword.value == "reason"]
        positional = [a for a in args if a.keyword is None]
        self.uses_pytest = True
        if name == "skip":
            value = reason[0].value if reason else positional[0].value if positional else cst.SimpleString('""')
            call = cst.Call(func=_pytest_attr("mark", "skip"), args=[_reason(value)])
            return updated.with_changes(decorator=call)
        condition = positional[0].value if positional else None
        why = reason[0].value if reason else positional[1].value if len(positional) > 1 else None
        if condition is None or why is None:
            return updated
        if name == "skipUnless":
            condition = _not(condition)
        call = cst.Call(func=_pytest_attr("mark", "skipif"), args=[cst.Arg(condition), _reason(why)])
        return updated.with_changes(decorator=call)


def _reason(value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(keyword=cst.Name("reason"), value=value, equal=_EQ)


def _unittest_name(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "unittest":
        return func.attr.value
    return None


class _ExceptionToValue(cst.CSTTransformer):
    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        if (
            isinstance(updated.value, cst.Name)
            and updated.value.value in self.names
            and updated.attr.value == "exception"
        ):
            return updated.with_changes(attr=cst.Name("value"))
        return updated


def _with_pytest_import(module: cst.Module) -> cst.Module:
    for stmt in module.body:
        if m.matches(stmt, m.SimpleStatementLine(body=[m.Import(names=[m.ImportAlias(name=m.Name("pytest"))])])):
            return module
    body = list(module.body)
    at = 0
    for i, stmt in enumerate(body):  # after the docstring, __future__ imports and the other imports
        if m.matches(stmt, m.SimpleStatementLine(body=[m.Expr(value=m.SimpleString())])) and i == 0:
            at = 1
        elif m.matches(stmt, m.SimpleStatementLine(body=[m.Import() | m.ImportFrom()])):
            at = i + 1
        else:
            break
    line = cst.SimpleStatementLine(body=[cst.Import(names=[cst.ImportAlias(name=cst.Name("pytest"))])])
    return module.with_changes(body=[*body[:at], line, *body[at:]])


def convert(source: str) -> tuple[str, Report]:
    """The module rewritten, and what was done; raises ``libcst.ParserSyntaxError`` on unparsable code."""
    module = cst.MetadataWrapper(cst.parse_module(source))
    transformer = UnittestToPytest()
    out, fixtures = setup_to_fixture(module.visit(transformer))
    transformer.report.converted += fixtures
    if transformer.uses_pytest or fixtures:
        out = _with_pytest_import(out)
    return out.code, transformer.report


class UnittestToPytestRecipe:
    """The ``unittest-to-pytest`` recipe: test modules that use ``unittest``."""

    name = "unittest-to-pytest"
    description = "unittest assert methods, assertRaises and skip decorators to pytest; test ids kept"
    checks: tuple[Check, ...] = ("compile", "fidelity")
    repairable = False
    brief = ""
    repair_flags: tuple[str, ...] = ()

    def applies_to(self, path: str, text: str) -> bool:
        return is_test_path(path) and "unittest" in text

    def rewrite(self, path: str, text: str, root: Path | None = None) -> Rewrite:
        try:
            out, report = convert(text)
        except cst.ParserSyntaxError as exc:
            raise RecipeError(f"{path} does not parse: {exc.message} (line {exc.raw_line})") from exc
        return Rewrite(out, report.converted, tuple(report.kept))
