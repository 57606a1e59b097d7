"""Names that do not exist, checked after generation (context/names.py) and used by the fix loop."""

from __future__ import annotations

from pathlib import Path

from codespark.context.names import in_answer, nonexistent
from tests.fix_repos import Scripted, make_repo
from tests.test_fix import run_loop

CODE = """import os
import json
import numpyx
from collections import OrderedDictx, deque
try:
    import ujson_not_installed
except ImportError:
    ujson_not_installed = None


def f(os_like):
    return json.loadz("1"), os.path.join("a"), deque(), os.getcwdx()
"""


def test_imports_and_module_attributes_that_do_not_exist() -> None:
    found = {(u.kind, u.name) for u in nonexistent(CODE)}
    assert found == {
        ("unknown-import", "numpyx"),
        ("unknown-import", "OrderedDictx"),
        ("unknown-attribute", "json.loadz"),
        ("unknown-attribute", "os.getcwdx"),
    }


def test_rebound_names_optional_imports_and_the_project_itself(tmp_path: Path) -> None:
    assert nonexistent("import os\nos = 3\nos.foo\n") == []
    assert nonexistent("import os\ndef f(os):\n    return os.foo\n") == []
    assert nonexistent("def broken(:\n") == []  # the syntax check reports it
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "util.py").write_text("def clamp(x):\n    return x\n")
    code = "from pkg.util import clamp, wrap\nimport pkg.util as u\nu.clamp(1)\nu.nope(2)\n"
    found = {(u.kind, u.name) for u in nonexistent(code, tmp_path / "app.py", tmp_path)}
    assert found == {("unknown-import", "wrap"), ("unknown-attribute", "u.nope")}


def test_the_fix_loop_rejects_a_candidate_that_calls_what_does_not_exist(tmp_path: Path) -> None:
    files = {
        "calc/__init__.py": "",
        "calc/ops.py": "import math\n\n\ndef root(x):\n    return x\n",
        "tests/test_ops.py": "from calc.ops import root\n\n\ndef test_root():\n    assert root(9) == 3\n",
    }
    root = make_repo(tmp_path / "r", files)
    invented = "```python\ndef root(x):\n    return math.square_root(x)\n```"
    real = "```python\ndef root(x):\n    return math.sqrt(x)\n```"
    events, ws = run_loop(root, tmp_path / "cache", Scripted([invented, real]), candidates=2, rounds=1)
    ws.close()
    candidates = [e.data for e in events if e.kind == "candidate"]
    assert "math.square_root" in candidates[0]["reason"] and candidates[0]["outcome"] == "refused"
    assert events[-1].data["status"] == "fixed"


def test_an_answer_is_checked_in_its_python_blocks_only() -> None:
    answer = (
        "Run:\n```bash\nimport nothing_here\n```\n"  # not Python
        "```\nfrom collections import OrderedDictx\n```\n"  # unlabelled, parses as Python
        "```text\nimport also_nothing\n```\n"
        "```py\nimport os\nos.getcwdx()\n```\n"
    )
    found = in_answer(answer)
    assert found == [
        "block 2, line 1: from collections import OrderedDictx: collections has no 'OrderedDictx'",
        "block 4, line 2: module 'os' has no attribute 'getcwdx'",
    ]
    assert in_answer("no code at all, and `import x` inline") == []
