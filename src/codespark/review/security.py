"""The deterministic checks: bandit on the changed Python files, semgrep with the project's own rules when
it is installed, secrets on added lines (the privacy guard's detectors; the value is never repeated), and
imports of packages that are neither installed, in the standard library, in the project, nor declared."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import logging
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

from codespark.guard.detectors import scan
from codespark.review.diff import FileChange
from codespark.review.findings import Finding

log = logging.getLogger(__name__)

# The guard's kinds that are credentials (its PII kinds, e-mails and phone numbers, are not review findings).
SECRET_KINDS = frozenset({"ANTHROPIC_KEY", "AWS_KEY", "AZURE_KEY", "DISCORD_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN",
                          "GOOGLE_API_KEY", "HUGGINGFACE_TOKEN", "JWT", "MAILCHIMP_KEY", "NPM_TOKEN", "OPENAI_KEY",
                          "PASSWORD", "PRIVATE_KEY", "PYPI_TOKEN", "SECRET", "SENDGRID_KEY", "SLACK_TOKEN",
                          "SQUARE_TOKEN", "STRIPE_KEY", "TELEGRAM_TOKEN"})  # fmt: skip
_BANDIT_SEVERITY = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
_BANDIT_CONFIDENCE = {"LOW": 0.3, "MEDIUM": 0.6, "HIGH": 0.9}
_SEMGREP_SEVERITY = {"INFO": "low", "WARNING": "medium", "ERROR": "high"}


def secrets(changes: Iterable[FileChange]) -> tuple[list[Finding], set[str]]:
    """A finding per added line that holds a credential, and the values found (to be scrubbed from every
    output).  The message names the kind, never the value."""
    found: list[Finding] = []
    values: set[str] = set()
    for change in changes:
        for line, text in sorted(change.added_text.items()):
            kinds = []
            for hit in scan(text):
                if hit.kind in SECRET_KINDS:
                    kinds.append(hit.kind)
                    values.add(text[hit.start : hit.end])
            if kinds:
                anchor = f"{change.path}:{'+'.join(sorted(set(kinds)))}:{_shape(text)}"
                found.append(Finding(change.path, line, line, "codespark/secret", "security", "high", 0.95,
                                     f"This line adds a credential ({', '.join(sorted(set(kinds)))}). Move it to the "
                                     "environment or a secret store, and rotate it: it is in the branch's history.",
                                     "guard", anchor=anchor))  # fmt: skip
    return found, values


def _shape(text: str) -> str:
    """The line with every letter and digit blurred, so the fingerprint holds nothing of the secret."""
    return re.sub(r"[A-Za-z0-9]", "x", text.strip())[:80]


def bandit(root: Path, paths: Iterable[str]) -> list[Finding]:
    """bandit's findings in ``paths`` (relative to ``root``), with its test ids as rule ids."""
    files = [str(root / p) for p in paths if p.endswith(".py") and (root / p).is_file()]
    if not files:
        return []
    logging.getLogger("bandit").setLevel(logging.ERROR)
    logging.getLogger("stevedore").setLevel(logging.CRITICAL)  # bandit's optional formatter plugins
    with warnings.catch_warnings():  # bandit loads its plugins (stevedore) on import, with a deprecation warning
        warnings.simplefilter("ignore", DeprecationWarning)
        from bandit.core import config as bandit_config
        from bandit.core import manager

        mgr = manager.BanditManager(bandit_config.BanditConfig(), "file", quiet=True)
        mgr.discover_files(files)
        mgr.run_tests()
    out = []
    for issue in mgr.get_issue_list():
        rel = str(Path(issue.fname).resolve().relative_to(root.resolve()))
        lines = list(issue.linerange) or [issue.lineno]
        code = _line(root / rel, issue.lineno)
        confidence = _BANDIT_CONFIDENCE.get(issue.confidence, 0.3)
        if issue.severity == "LOW":
            confidence = min(confidence, 0.5)  # low-severity rules (B101 assert, B404 import subprocess): logged only
        out.append(Finding(rel, min(lines), max(lines), f"bandit/{issue.test_id}", "security",
                           _BANDIT_SEVERITY.get(issue.severity, "low"), confidence,
                           f"{issue.text} (bandit {issue.test_id} {issue.test}, "
                           f"severity {issue.severity.lower()}, confidence {issue.confidence.lower()}).",
                           "bandit", anchor=code, extra={"cwe": getattr(issue.cwe, "id", None)}))  # fmt: skip
    return out


def semgrep_config(root: Path) -> Path | None:
    """The project's own semgrep rules (registry rules need the network, which a review never uses)."""
    for name in (".semgrep.yml", ".semgrep.yaml", ".semgrep"):
        if (root / name).exists():
            return root / name
    return None


def semgrep(root: Path, paths: Iterable[str]) -> tuple[list[Finding], str | None]:
    """semgrep's findings with the project's rules; the second value says why it did not run."""
    exe = shutil.which("semgrep")
    config = semgrep_config(root)
    if exe is None:
        return [], "semgrep is not installed"
    if config is None:
        return [], "semgrep is installed but the project has no .semgrep.yml (registry rules need the network)"
    files = [p for p in paths if (root / p).is_file()]
    if not files:
        return [], None
    done = subprocess.run([exe, "scan", "--json", "--metrics", "off", "--quiet", "--config", str(config), *files],
                          cwd=root, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    try:
        results = json.loads(done.stdout).get("results", [])
    except json.JSONDecodeError:
        return [], f"semgrep failed: {done.stderr.strip()[:200]}"
    out = []
    for r in results:
        extra = r.get("extra", {})
        path = str(r.get("path", ""))
        start, end = int(r["start"]["line"]), int(r["end"]["line"])
        out.append(Finding(path, start, end, f"semgrep/{r.get('check_id', 'rule')}", "security",
                           _SEMGREP_SEVERITY.get(str(extra.get("severity", "")).upper(), "medium"), 0.8,
                           str(extra.get("message", "semgrep rule matched")).strip(), "semgrep",
                           anchor=_line(root / path, start)))  # fmt: skip
    return out, None


def _line(path: Path, line: int) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_names(root: Path) -> set[str]:
    """Distribution and module names the project declares (pyproject, requirements*.txt, setup.cfg/py)."""
    names: set[str] = set()
    texts = []
    for pattern in ("pyproject.toml", "setup.cfg", "setup.py", "requirements*.txt", "requirements/*.txt",
                    "Pipfile", "environment.yml"):  # fmt: skip
        for file in root.glob(pattern):
            try:
                texts.append(file.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
    for text in texts:
        for m in re.finditer(r"""(?m)^\s*["']?([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:[<>=!~;"',]|$)""",
                             text):  # fmt: skip
            names.add(_norm(m.group(1)))
    return names


def _local_modules(root: Path) -> set[str]:
    out = set()
    for base in (root, root / "src", root / "lib"):
        if not base.is_dir():
            continue
        for child in base.iterdir():
            if child.suffix == ".py":
                out.add(child.stem)
            elif child.is_dir() and (any(child.glob("*.py")) or (child / "__init__.py").exists()):
                out.add(child.name)
    return out


def _guarded(tree: ast.AST) -> set[int]:
    """Lines inside ``try: ... except ImportError`` (optional dependencies)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            names = set()
            for handler in node.handlers:
                t = handler.type
                for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if t is not None else []:
                    names.add(e.id if isinstance(e, ast.Name) else getattr(e, "attr", ""))
            if names & {"ImportError", "ModuleNotFoundError", "Exception"} or any(
                h.type is None for h in node.handlers
            ):
                for stmt in node.body:
                    lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def unknown_imports(root: Path, changes: Iterable[FileChange]) -> list[Finding]:
    """Added imports of top-level packages that exist nowhere: not in the standard library, not installed
    here, not a module of the project, not declared as a dependency (a hallucinated dependency)."""
    declared = declared_names(root)
    local = _local_modules(root)
    distributions = {k: [_norm(d) for d in v] for k, v in importlib.metadata.packages_distributions().items()}
    out = []
    for change in changes:
        if not change.path.endswith(".py") or not change.added:
            continue
        try:
            tree = ast.parse((root / change.path).read_text(encoding="utf-8", errors="replace"))
        except (OSError, SyntaxError):
            continue
        guarded = _guarded(tree)
        sibling = {p.stem for p in (root / change.path).parent.glob("*.py")}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno not in change.added:
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                continue
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                top = module.split(".")[0]
                if not top or top in sys.stdlib_module_names or top in local or top in sibling:
                    continue
                if _norm(top) in declared or any(d in declared for d in distributions.get(top, [])):
                    continue
                installed = top in distributions or importlib.util.find_spec(top) is not None
                if installed:
                    continue
                severity = "low" if node.lineno in guarded else "high"
                confidence = 0.5 if node.lineno in guarded else 0.9
                out.append(Finding(change.path, node.lineno, node.end_lineno or node.lineno, "codespark/unknown-import",
                                   "security", severity, confidence,
                                   f"`{top}` is not installed, not in the standard library, not part of this project "
                                   "and not declared as a dependency. If it is a real package, declare it; if not, "
                                   "this import was invented (a squatted name on PyPI would run someone else's code).",
                                   "imports", anchor=f"import {module}"))  # fmt: skip
    return out
