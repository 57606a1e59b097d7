"""Run by the differential check in the sandbox, with the tree under test as its working directory:
import one module, evaluate each call twice (a 2 s alarm each), and write what happened as JSON.

    python probe.py MODULE_PATH CALLS_JSON OUT_JSON

A call is an expression over literals and the module's own names: ``function(...)``,
``Class(...).method(...)``, ``Class(...) + Class(...)``, ``Class(...).attribute`` (prompts.py checks the
shape before anything runs).

Standalone on purpose: it runs in the project's tree and imports nothing of codespark (so its operator
tables repeat the ones prompts.py checks calls against).
"""

import ast
import importlib
import importlib.util
import itertools
import json
import operator
import os
import re
import signal
import sys
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class _Timeout(BaseException):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Timeout()


def _describe(value: Any) -> str:
    if hasattr(value, "__next__") and hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        value = ("<iterator>", list(itertools.islice(value, 1000)))
    return _ADDRESS.sub(" at 0x?", repr(value))[:2000]


def _load(path: str) -> ModuleType:
    root = os.getcwd()
    for base in (os.path.join(root, "src"), root):
        if os.path.isdir(base):
            sys.path.insert(0, base)
    rel = os.path.relpath(os.path.abspath(path), root)
    parts = rel[:-3].split(os.sep)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    try:
        return importlib.import_module(".".join(parts))
    except ImportError:
        spec = importlib.util.spec_from_file_location("_codespark_probe_target", path)
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


_BINARY = {
    ast.Add: "__add__",
    ast.Sub: "__sub__",
    ast.Mult: "__mul__",
    ast.Div: "__truediv__",
    ast.FloorDiv: "__floordiv__",
    ast.Mod: "__mod__",
    ast.Pow: "__pow__",
    ast.BitAnd: "__and__",
    ast.BitOr: "__or__",
    ast.BitXor: "__xor__",
    ast.LShift: "__lshift__",
    ast.RShift: "__rshift__",
}


def _in(a: Any, b: Any) -> bool:
    return a in b


def _not_in(a: Any, b: Any) -> bool:
    return a not in b


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: _in, ast.NotIn: _not_in,
}  # fmt: skip
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert,
}  # fmt: skip


def _value(node: ast.expr, module: ModuleType) -> Any:
    """Evaluate ``node``: literals, the module's own names, calls, attributes and operators over them."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return getattr(module, node.id)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_value(e, module) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items) if isinstance(node, ast.Tuple) else set(items)
    if isinstance(node, ast.Dict):
        return {
            _value(k, module): _value(v, module) for k, v in zip(node.keys, node.values, strict=True) if k is not None
        }
    if isinstance(node, ast.Call):
        fn = _value(node.func, module)
        return fn(
            *[_value(a, module) for a in node.args], **{str(k.arg): _value(k.value, module) for k in node.keywords}
        )
    if isinstance(node, ast.Attribute):
        return getattr(_value(node.value, module), node.attr)
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, module), _value(node.right, module)
        return getattr(operator, _BINARY[type(node.op)])(left, right)
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_value(node.operand, module))
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return _COMPARE[type(node.ops[0])](_value(node.left, module), _value(node.comparators[0], module))
    raise ValueError(f"not evaluable: {ast.dump(node)[:80]}")


def _once(module: ModuleType, call: str) -> dict[str, Any]:
    node = ast.parse(call, mode="eval").body
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    owner: Any = None
    try:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):  # f(...): its arguments are watched too
            fn = getattr(module, node.func.id)
            args = [_value(a, module) for a in node.args]
            kwargs = {str(k.arg): _value(k.value, module) for k in node.keywords}
            result = fn(*args, **kwargs)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # obj.m(...): obj is watched
            owner = _value(node.func.value, module)
            args = [_value(a, module) for a in node.args]
            kwargs = {str(k.arg): _value(k.value, module) for k in node.keywords}
            result = getattr(owner, node.func.attr)(*args, **kwargs)
        else:
            result = _value(node, module)
        outcome: dict[str, Any] = {"kind": "value", "value": _describe(result)}
    except _Timeout:
        outcome = {"kind": "timeout"}
    except RecursionError:
        outcome = {"kind": "raises", "type": "RecursionError", "message": ""}
    except Exception as exc:  # the outcome of the call is what is compared
        outcome = {"kind": "raises", "type": type(exc).__name__, "message": str(exc)[:300]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        outcome["args"] = _describe([args, kwargs] if owner is None else [args, kwargs, owner])
    except Exception:
        outcome["args"] = "?"
    return outcome


def main() -> None:
    path, calls_file, out_file = sys.argv[1:4]
    signal.signal(signal.SIGALRM, _alarm)
    with open(calls_file, encoding="utf-8") as f:
        calls = json.load(f)
    results: dict[str, Any] = {}
    try:
        module = _load(path)
    except BaseException as exc:  # the module does not import here: nothing to compare
        results = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    else:
        for call in calls:
            first, second = _once(module, call), _once(module, call)
            results[call] = first if first == second else {"kind": "nondeterministic"}
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
